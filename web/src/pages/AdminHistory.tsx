// Admin: everyone's calls (GET /api/v1/admin/history) with filters by user, kind and dates, paging,
// and the same selection exported as CSV. Every number is a click-to-call control.
import { useEffect, useState } from 'preact/hooks';
import { api, asItems, download } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { tOr } from '../i18n';
import { ErrorBox, LoadState, Num, formatTime, useApi } from '../ui';
import { durationText, type HistoryEntry } from './History';

interface UserRef {
  id: number;
  username: string;
  display_name: string;
  extension?: string | null;
}

type Entry = HistoryEntry & { user_id: number; hangup_cause?: string };

const FILTERS = ['all', 'missed', 'incoming', 'outgoing', 'click-to-call'] as const;
type Filter = (typeof FILTERS)[number];

function filterKey(f: Filter): `history.${Exclude<Filter, 'click-to-call'>}` | 'history.clickToCall' {
  return f === 'click-to-call' ? 'history.clickToCall' : `history.${f}`;
}

export function AdminHistory() {
  const usersLoaded = useApi<unknown>('/admin/users');
  const users = asItems<UserRef>(usersLoaded.data).items;
  const [userId, setUserId] = useState('');
  const [filter, setFilter] = useState<Filter>('all');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [extra, setExtra] = useState<Entry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const params = new URLSearchParams();
  if (userId) params.set('user_id', userId);
  if (filter === 'missed') params.set('missed', 'true');
  else if (filter !== 'all') params.set('direction', filter);
  if (from) params.set('since', new Date(`${from}T00:00:00`).toISOString());
  if (to) params.set('until', new Date(`${to}T23:59:59`).toISOString());
  const query = params.toString();
  const loaded = useApi<unknown>(`/admin/history?limit=50${query ? `&${query}` : ''}`);
  const { items, next } = asItems<Entry>(loaded.data);
  useEffect(() => {
    setExtra([]);
    setCursor(next);
  }, [loaded.data]);
  const more = async () => {
    if (!cursor) return;
    setError(null);
    try {
      const page = asItems<Entry>(
        await api('GET', `/admin/history?limit=50&cursor=${encodeURIComponent(cursor)}${query ? `&${query}` : ''}`),
      );
      setExtra([...extra, ...page.items]);
      setCursor(page.next);
    } catch (e) {
      setError(e);
    }
  };
  const exportCsv = async () => {
    setError(null);
    try {
      await download(`/admin/history/export${query ? `?${query}` : ''}`, 'history.csv');
    } catch (e) {
      setError(e);
    }
  };
  const who = (id: number) => {
    const u = users.find((x) => x.id === id);
    return u ? u.display_name || u.username : `#${id}`;
  };
  const all = [...items, ...extra];
  return (
    <section class="page admin-history">
      <div class="page-head">
        <h1>{t('allcalls.title')}</h1>
        {!loaded.error && (
          <button class="btn" data-testid="allcalls-export" onClick={() => void exportCsv()}>
            {t('allcalls.export')}
          </button>
        )}
      </div>
      <div class="filters" data-testid="allcalls-filters">
        <label class="inline">
          {t('allcalls.user')}
          <select data-testid="allcalls-user" value={userId} onChange={(e) => setUserId((e.target as HTMLSelectElement).value)}>
            <option value="">{t('allcalls.everyone')}</option>
            {users.map((u) => (
              <option key={u.id} value={String(u.id)}>
                {u.display_name || u.username}
                {u.extension ? ` (${u.extension})` : ''}
              </option>
            ))}
          </select>
        </label>
        {FILTERS.map((f) => (
          <button
            key={f}
            class={`chip${filter === f ? ' on' : ''}`}
            data-testid={`allcalls-filter-${f}`}
            aria-pressed={filter === f}
            onClick={() => setFilter(f)}
          >
            {t(filterKey(f))}
          </button>
        ))}
        <label class="inline">
          {t('history.from')}
          <input type="date" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} />
        </label>
        <label class="inline">
          {t('history.to')}
          <input type="date" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
        </label>
      </div>
      <ErrorBox error={error} />
      <LoadState loaded={loaded} feature={t('allcalls.title')} />
      {!loaded.loading && !loaded.error && all.length === 0 && (
        <p class="empty" data-testid="allcalls-empty">
          {t('history.empty')}
        </p>
      )}
      {all.length > 0 && (
        <table class="table" data-testid="allcalls-table">
          <thead>
            <tr>
              <th>{t('history.when')}</th>
              <th>{t('allcalls.user')}</th>
              <th>{t('history.direction')}</th>
              <th>{t('history.who')}</th>
              <th>{t('history.duration')}</th>
              <th>{t('allcalls.outcome')}</th>
            </tr>
          </thead>
          <tbody>
            {all.map((e) => {
              const m = Boolean(e.missed);
              const dir = m
                ? 'missed'
                : e.direction === 'click-to-call'
                  ? 'clickToCall'
                  : e.direction === 'outgoing'
                    ? 'outgoing'
                    : 'incoming';
              return (
                <tr key={e.id} class={m ? 'missed' : ''} data-testid="allcalls-row" data-missed={m ? 'true' : 'false'}>
                  <td>{formatTime(e.started_at)}</td>
                  <td data-testid="allcalls-who">{who(e.user_id)}</td>
                  <td>
                    <span class={`dir dir-${dir}`}>{t(`history.${dir}`)}</span>
                  </td>
                  <td>
                    {e.name && <div>{e.name}</div>}
                    <Num value={e.number} />
                  </td>
                  <td>{durationText(e)}</td>
                  <td>{e.disposition ? tOr(`allcalls.disposition.${e.disposition}`, e.disposition) : ''}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {cursor && (
        <button class="btn more" data-testid="allcalls-more" onClick={() => void more()}>
          {t('common.more')}
        </button>
      )}
    </section>
  );
}
