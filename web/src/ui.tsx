// Shared building blocks: the click-to-call number control, data loading with empty/unavailable
// states, error boxes, and the tiny router.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, api } from './api';
import { errorText, lang, numberErrorDetail, problemText, t, tOr, type Problem } from './i18n';
import { clickToCall } from './session';
import { Store, useStore } from './store';

export const route = new Store<string>(location.pathname);

export function navigate(path: string): void {
  if (path !== location.pathname + location.search) history.pushState(null, '', path);
  route.set(location.pathname);
}

window.addEventListener('popstate', () => route.set(location.pathname));

export function Link(props: { href: string; class?: string; children: ComponentChildren; testid?: string }) {
  const here = useStore(route);
  const active = here === props.href || (props.href !== '/' && here.startsWith(`${props.href}/`));
  return (
    <a
      href={props.href}
      class={`${props.class ?? ''}${active ? ' active' : ''}`}
      data-testid={props.testid}
      aria-current={active ? 'page' : undefined}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

/** A phone number anywhere on screen: clicking it places the call on the user's own device. */
/** A number as a click-to-call button: dials `value` (as stored), shows the server's `display` form
 * (the dial plan's one format) when given. */
export function Num(props: { value: string | null | undefined; label?: string; display?: string | null }) {
  const v = (props.value ?? '').trim();
  if (!v) return null;
  const shown = (props.display ?? '').trim() || v;
  return (
    <button
      type="button"
      class="num"
      data-number={v}
      title={t('call.clickToCall', { number: shown })}
      onClick={(e) => {
        e.stopPropagation();
        void clickToCall(v);
      }}
    >
      <span class="num-icon" aria-hidden="true">
        ☎
      </span>
      {props.label ?? shown}
    </button>
  );
}

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
}

export function useApi<T>(path: string | null, deps: unknown[] = []): Loaded<T> {
  const [state, setState] = useState<{ data: T | null; error: ApiError | null; loading: boolean }>({
    data: null,
    error: null,
    loading: path !== null,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (path === null) return;
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    api<T>('GET', path)
      .then((data) => live && setState({ data, error: null, loading: false }))
      .catch((e: unknown) => {
        const err = e instanceof ApiError ? e : new ApiError(0, 'network', String(e));
        if (live) setState({ data: null, error: err, loading: false });
      });
    return () => {
      live = false;
    };
  }, [path, tick, ...deps]);
  const reload = useCallback(() => setTick((x) => x + 1), []);
  return { ...state, reload };
}

/** What a screen shows instead of data: loading, not available on this server, or an error. */
export function LoadState(props: { loaded: Loaded<unknown>; feature: string }) {
  const { loading, error } = props.loaded;
  if (loading) return <p class="muted">{t('common.loading')}</p>;
  if (error?.unavailable) {
    return (
      <div class="empty unavailable" data-testid="unavailable">
        <strong>{t('common.unavailable', { feature: props.feature })}</strong>
        <p>{t('common.unavailableHelp')}</p>
      </div>
    );
  }
  if (error) return <ErrorBox error={error} />;
  return null;
}

export function ErrorBox(props: { error: unknown }) {
  if (!props.error) return null;
  const e = props.error;
  const id = e instanceof ApiError ? e.error : 'unknown';
  const msg = e instanceof Error ? e.message : String(e);
  const { text, fix } = errorText(id, msg);
  // Validation errors say which field and why, worded here from their ids (the server's text is English).
  const problems = e instanceof ApiError && Array.isArray(e.details.problems) ? (e.details.problems as Problem[]) : [];
  const detail = e instanceof ApiError && id === 'invalid-number' && !problems.length ? numberErrorDetail(e.details) : null;
  return (
    <div class="error" role="alert" data-error={id}>
      <strong>{text}</strong>
      {detail && <p data-testid="error-detail">{detail}</p>}
      {problems.length > 0 && (
        <ul>
          {problems.map((p, i) => (
            <li key={i} data-testid="error-problem" data-field={p.field}>
              {problemText(p)}
            </li>
          ))}
        </ul>
      )}
      {fix && <p>{fix}</p>}
    </div>
  );
}

export function Toggle(props: { label: string; checked: boolean; onChange: (v: boolean) => void; testid?: string }) {
  return (
    <label class="toggle">
      <input
        type="checkbox"
        checked={props.checked}
        data-testid={props.testid}
        onChange={(e) => props.onChange((e.target as HTMLInputElement).checked)}
      />
      <span>{props.label}</span>
    </label>
  );
}

const DEFAULT_LABELS: Record<string, string> = { webphone: 'Web phone', link: 'Link', deskphone: 'Desk phone' };

/** A device's name on screen: the server's default labels ("Web phone") in the screen's language. */
export function deviceName(label: unknown, kind: unknown): string {
  const l = typeof label === 'string' ? label : '';
  const k = typeof kind === 'string' ? kind : '';
  if (k && k in DEFAULT_LABELS && (!l || DEFAULT_LABELS[k] === l)) return tOr(`device.${k}`, l);
  return l;
}

/** The locale of the app's chosen language (not the browser's): dates and numbers follow the screen. */
export function locale(): string {
  return lang.get() === 'it' ? 'it-IT' : 'en-GB';
}

/** A running call timer: m:ss or h:mm:ss, the same in both languages. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A call's length in words of the chosen language ("1 min 5 s", "1 min 5 sec"). */
export function formatLength(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts: string[] = [];
  if (h) parts.push(t('time.h', { n: h }));
  if (m) parts.push(t('time.min', { n: m }));
  if (s % 60 || parts.length === 0) parts.push(t('time.s', { n: s % 60 }));
  return parts.join(' ');
}

export function formatTime(iso: unknown): string {
  if (typeof iso !== 'string' && typeof iso !== 'number') return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'short', timeStyle: 'medium' }).format(d);
}
