// Customer cards: the side panel for the current call (from `card` events) and a page to look up
// any number. Card shape per issue 5: matching contacts, last calls, data from other sources.
import { useEffect, useState } from 'preact/hooks';
import { has, t, tOr } from '../i18n';
import { card } from '../session';
import { useStore } from '../store';
import { LoadState, Num, formatTime, useApi } from '../ui';

type Obj = Record<string, unknown>;

function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? (v.filter((x) => x && typeof x === 'object') as Obj[]) : [];
}

export function CardView(props: { number: string; data: Obj; boxed?: boolean }) {
  const d = props.data;
  const contacts = arr(d.contacts ?? d.matches);
  const calls = arr(d.last_calls ?? d.calls ?? d.history);
  const sources = arr(d.sources);
  const nothing = contacts.length === 0 && calls.length === 0 && sources.every((s) => !s.data);
  return (
    <div class={props.boxed ? 'cardview card' : 'cardview'} data-testid="customer-card">
      <h3>
        <Num value={props.number} display={typeof d.display === 'string' ? d.display : null} />
      </h3>
      {nothing && <p class="muted">{t('card.nothing')}</p>}
      {contacts.length > 0 && (
        <>
          <h4>{t('card.contacts')}</h4>
          <ul class="plain">
            {contacts.map((c, i) => (
              <li key={i}>
                <strong>{String(c.name ?? '')}</strong>
                {c.company ? <span class="muted"> · {String(c.company)}</span> : null}
                <div class="nums">
                  {arr(c.numbers).map((n, j) => (
                    <Num key={j} value={String(n.number ?? '')} display={typeof n.display === 'string' ? n.display : null} />
                  ))}
                </div>
              </li>
            ))}
          </ul>
        </>
      )}
      {calls.length > 0 && (
        <>
          <h4>{t('card.lastCalls')}</h4>
          <ul class="plain">
            {calls.slice(0, 5).map((c, i) => (
              <li key={i}>
                {formatTime(c.started_at ?? c.start)} · {callSummary(c.direction, c.disposition)}
              </li>
            ))}
          </ul>
        </>
      )}
      {sources.length > 0 && (
        <>
          <h4>{t('card.sources')}</h4>
          {sources.map((s, i) => (
            <div key={i} class="source">
              <strong>{String(s.name ?? s.id ?? '')}</strong>
              {s.problem || s.error || (s.status && s.status !== 'ok') ? (
                <span class="muted" title={s.problem ? String(s.problem) : undefined}>
                  {' '}
                  ·{' '}
                  {typeof s.status === 'string' && s.status !== 'ok'
                    ? tOr(`sources.status.${s.status}`, t('card.sourceFailed'))
                    : t('card.sourceFailed')}
                </span>
              ) : (
                <SourceData data={s.data ?? s.rows} numbers={(s.number_fields ?? {}) as Record<string, string>} />
              )}
            </div>
          ))}
        </>
      )}
    </div>
  );
}

// Only the values the server marked as phone numbers (`number_fields`, '<row>.<field>' -> display) are
// call buttons: a CRM's dates, ids and amounts stay text.
function SourceData(props: { data: unknown; numbers: Record<string, string> }) {
  const rows = Array.isArray(props.data) ? props.data : props.data ? [props.data] : [];
  return (
    <dl>
      {rows.slice(0, 3).flatMap((r, i) =>
        r && typeof r === 'object'
          ? Object.entries(r as Obj).map(([k, v]) => (
              <div class="dl-row" key={`${i}${k}`}>
                <dt>{k}</dt>
                <dd>
                  {`${i}.${k}` in props.numbers ? (
                    <Num value={String(v)} display={props.numbers[`${i}.${k}`]} />
                  ) : (
                    String(v)
                  )}
                </dd>
              </div>
            ))
          : [],
      )}
    </dl>
  );
}

/** Side panel: the card pushed for the current call, closable. */
export function CardPanel() {
  const c = useStore(card);
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [c?.callId, c?.ended]);
  if (!c) return null;
  if (c.ended && !open) {
    // The call is over: a one-line bar instead of a panel over the screen (at phone width most of it).
    return (
      <aside class="cardpanel card collapsed" data-testid="card-panel" data-state="collapsed" aria-label={t('card.last')}>
        <div class="page-head">
          <h2>{t('card.last')}</h2>
          <span class="grow">
            <Num value={c.number} />
          </span>
          <button class="link-btn" data-testid="card-panel-open" onClick={() => setOpen(true)}>
            {t('card.show')}
          </button>
          <button class="link-btn" onClick={() => card.set(null)}>
            {t('common.close')}
          </button>
        </div>
      </aside>
    );
  }
  return (
    <aside class="cardpanel card" data-testid="card-panel" data-state={c.ended ? 'ended' : 'current'} aria-label={t('card.current')}>
      <div class="page-head">
        <h2>{c.ended ? t('card.last') : t('card.current')}</h2>
        <button class="link-btn" onClick={() => card.set(null)}>
          {t('common.close')}
        </button>
      </div>
      <CardView number={c.number} data={c.data} />
    </aside>
  );
}

export function CardPage() {
  const [input, setInput] = useState('');
  const [number, setNumber] = useState<string | null>(null);
  const loaded = useApi<Obj>(number ? `/customer-card?number=${encodeURIComponent(number)}` : null);
  return (
    <section class="page cardpage">
      <h1>{t('card.title')}</h1>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          setNumber(input.trim() || null);
        }}
      >
        <input
          type="search"
          inputMode="tel"
          data-testid="card-number"
          placeholder={t('card.lookup')}
          value={input}
          onInput={(e) => setInput((e.target as HTMLInputElement).value)}
        />
        <button class="btn primary" type="submit">
          {t('card.go')}
        </button>
      </form>
      {number && !loaded.data && (
        <h3>
          <Num value={number} />
        </h3>
      )}
      {number && <LoadState loaded={loaded} feature={t('nav.card')} />}
      {number && loaded.data && <CardView number={number} data={loaded.data} boxed />}
    </section>
  );
}

/** "outgoing, not answered" in the screen's language, from the history's direction and disposition ids. */
function callSummary(direction: unknown, disposition: unknown): string {
  const d = typeof direction === 'string' ? direction : '';
  const dir = d === 'click-to-call' ? 'clickToCall' : d === 'outgoing' || d === 'incoming' || d === 'missed' ? d : '';
  const disp = typeof disposition === 'string' && has(`allcalls.disposition.${disposition}`) ? disposition : '';
  const parts = [dir ? t(`history.${dir}`) : '', disp ? tOr(`allcalls.disposition.${disp}`, disp) : ''].filter(Boolean);
  return parts.join(', ');
}
