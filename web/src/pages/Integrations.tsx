// The user's integrations: personal access tokens (created with scopes and an expiry, the secret shown
// once, last use, revoke) and the screen pop (a CRM address opened when a call rings or is answered).
import { useEffect, useState } from 'preact/hooks';
import { api, type Schema } from '../api';
import { t } from '../i18n';
import { reloadScreenPop, screenPopBlocked } from '../screenpop';
import { useStore } from '../store';
import './integrations.css';
import { ErrorBox, LoadState, formatTime, useApi } from '../ui';

export const SCOPES = ['calls:write', 'calls:read', 'history:read', 'phonebook:read', 'phonebook:write'];

export type ApiToken = Schema<'TokenOut'>;

interface PopConfig {
  url_template: string;
  on: 'ringing' | 'answered';
  enabled: boolean;
  source: string;
}

/** A list of tokens with a form to create one; `path` is the personal or the service collection. */
export function TokenManager(props: { path: string; testid: string }) {
  const loaded = useApi<ApiToken[]>(props.path);
  const [name, setName] = useState('');
  const [note, setNote] = useState('');
  const [days, setDays] = useState('90');
  const [scopes, setScopes] = useState<string[]>(['calls:write']);
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const toggle = (s: string) => setScopes(scopes.includes(s) ? scopes.filter((x) => x !== s) : [...scopes, s]);
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const n = Number(days);
    const expires_at = n > 0 ? new Date(Date.now() + n * 86400_000).toISOString() : null;
    try {
      const res = await api<Schema<'TokenCreatedOut'>>('POST', props.path, { name, note, scopes, expires_at });
      setSecret(res.secret);
      setName('');
      setNote('');
      loaded.reload();
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (id: number) => {
    setError(null);
    try {
      await api('DELETE', `${props.path}/${id}`);
      loaded.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="card" data-testid={props.testid}>
      <LoadState loaded={loaded as never} feature={t('tokens.title')} />
      {secret && (
        <div class="notice" data-testid="token-secret">
          <strong>{t('tokens.secretOnce')}</strong>
          <code>{secret}</code>
        </div>
      )}
      <table class="list">
        <thead>
          <tr>
            <th>{t('tokens.name')}</th>
            <th>{t('tokens.scopes')}</th>
            <th>{t('tokens.expires')}</th>
            <th>{t('tokens.lastUsed')}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(loaded.data ?? []).map((tok) => (
            <tr key={tok.id} data-testid="token-row">
              <td>
                {tok.name} <span class="muted">{tok.prefix}…</span>
                {tok.note && <div class="muted">{tok.note}</div>}
              </td>
              <td>{tok.scopes.join(', ')}</td>
              <td>{tok.expires_at ? formatTime(tok.expires_at) : t('tokens.never')}</td>
              <td>{tok.last_used_at ? formatTime(tok.last_used_at) : t('tokens.unused')}</td>
              <td>
                <button class="btn danger" data-testid="token-revoke" onClick={() => void revoke(tok.id)}>
                  {t('tokens.revoke')}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="form" onSubmit={(e) => void create(e)}>
        <label>
          {t('tokens.name')}
          <input data-testid="token-name" value={name} required onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          {t('tokens.note')}
          <input value={note} onInput={(e) => setNote((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          {t('tokens.days')}
          <input type="number" min="0" max="730" value={days} onInput={(e) => setDays((e.target as HTMLInputElement).value)} />
        </label>
        <fieldset>
          <legend>{t('tokens.scopes')}</legend>
          {SCOPES.map((s) => (
            <label key={s} class="inline">
              <input type="checkbox" checked={scopes.includes(s)} onChange={() => toggle(s)} /> {s}
            </label>
          ))}
        </fieldset>
        <button class="btn primary" type="submit" data-testid="token-create">
          {t('tokens.create')}
        </button>
      </form>
      <ErrorBox error={error} />
    </div>
  );
}

/** The screen pop template and moment; `path` is /me/screen-pop or /admin/screen-pop. */
export function ScreenPopForm(props: { path: string }) {
  const loaded = useApi<PopConfig>(props.path);
  const [form, setForm] = useState<PopConfig | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => setForm(loaded.data), [loaded.data]);
  const save = async (e: Event) => {
    e.preventDefault();
    if (!form) return;
    setError(null);
    setSaved(false);
    try {
      await api('PUT', props.path, { url_template: form.url_template, on: form.on, enabled: form.enabled });
      setSaved(true);
      loaded.reload();
      void reloadScreenPop();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="card" data-testid="screen-pop">
      <LoadState loaded={loaded as never} feature={t('screenpop.title')} />
      {form && (
        <form class="form" onSubmit={(e) => void save(e)}>
          <label>
            {t('screenpop.template')}
            <input
              data-testid="screen-pop-template"
              value={form.url_template}
              placeholder="https://crm.example/search?phone={e164}&name={name}"
              onInput={(e) => setForm({ ...form, url_template: (e.target as HTMLInputElement).value })}
            />
          </label>
          <p class="muted">{t('screenpop.help')}</p>
          <label>
            {t('screenpop.on')}
            <select
              data-testid="screen-pop-on"
              value={form.on}
              onChange={(e) => setForm({ ...form, on: (e.target as HTMLSelectElement).value as PopConfig['on'] })}
            >
              <option value="ringing">{t('screenpop.onRinging')}</option>
              <option value="answered">{t('screenpop.onAnswered')}</option>
            </select>
          </label>
          <label class="inline">
            <input type="checkbox" checked={form.enabled} onChange={() => setForm({ ...form, enabled: !form.enabled })} />{' '}
            {t('screenpop.enabled')}
          </label>
          {loaded.data?.source === 'company' && props.path.startsWith('/me') && (
            <p class="muted">{t('screenpop.fromCompany')}</p>
          )}
          <button class="btn primary" type="submit" data-testid="screen-pop-save">
            {t('common.save')}
          </button>
          {saved && <span class="ok">{t('common.saved')}</span>}
        </form>
      )}
      <ErrorBox error={error} />
    </div>
  );
}

export function Integrations() {
  return (
    <section class="page integrations">
      <h1>{t('integrations.title')}</h1>
      <h2>{t('tokens.title')}</h2>
      <p class="muted">{t('tokens.help')}</p>
      <TokenManager path="/me/tokens" testid="my-tokens" />
      <h2>{t('screenpop.title')}</h2>
      <ScreenPopForm path="/me/screen-pop" />
      <h2>{t('dial.title')}</h2>
      <p class="muted">{t('dial.help', { url: `${location.origin}/dial?to=` })}</p>
    </section>
  );
}

/** Shown when the browser blocked the screen pop's window: the same address as a link to click. */
export function ScreenPopNotice() {
  const url = useStore(screenPopBlocked);
  if (!url) return null;
  return (
    <div class="toast screen-pop-blocked" data-testid="screen-pop-blocked" role="status">
      {t('screenpop.blocked')}{' '}
      <a href={url} target="_blank" rel="noopener noreferrer" onClick={() => screenPopBlocked.set(null)}>
        {t('screenpop.open')}
      </a>{' '}
      <button class="link-btn" onClick={() => screenPopBlocked.set(null)}>
        {t('common.close')}
      </button>
    </div>
  );
}
