// The administration screens' one layout, so each page says only what is its own: a page (title, the
// "new" button, help, the last action's notice and error), a list (loading, not available on this
// server, the load's error, the empty state, the table) with its state (`useAdminList`: the items, the
// open form, delete with confirmation), a form (fields, the server's validation problems worded by field
// from the answer's problem details, save and cancel), an ordered list of switchable ways (click-to-call
// order) and the users a select offers. Imported by the admin pages only, so it loads with them and not
// with a plain user's first screen.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { api, asItems, type Schema } from './api';
import { t } from './i18n-admin';
import { ErrorBox, LoadState, useApi, type Loaded } from './ui';

/** A user as the admin screens' selects and columns name them (from `/admin/users`). */
export type UserRef = Pick<Schema<'AdminUserOut'>, 'id' | 'username' | 'display_name' | 'extension'>;

/** The users of `/admin/users`, for selects and for naming a user id in a list. */
export function useUsers(): UserRef[] {
  return asItems<UserRef>(useApi<Schema<'AdminUserOut'>[]>('/admin/users').data).items;
}

/** How a user's extension follows the name: "Anna Rossi (201)" or "Anna Rossi · 201". */
export type ExtensionStyle = 'paren' | 'dot';

function withExtension(u: UserRef, style?: ExtensionStyle): string {
  const name = u.display_name || u.username;
  if (!style || !u.extension) return name;
  return style === 'paren' ? `${name} (${u.extension})` : `${name} · ${u.extension}`;
}

/** A user's name for a list ("Anna Rossi", `#7` when the user is gone), with the extension in `style`. */
export function userName(users: UserRef[], id: number | null, style?: ExtensionStyle): string {
  if (id === null) return '';
  const u = users.find((x) => x.id === id);
  return u ? withExtension(u, style) : `#${id}`;
}

/** The options of a user select: each user's name and extension, after an optional "nobody" choice. */
export function UserOptions(props: { users: UserRef[]; none?: string; style: ExtensionStyle }) {
  return (
    <>
      {props.none !== undefined && <option value="">{props.none}</option>}
      {props.users.map((u) => (
        <option key={u.id} value={String(u.id)}>
          {withExtension(u, props.style)}
        </option>
      ))}
    </>
  );
}

/** What a screen's actions said: the last one's notice, or its failure. */
export interface Actions {
  notice: string | null;
  setNotice: (n: string | null) => void;
  error: unknown;
  /** Runs `work`: the text it returns becomes the notice, what it throws (the server's problem) the error. */
  run: (work: () => Promise<string | void>) => Promise<void>;
}

export function useActions(): Actions {
  const [notice, setNotice] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  return {
    notice,
    setNotice,
    error,
    run: async (work) => {
      setError(null);
      try {
        const said = await work();
        if (typeof said === 'string') setNotice(said);
      } catch (e) {
        setError(e);
      }
    },
  };
}

/** A list screen's state: what the server listed, the form open on it (a new item or one to edit). */
export interface AdminListState<T extends { id: number | string }> extends Actions {
  loaded: Loaded<T[]>;
  items: T[];
  /** Whether a form is open, and on which item (null: a new one). */
  open: boolean;
  editing: T | null;
  /** A key that remounts the form when it moves to another item. */
  formKey: string;
  toggleNew: () => void;
  edit: (item: T) => void;
  /** The form's end: closed; when it saved, `notice` says so and the list is asked again. */
  done: (notice: string | null) => void;
  /** Deletes `path` once the admin agrees to `question`; then `notice`, and the list is asked again. */
  remove: (item: T, how: { question: string; path: string; notice: string }) => void;
}

export function useAdminList<T extends { id: number | string }>(
  path: string,
  opts: { startNew?: boolean } = {},
): AdminListState<T> {
  const loaded = useApi<T[]>(path);
  const actions = useActions();
  const [editing, setEditing] = useState<T | 'new' | null>(opts.startNew ? 'new' : null);
  return {
    ...actions,
    loaded,
    items: asItems<T>(loaded.data).items,
    open: editing !== null,
    editing: editing === 'new' ? null : editing,
    formKey: editing === 'new' || editing === null ? 'new' : String(editing.id),
    toggleNew: () => setEditing(editing === 'new' ? null : 'new'),
    edit: setEditing,
    done: (notice) => {
      setEditing(null);
      if (notice) {
        actions.setNotice(notice);
        loaded.reload();
      }
    },
    remove: (item, how) => {
      if (!confirm(how.question)) return;
      void actions.run(async () => {
        await api('DELETE', how.path);
        if (editing !== 'new' && editing?.id === item.id) setEditing(null);
        loaded.reload();
        return how.notice;
      });
    },
  };
}

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
  /** A secondary action ("Export as CSV"): a plain button, not the primary one. */
  plain?: boolean;
}

export function AdminPage(props: {
  class: string;
  /** The page's heading; none while what it names is loading. */
  title?: string;
  /** Before the heading (a link back to the list). */
  lead?: ComponentChildren;
  action?: PageAction;
  help?: string;
  /** Above the notice (the list's filters). */
  toolbar?: ComponentChildren;
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
      {props.lead}
      {props.title && (
        <div class="page-head">
          <h1>{props.title}</h1>
          {a && !a.hidden && (
            <button class={a.plain ? 'btn' : 'btn primary'} data-testid={a.testid} onClick={a.onClick}>
              {a.label}
            </button>
          )}
        </div>
      )}
      {props.help && <p class="muted">{props.help}</p>}
      {props.toolbar}
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

/** A labelled text input bound to field `name` of a `useForm` form, with its help line. */
export function TextField<F extends Record<string, string>>(props: {
  form: FormState<F>;
  name: keyof F & string;
  label: string;
  help?: string;
  wide?: boolean;
  type?: 'text' | 'number' | 'password';
  required?: boolean;
  placeholder?: string;
  inputMode?: 'tel' | 'numeric';
  autoComplete?: string;
  min?: number;
  max?: number;
}) {
  const { form, name, label, help, wide, type, ...input } = props;
  // preact's input types depend on `type`; all three this takes share the attributes used here.
  return (
    <Field label={label} help={help} wide={wide}>
      <input {...input} type={type as 'text' | undefined} name={name} value={form.f[name]} onInput={form.set(name)} />
    </Field>
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

/** One way in an ordered list of ways, switched on or off. */
export interface Toggled<N extends string = string> {
  name: N;
  on: boolean;
}

/**
 * The order in which the server tries the ways (click-to-call's desk phone strategies): each row a
 * switch with its name and help, and buttons that move it up or down. `testid` prefixes the test ids
 * of a row's switch (`<testid>-on-<name>`) and, when `moveTestids`, of its buttons; `named`
 * puts the row's name in the move buttons' labels. `children` come after the rows (a fixed last way).
 */
export function OrderedToggles<N extends string>(props: {
  rows: Toggled<N>[];
  onChange: (rows: Toggled<N>[]) => void;
  label: (name: N) => string;
  help?: (name: N) => string;
  testid: string;
  rowTestid: string;
  listTestid?: string;
  moveTestids?: boolean;
  named?: boolean;
  children?: ComponentChildren;
}) {
  const { rows, onChange } = props;
  const move = (i: number, by: number) => {
    const j = i + by;
    if (j < 0 || j >= rows.length) return;
    const next = [...rows];
    [next[i], next[j]] = [next[j], next[i]];
    onChange(next);
  };
  const button = (r: Toggled<N>, i: number, dir: 'up' | 'down') => (
    <button
      type="button"
      class="btn small"
      aria-label={props.named ? `${t(`c2c.${dir}`)}: ${props.label(r.name)}` : t(`c2c.${dir}`)}
      title={t(`c2c.${dir}`)}
      data-testid={props.moveTestids ? `${props.testid}-${dir}-${r.name}` : undefined}
      disabled={dir === 'up' ? i === 0 : i === rows.length - 1}
      onClick={() => move(i, dir === 'up' ? -1 : 1)}
    >
      {dir === 'up' ? '↑' : '↓'}
    </button>
  );
  return (
    <ol class="strategies" data-testid={props.listTestid}>
      {rows.map((r, i) => (
        <li key={r.name} data-testid={props.rowTestid} data-name={r.name} data-on={r.on ? 'true' : 'false'}>
          <label class="toggle">
            <input
              type="checkbox"
              checked={r.on}
              data-testid={`${props.testid}-on-${r.name}`}
              onChange={(e) => onChange(rows.map((x, j) => (j === i ? { ...x, on: (e.target as HTMLInputElement).checked } : x)))}
            />
            <span>
              <strong>{props.label(r.name)}</strong>
              {props.help && <small class="muted block">{props.help(r.name)}</small>}
            </span>
          </label>
          <span class="updown">
            {button(r, i, 'up')}
            {button(r, i, 'down')}
          </span>
        </li>
      ))}
      {props.children}
    </ol>
  );
}

/** A save button outside a form, the save's error above it and a "Saved" mark after it. */
export function SaveBar(props: {
  onSave: () => void;
  error: unknown;
  saved: boolean;
  testid: string;
  savedTestid: string;
  primary?: boolean;
}) {
  return (
    <>
      <ErrorBox error={props.error} />
      <div class="actions">
        <button class={props.primary ? 'btn primary' : 'btn'} data-testid={props.testid} onClick={props.onSave}>
          {t('common.save')}
        </button>
        {props.saved && (
          <span class="ok-text" data-testid={props.savedTestid}>
            {t('common.saved')}
          </span>
        )}
      </div>
    </>
  );
}
