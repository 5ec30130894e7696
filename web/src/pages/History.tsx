// Call history: missed calls highlighted, filters (direction, missed only, date range), live refresh
// when a call ends. Every number is a click-to-call control.
import { useEffect, useState } from 'preact/hooks';
import { api, asItems } from '../api';
import { events } from '../events';
import { tOr, t } from '../i18n';
import { missed, session } from '../session';
import { useStore } from '../store';
import { causeText } from '../causes';
import { LoadState, Num, deviceName, formatLength, formatTime, useApi } from '../ui';

export interface HistoryEntry {
  id: number | string;
  direction?: string;
  disposition?: string;
  missed?: boolean;
  number?: string;
  other_number?: string;
  name?: string | null;
  contact_name?: string | null;
  device?: string | null;
  device_label?: string | null;
  started_at?: string;
  start?: string;
  duration?: number | null;
  answered_at?: string | null;
  /** null while an answered call is still up: its row exists from the answer and gets its end later. */
  ended_at?: string | null;
  click_to_call?: boolean;
  hangup_cause?: string;
}

/** The duration column: "in progress" for an answered call that is still up, "—" for none. */
export function durationText(e: HistoryEntry): string {
  if (e.answered_at && e.ended_at === null) return t('history.inProgress');
  return e.duration ? formatLength(e.duration) : '—';
}

/** The direction column's kind (its text is `history.<kind>`): a missed call is missed whichever way it went. */
export function directionKind(e: HistoryEntry, missed: boolean): 'missed' | 'clickToCall' | 'outgoing' | 'incoming' {
  if (missed) return 'missed';
  if (e.direction === 'click-to-call') return 'clickToCall';
  return e.direction === 'outgoing' ? 'outgoing' : 'incoming';
}

export function isMissed(e: HistoryEntry): boolean {
  return Boolean(e.missed) || e.disposition === 'missed' || e.direction === 'missed';
}

export function History() {
  const me = useStore(session).me;
  const deviceLabel = (e: HistoryEntry) => {
    const id = (e as { device_id?: number | null }).device_id;
    const d = me?.devices.find((x) => id != null && String(x.id) === String(id));
    return e.device_label ?? (d ? deviceName(d.label, d.kind) : (e.device ?? ''));
  };
  const [filter, setFilter] = useState<'all' | 'missed' | 'incoming' | 'outgoing'>('all');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const params = new URLSearchParams({ limit: '100' });
  if (filter === 'missed') params.set('missed', 'true');
  if (filter === 'incoming' || filter === 'outgoing') params.set('direction', filter);
  if (from) params.set('since', new Date(`${from}T00:00:00`).toISOString());
  if (to) params.set('until', new Date(`${to}T23:59:59`).toISOString());
  const loaded = useApi<unknown>(`/history?${params.toString()}`);
  useEffect(() => {
    // Opening the history counts as having seen the missed calls.
    missed.set(0);
    void api('POST', '/history/seen').catch(() => undefined);
    const offNew = events.on('history.new', () => {
      loaded.reload();
      void api('POST', '/history/seen').catch(() => undefined);
    });
    // An answered call's row comes at its answer and is completed at its end (history.updated).
    const offUpdated = events.on('history.updated', () => loaded.reload());
    return () => {
      offNew();
      offUpdated();
    };
  }, [loaded.reload]);
  const { items } = asItems<HistoryEntry>(loaded.data);
  return (
    <section class="page history">
      <h1>{t('history.title')}</h1>
      <div class="filters" data-testid="history-filters">
        {(['all', 'missed', 'incoming', 'outgoing'] as const).map((f) => (
          <button
            key={f}
            class={`chip${filter === f ? ' on' : ''}`}
            data-testid={`filter-${f}`}
            aria-pressed={filter === f}
            onClick={() => setFilter(f)}
          >
            {t(`history.${f}`)}
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
      <LoadState loaded={loaded} feature={t('nav.history')} />
      {!loaded.loading && !loaded.error && items.length === 0 && <p class="empty">{t('history.empty')}</p>}
      {items.length > 0 && (
        <table class="table" data-testid="history-table">
          <thead>
            <tr>
              <th>{t('history.when')}</th>
              <th>{t('history.direction')}</th>
              <th>{t('history.who')}</th>
              <th>{t('history.duration')}</th>
              <th>{t('history.device')}</th>
            </tr>
          </thead>
          <tbody>
            {items.map((e) => {
              const m = isMissed(e);
              const number = e.other_number ?? e.number ?? '';
              const name = e.contact_name ?? e.name;
              const dir = directionKind(e, m);
              return (
                <tr key={e.id} class={m ? 'missed' : ''} data-testid="history-row" data-missed={m ? 'true' : 'false'}>
                  <td>{formatTime(e.started_at ?? e.start)}</td>
                  <td>
                    <span class={`dir dir-${dir}`}>{t(`history.${dir}`)}</span>
                    {!m && e.disposition && e.disposition !== 'answered' && (
                      <small class="muted block" data-testid="history-reason">
                        {tOr(`allcalls.disposition.${e.disposition}`, e.disposition)}
                        {e.disposition === 'failed' && e.hangup_cause ? `: ${causeText(e.hangup_cause).text}` : ''}
                      </small>
                    )}
                  </td>
                  <td>
                    {name && <div>{name}</div>}
                    <Num value={number} />
                  </td>
                  <td>{durationText(e)}</td>
                  <td>{deviceLabel(e)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
