// The administration screens' one layout, so each page says only what is its own: a page (title, the
// "new" button, help, the last action's notice and error), a list (loading, not available on this
// server, the load's error, the empty state, the table) and a form (fields, the server's validation
// problems worded by field from the answer's problem details, save and cancel). Imported by the admin
// pages only, so it loads with them and not with a plain user's first screen.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { t } from './i18n-admin';
import { ErrorBox, LoadState, type Loaded } from './ui';

/** The value of the input, select or textarea an event came from. */
export function val(e: Event): string {
  return (e.target as HTMLInputElement).value;
}

/** The page's main button ("New user"), hidden while the list could not be loaded when `hidden`. */
export interface PageAction {
  label: string;
  testid: string;
  onClick: () => void;
  hidden?: boolean;
}

export function AdminPage(props: {
  class: string;
  title: string;
  action?: PageAction;
  help?: string;
  /** What the last action did ("Saved trunk A"), shown until the next one. */
  notice?: string | null;
  /** Announced by screen readers as it changes (a list that refreshes by itself). */
  noticeRole?: 'status';
  /** The last action's failure (a delete), as opposed to the list's own load error. */
  error?: unknown;
  children: ComponentChildren;
}) {
  const a = props.action;
  return (
    <section class={`page ${props.class}`}>
      <div class="page-head">
        <h1>{props.title}</h1>
        {a && !a.hidden && (
          <button class="btn primary" data-testid={a.testid} onClick={a.onClick}>
            {a.label}
          </button>
        )}
      </div>
      {props.help && <p class="muted">{props.help}</p>}
      {props.notice && (
        <p class="ok-text" data-testid="admin-notice" role={props.noticeRole}>
          {props.notice}
        </p>
      )}
      <ErrorBox error={props.error} />
      {props.children}
    </section>
  );
}

/** A table of what the server listed, with what shows instead while loading, on failure or when empty. */
export function AdminList<T>(props: {
  loaded: Loaded<unknown>;
  /** The feature's name, for "not available on this server: ...". */
  feature: string;
  items: T[];
  /** The empty state; without it an empty list shows nothing. */
  empty?: { text: string; testid: string };
  testid: string;
  columns: string[];
  /** A last column of row buttons (its header is for screen readers only). */
  actions?: boolean;
  /** Scroll sideways on narrow screens instead of squeezing the columns. */
  scroll?: boolean;
  /** One `<tr>` per item. */
  row: (item: T) => ComponentChildren;
}) {
  const { loaded, items, empty } = props;
  const table = (
    <table class="table" data-testid={props.testid}>
      <thead>
        <tr>
          {props.columns.map((c) => (
            <th key={c} scope="col">
              {c}
            </th>
          ))}
          {props.actions && (
            <th scope="col">
              <span class="sr-only">{t('phones.actions')}</span>
            </th>
          )}
        </tr>
      </thead>
      <tbody>{items.map(props.row)}</tbody>
    </table>
  );
  return (
    <>
      <LoadState loaded={loaded} feature={props.feature} />
      {empty && !loaded.error && !loaded.loading && items.length === 0 && (
        <p class="empty" data-testid={empty.testid}>
          {empty.text}
        </p>
      )}
      {items.length > 0 && (props.scroll ? <div class="scroll-x">{table}</div> : table)}
    </>
  );
}

/** A form's text fields, the save's error, and the submit that shows it. */
export interface FormState<F extends Record<string, string>> {
  f: F;
  setF: (f: F) => void;
  /** The input handler of field `k`. */
  set: (k: keyof F) => (e: Event) => void;
  error: unknown;
  setError: (e: unknown) => void;
  /** The form's submit handler: runs `save`, and shows what it throws (the server's problem details). */
  submit: (save: () => Promise<void>) => (e: Event) => Promise<void>;
}

export function useForm<F extends Record<string, string>>(
  initial: F | (() => F),
  opts: { clearErrorOnInput?: boolean } = {},
): FormState<F> {
  const [f, setF] = useState<F>(initial);
  const [error, setError] = useState<unknown>(null);
  return {
    f,
    setF,
    set: (k) => (e) => {
      setF({ ...f, [k]: val(e) });
      if (opts.clearErrorOnInput) setError(null);
    },
    error,
    setError,
    submit: (save) => async (e) => {
      e.preventDefault();
      setError(null);
      try {
        await save();
      } catch (x) {
        setError(x);
      }
    },
  };
}

/**
 * A form card: its fields, then the save's error (the server's `details.problems` listed by field, in the
 * screen's language), then save and cancel. `wide` lays the title and the buttons across both columns.
 */
export function AdminForm(props: {
  testid: string;
  onSubmit: (e: Event) => void | Promise<void>;
  error: unknown;
  title?: string;
  wide?: boolean;
  submitLabel: string;
  submitTestid: string;
  onCancel?: () => void;
  /** After the buttons (a "Saved" mark). */
  after?: ComponentChildren;
  children: ComponentChildren;
}) {
  return (
    <form class="card form grid2" data-testid={props.testid} onSubmit={props.onSubmit}>
      {props.title && <h2 class="span2">{props.title}</h2>}
      {props.children}
      <ErrorBox error={props.error} />
      <div class={props.wide ? 'actions span2' : 'actions'}>
        <button class="btn primary" type="submit" data-testid={props.submitTestid}>
          {props.submitLabel}
        </button>
        {props.onCancel && (
          <button class="btn" type="button" onClick={props.onCancel}>
            {t('common.cancel')}
          </button>
        )}
        {props.after}
      </div>
    </form>
  );
}

/** One labelled field of a form, with its help line. */
export function Field(props: { label: string; help?: string; wide?: boolean; children: ComponentChildren }) {
  return (
    <label class={props.wide ? 'span2' : undefined}>
      {props.label}
      {props.children}
      {props.help && <small class="muted">{props.help}</small>}
    </label>
  );
}
