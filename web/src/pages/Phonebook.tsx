// Phonebook: search as you type (shared and private contacts), details, add/edit private contacts.
// Every number is a click-to-call control.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, asItems, type Schema } from '../api';
import { tOr, t } from '../i18n';
import { ContactTransfer } from '../components/ContactTransfer';
import { ErrorBox, LoadState, Num, useApi } from '../ui';

export type Contact = Schema<'ContactOut'>;

const TYPES = ['work', 'mobile', 'home', 'fax', 'other'] as const;

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const id = window.setTimeout(() => setV(value), ms);
    return () => window.clearTimeout(id);
  }, [value, ms]);
  return v;
}

export function Phonebook() {
  const [q, setQ] = useState('');
  const dq = useDebounced(q.trim(), 150);
  const [selected, setSelected] = useState<Contact | null>(null);
  const [editing, setEditing] = useState<Contact | 'new' | null>(null);
  const [extra, setExtra] = useState<Contact[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [transfer, setTransfer] = useState(false);
  const loaded = useApi<unknown>(`/phonebook?q=${encodeURIComponent(dq)}&limit=50`);
  const { items, next } = asItems<Contact>(loaded.data);
  useEffect(() => {
    setExtra([]);
    setCursor(next);
  }, [loaded.data]);
  const all = [...items, ...extra];
  const more = async () => {
    if (!cursor) return;
    const page = asItems<Contact>(
      await api('GET', `/phonebook?q=${encodeURIComponent(dq)}&limit=50&cursor=${encodeURIComponent(cursor)}`),
    );
    setExtra([...extra, ...page.items]);
    setCursor(page.next);
  };
  return (
    <section class="page phonebook">
      <div class="page-head">
        <h1>{t('phonebook.title')}</h1>
        <span class="actions">
          <button class="btn" data-testid="contact-transfer-open" onClick={() => setTransfer(!transfer)}>
            {t('transfer.open')}
          </button>
          <button class="btn primary" data-testid="contact-add" onClick={() => setEditing('new')}>
            {t('phonebook.add')}
          </button>
        </span>
      </div>
      {transfer && <ContactTransfer onImported={() => loaded.reload()} onClose={() => setTransfer(false)} />}
      <input
        class="search"
        type="search"
        data-testid="phonebook-search"
        placeholder={t('phonebook.search')}
        value={q}
        autoFocus
        onInput={(e) => setQ((e.target as HTMLInputElement).value)}
      />
      {/^\+?[\d\s()./-]{3,}$/.test(dq) && (
        <p class="dial-typed" data-testid="dial-typed">
          <Num value={dq} label={t('call.clickToCall', { number: dq })} />
        </p>
      )}
      <LoadState loaded={loaded} feature={t('nav.phonebook')} />
      {editing && (
        <ContactForm
          contact={editing === 'new' ? null : editing}
          onDone={(c) => {
            setEditing(null);
            if (c) setSelected(c);
            loaded.reload();
          }}
        />
      )}
      {!loaded.loading && !loaded.error && all.length === 0 && (
        <p class="empty">{dq ? t('phonebook.noResults', { q: dq }) : t('phonebook.empty')}</p>
      )}
      <div class="split">
        <ul class="list contacts" data-testid="contact-list">
          {all.map((c) => (
            <li
              key={c.id}
              class={selected?.id === c.id ? 'sel' : ''}
              data-testid="contact"
              onClick={() => setSelected(c)}
            >
              <div class="row-main">
                <strong>{c.name}</strong>
                {c.company && <span class="muted"> · {c.company}</span>}
                {!c.shared && <span class="tag">{t('phonebook.private')}</span>}
              </div>
              <div class="nums">
                {(c.numbers ?? []).slice(0, 2).map((n) => (
                  <Num key={n.number} value={n.number} display={n.display} />
                ))}
              </div>
            </li>
          ))}
        </ul>
        {selected && (
          <ContactDetails
            contact={selected}
            onEdit={() => setEditing(selected)}
            onClose={() => setSelected(null)}
          />
        )}
      </div>
      {cursor && (
        <button class="btn" onClick={() => void more()}>
          {t('common.more')}
        </button>
      )}
    </section>
  );
}

function ContactDetails(props: { contact: Contact; onEdit: () => void; onClose: () => void }) {
  const c = props.contact;
  return (
    <aside class="card details" data-testid="contact-details">
      <div class="page-head">
        <h2>{c.name}</h2>
        <button class="link-btn" onClick={props.onClose}>
          {t('common.close')}
        </button>
      </div>
      {c.company && <p>{c.company}</p>}
      <p class="muted">{c.shared ? t('phonebook.shared') : t('phonebook.private')}</p>
      <dl>
        {(c.numbers ?? []).map((n) => (
          <div key={`${n.type}${n.number}`} class="dl-row">
            <dt>{tOr(`phonebook.numtype.${n.type}`, n.type)}</dt>
            <dd>
              <Num value={n.number} display={n.display} />
            </dd>
          </div>
        ))}
        {c.email && (
          <div class="dl-row">
            <dt>{t('phonebook.email')}</dt>
            <dd>
              <a href={`mailto:${c.email}`}>{c.email}</a>
            </dd>
          </div>
        )}
        {c.notes && (
          <div class="dl-row">
            <dt>{t('phonebook.notes')}</dt>
            <dd class="pre">{c.notes}</dd>
          </div>
        )}
      </dl>
      {!c.shared && (
        <button class="btn" data-testid="contact-edit" onClick={props.onEdit}>
          {t('common.edit')}
        </button>
      )}
    </aside>
  );
}

function ContactForm(props: { contact: Contact | null; onDone: (c: Contact | null) => void }) {
  const c = props.contact;
  const [name, setName] = useState(c?.name ?? '');
  const [company, setCompany] = useState(c?.company ?? '');
  const [email, setEmail] = useState(c?.email ?? '');
  const [notes, setNotes] = useState(c?.notes ?? '');
  const [numbers, setNumbers] = useState(c?.numbers?.length ? c.numbers : [{ type: 'work', number: '' }]);
  const [error, setError] = useState<unknown>(null);
  const save = async (e: Event) => {
    e.preventDefault();
    const body: Record<string, unknown> = {
      name: name.trim(),
      company: company.trim(),
      email: email.trim(),
      notes: notes.trim(),
      numbers: numbers.filter((n) => n.number.trim()).map((n) => ({ type: n.type, number: n.number.trim() })),
    };
    // Users add private contacts; shared ones are the admins' (and PATCH does not take the flag).
    if (!c) body.shared = false;
    try {
      const saved = c
        ? await api<Contact>('PATCH', `/phonebook/${c.id}`, body)
        : await api<Contact>('POST', '/phonebook', body);
      props.onDone(saved);
    } catch (x) {
      setError(
        x instanceof ApiError && x.missingEndpoint
          ? new ApiError(x.status, 'unknown', t('common.unavailable', { feature: t('nav.phonebook') }))
          : x,
      );
    }
  };
  const setNum = (i: number, patch: Partial<{ type: string; number: string }>) =>
    setNumbers(numbers.map((n, j) => (i === j ? { ...n, ...patch } : n)));
  return (
    <form class="card form" data-testid="contact-form" onSubmit={save}>
      <label>
        {t('phonebook.name')}
        <input name="name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        {t('phonebook.company')}
        <input name="company" value={company} onInput={(e) => setCompany((e.target as HTMLInputElement).value)} />
      </label>
      <fieldset>
        <legend>{t('phonebook.numbers')}</legend>
        {numbers.map((n, i) => (
          <div class="numrow" key={i}>
            <select value={n.type} onChange={(e) => setNum(i, { type: (e.target as HTMLSelectElement).value })}>
              {TYPES.map((ty) => (
                <option key={ty} value={ty}>
                  {t(`phonebook.numtype.${ty}`)}
                </option>
              ))}
            </select>
            <input
              name={`number-${i}`}
              inputMode="tel"
              value={n.number}
              onInput={(e) => setNum(i, { number: (e.target as HTMLInputElement).value })}
            />
          </div>
        ))}
        <button type="button" class="link-btn" onClick={() => setNumbers([...numbers, { type: 'mobile', number: '' }])}>
          + {t('phonebook.addNumber')}
        </button>
      </fieldset>
      <label>
        {t('phonebook.email')}
        <input name="email" type="email" value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        {t('phonebook.notes')}
        <textarea name="notes" value={notes} onInput={(e) => setNotes((e.target as HTMLTextAreaElement).value)} />
      </label>
      <ErrorBox error={error} />
      <div class="actions">
        <button class="btn primary" type="submit" data-testid="contact-save">
          {t('common.save')}
        </button>
        <button class="btn" type="button" onClick={() => props.onDone(null)}>
          {t('common.cancel')}
        </button>
      </div>
    </form>
  );
}
