// Admin: everyone's calls (GET /api/v1/admin/history) with filters by user, kind and dates, paging,
// and the same selection exported as CSV. Every number is a click-to-call control.
import { useEffect, useState } from 'preact/hooks';
import { AdminList, AdminPage, UserOptions, useActions, useUsers, userName, val } from '../admin-ui';
import { api, asItems, download, type Schema } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { tOr } from '../i18n';
import { Num, formatTime, useApi } from '../ui';
import { directionKind, durationText } from './History';

type Entry = Schema<'EntryOut'>;

const FILTERS = ['all', 'missed', 'incoming', 'outgoing', 'click-to-call'] as const;
type Filter = (typeof FILTERS)[number];

function filterKey(f: Filter): `history.${Exclude<Filter, 'click-to-call'>}` | 'history.clickToCall' {
  return f === 'click-to-call' ? 'history.clickToCall' : `history.${f}`;
}

export function AdminHistory() {
  const users = useUsers();
  const [userId, setUserId] = useState('');
  const [filter, setFilter] = useState<Filter>('all');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [extra, setExtra] = useState<Entry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const actions = useActions();
  const params = new URLSearchParams();
  if (userId) params.set('user_id', userId);
  if (filter === 'missed') params.set('missed', 'true');
  else if (filter !== 'all') params.set('direction', filter);
  if (from) params.set('since', new Date(`${from}T00:00:00`).toISOString());
  if (to) params.set('until', new Date(`${to}T23:59:59`).toISOString());
  const query = params.toString();
  const loaded = useApi<Schema<'HistoryPage'>>(`/admin/history?limit=50${query ? `&${query}` : ''}`);
  const { items, next } = asItems<Entry>(loaded.data);
  useEffect(() => {
    setExtra([]);
    setCursor(next);
  }, [loaded.data]);
  const more = () =>
    actions.run(async () => {
      if (!cursor) return;
      const page = asItems<Entry>(
        await api<Schema<'HistoryPage'>>(
          'GET',
          `/admin/history?limit=50&cursor=${encodeURIComponent(cursor)}${query ? `&${query}` : ''}`,
        ),
      );
      setExtra([...extra, ...page.items]);
      setCursor(page.next);
    });
  const exportCsv = () => actions.run(() => download(`/admin/history/export${query ? `?${query}` : ''}`, 'history.csv'));
  const all = [...items, ...extra];
  const filters = (
    <div class="filters" data-testid="allcalls-filters">
      <label class="inline">
        {t('allcalls.user')}
        <select data-testid="allcalls-user" value={userId} onChange={(e) => setUserId(val(e))}>
          <UserOptions users={users} none={t('allcalls.everyone')} style="paren" />
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
        <input type="date" value={from} onInput={(e) => setFrom(val(e))} />
      </label>
      <label class="inline">
        {t('history.to')}
        <input type="date" value={to} onInput={(e) => setTo(val(e))} />
      </label>
    </div>
  );
  return (
    <AdminPage
      class="admin-history"
      title={t('allcalls.title')}
      action={{
        label: t('allcalls.export'),
        testid: 'allcalls-export',
        onClick: () => void exportCsv(),
        hidden: Boolean(loaded.error),
        plain: true,
      }}
      toolbar={filters}
      error={actions.error}
    >
      <AdminList
        loaded={loaded}
        feature={t('allcalls.title')}
        items={all}
        empty={{ text: t('history.empty'), testid: 'allcalls-empty' }}
        testid="allcalls-table"
        columns={[
          t('history.when'),
          t('allcalls.user'),
          t('history.direction'),
          t('history.who'),
          t('history.duration'),
          t('allcalls.outcome'),
        ]}
        row={(e) => {
          const dir = directionKind(e, e.missed);
          return (
            <tr key={e.id} class={e.missed ? 'missed' : ''} data-testid="allcalls-row" data-missed={e.missed ? 'true' : 'false'}>
              <td>{formatTime(e.started_at)}</td>
              <td data-testid="allcalls-who">{userName(users, e.user_id)}</td>
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
        }}
      />
      {cursor && (
        <button class="btn more" data-testid="allcalls-more" onClick={() => void more()}>
          {t('common.more')}
        </button>
      )}
    </AdminPage>
  );
}
