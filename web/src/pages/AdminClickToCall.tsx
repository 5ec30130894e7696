// Admin: the order in which the server tries to make a desk phone dial a clicked number. `originate`
// (the switch rings the phone first) is always the last fallback and cannot be switched off; the
// others can be reordered or left out.
import { useEffect, useState } from 'preact/hooks';
import { AdminPage, OrderedToggles, SaveBar, useActions, type Toggled } from '../admin-ui';
import { api, type Schema } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { LoadState, useApi } from '../ui';

const OPTIONAL = ['phone_http', 'lan_relay'] as const;
type Optional = (typeof OPTIONAL)[number];

function isOptional(s: string): s is Optional {
  return (OPTIONAL as readonly string[]).includes(s);
}
const LAST = 'originate';

export function AdminClickToCall() {
  const loaded = useApi<Schema<'StrategiesOut'>>('/admin/settings/click-to-call');
  const [rows, setRows] = useState<Toggled<Optional>[]>([]);
  const actions = useActions();
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    const order = (loaded.data?.desk_strategies ?? []).filter((s) => s !== LAST);
    // The ones in use first, in their order; the others after them, switched off.
    setRows([
      ...order.filter(isOptional).map((name) => ({ name, on: true })),
      ...OPTIONAL.filter((s) => !order.includes(s)).map((name) => ({ name, on: false })),
    ]);
  }, [loaded.data]);
  const save = () => {
    setSaved(false);
    void actions.run(async () => {
      const body: Schema<'StrategiesIn'> = { desk_strategies: [...rows.filter((r) => r.on).map((r) => r.name), LAST] };
      await api('PUT', '/admin/settings/click-to-call', body);
      setSaved(true);
      loaded.reload();
    });
  };
  return (
    <AdminPage class="admin-c2c" title={t('c2c.title')} help={t('c2c.help')}>
      <LoadState loaded={loaded} feature={t('c2c.title')} />
      {loaded.data && (
        <div class="card">
          <OrderedToggles
            rows={rows}
            onChange={(next) => {
              setRows(next);
              setSaved(false);
            }}
            label={(name) => t(`c2c.${name}`)}
            help={(name) => t(`c2c.${name}.help`)}
            testid="strategy"
            rowTestid="strategy-row"
            listTestid="strategy-list"
            moveTestids
          >
            <li data-testid="strategy-row" data-name={LAST} data-on="true" class="fixed">
              <span>
                <strong>{t('c2c.originate')}</strong>
                <small class="muted block">{t('c2c.originate.help')}</small>
              </span>
              <span class="tag">{t('c2c.always')}</span>
            </li>
          </OrderedToggles>
          <SaveBar
            onSave={save}
            error={actions.error}
            saved={saved}
            testid="strategy-save"
            savedTestid="strategy-saved"
            primary
          />
        </div>
      )}
    </AdminPage>
  );
}
