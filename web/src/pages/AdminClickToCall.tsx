// Admin: the order in which the server tries to make a desk phone dial a clicked number. `originate`
// (the switch rings the phone first) is always the last fallback and cannot be switched off; the
// others can be reordered or left out.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { ErrorBox, LoadState, useApi } from '../ui';

const OPTIONAL = ['phone_http', 'lan_relay'] as const;
type Optional = (typeof OPTIONAL)[number];

function isOptional(s: string): s is Optional {
  return (OPTIONAL as readonly string[]).includes(s);
}
const LAST = 'originate';

interface Row {
  name: Optional;
  on: boolean;
}

export function AdminClickToCall() {
  const loaded = useApi<{ desk_strategies: string[] }>('/admin/settings/click-to-call');
  const [rows, setRows] = useState<Row[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    const order = (loaded.data?.desk_strategies ?? []).filter((s) => s !== LAST);
    // The ones in use first, in their order; the others after them, switched off.
    setRows([
      ...order.filter(isOptional).map((name) => ({ name, on: true })),
      ...OPTIONAL.filter((s) => !order.includes(s)).map((name) => ({ name, on: false })),
    ]);
  }, [loaded.data]);
  const move = (i: number, by: number) => {
    const j = i + by;
    if (j < 0 || j >= rows.length) return;
    const next = [...rows];
    [next[i], next[j]] = [next[j], next[i]];
    setRows(next);
    setSaved(false);
  };
  const save = async () => {
    setError(null);
    setSaved(false);
    try {
      await api('PUT', '/admin/settings/click-to-call', {
        desk_strategies: [...rows.filter((r) => r.on).map((r) => r.name), LAST],
      });
      setSaved(true);
      loaded.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section class="page admin-c2c">
      <h1>{t('c2c.title')}</h1>
      <p class="muted">{t('c2c.help')}</p>
      <LoadState loaded={loaded as never} feature={t('c2c.title')} />
      {loaded.data && (
        <div class="card">
          <ol class="strategies" data-testid="strategy-list">
            {rows.map((r, i) => (
              <li key={r.name} data-testid="strategy-row" data-name={r.name} data-on={r.on ? 'true' : 'false'}>
                <label class="toggle">
                  <input
                    type="checkbox"
                    checked={r.on}
                    data-testid={`strategy-on-${r.name}`}
                    onChange={(e) => {
                      setRows(rows.map((x, j) => (j === i ? { ...x, on: (e.target as HTMLInputElement).checked } : x)));
                      setSaved(false);
                    }}
                  />
                  <span>
                    <strong>{t(`c2c.${r.name}`)}</strong>
                    <small class="muted block">{t(`c2c.${r.name}.help`)}</small>
                  </span>
                </label>
                <span class="updown">
                  <button
                    type="button"
                    class="btn small"
                    aria-label={t('c2c.up')}
                    title={t('c2c.up')}
                    data-testid={`strategy-up-${r.name}`}
                    disabled={i === 0}
                    onClick={() => move(i, -1)}
                  >
                    ↑
                  </button>
                  <button
                    type="button"
                    class="btn small"
                    aria-label={t('c2c.down')}
                    title={t('c2c.down')}
                    data-testid={`strategy-down-${r.name}`}
                    disabled={i === rows.length - 1}
                    onClick={() => move(i, 1)}
                  >
                    ↓
                  </button>
                </span>
              </li>
            ))}
            <li data-testid="strategy-row" data-name={LAST} data-on="true" class="fixed">
              <span>
                <strong>{t('c2c.originate')}</strong>
                <small class="muted block">{t('c2c.originate.help')}</small>
              </span>
              <span class="tag">{t('c2c.always')}</span>
            </li>
          </ol>
          <ErrorBox error={error} />
          <div class="actions">
            <button class="btn primary" data-testid="strategy-save" onClick={() => void save()}>
              {t('common.save')}
            </button>
            {saved && (
              <span class="ok-text" data-testid="strategy-saved">
                {t('common.saved')}
              </span>
            )}
          </div>
        </div>
      )}
    </section>
  );
}
