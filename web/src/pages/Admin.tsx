// Admin pages (role admin): users and their devices, dial plan (trunks, click-to-call, card sources and
// all calls have their own files).
// The admin screens' own texts (loaded with them, not with a plain user's first screen).
import '../i18n-admin';
import { useEffect, useState } from 'preact/hooks';
import { api, asItems, type Device } from '../api';
import { t } from '../i18n';
import { ErrorBox, Link, LoadState, Num, navigate, useApi } from '../ui';
import { SipAccount } from './AdminPhones';

interface AdminUser {
  id: number | string;
  username: string;
  display_name: string;
  extension: string;
  role: string;
  outbound: string;
  mobile?: string | null;
  devices?: Device[];
}

const OUTBOUND = ['internal', 'national', 'international'];
const ROLES = ['user', 'admin'];
const KINDS = ['webphone', 'link', 'deskphone'];

function val(e: Event): string {
  return (e.target as HTMLInputElement).value;
}

export function AdminUsers() {
  const loaded = useApi<unknown>('/admin/users');
  const users = asItems<AdminUser>(loaded.data).items;
  const [creating, setCreating] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  return (
    <section class="page admin-users">
      <div class="page-head">
        <h1>{t('admin.users')}</h1>
        <button class="btn primary" data-testid="user-new" onClick={() => setCreating(!creating)}>
          {t('admin.newUser')}
        </button>
      </div>
      {notice && (
        <p class="ok-text" data-testid="admin-notice">
          {notice}
        </p>
      )}
      {creating && (
        <UserForm
          onDone={(u) => {
            setCreating(false);
            if (u) {
              setNotice(t('admin.created', { name: u.username }));
              loaded.reload();
            }
          }}
        />
      )}
      <LoadState loaded={loaded} feature={t('admin.users')} />
      {users.length > 0 && (
        <table class="table" data-testid="users-table">
          <thead>
            <tr>
              <th>{t('admin.username')}</th>
              <th>{t('admin.displayName')}</th>
              <th>{t('admin.extension')}</th>
              <th>{t('admin.role')}</th>
              <th>{t('admin.outbound')}</th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.id} data-testid="user-row" data-username={u.username}>
                <td>
                  <Link href={`/admin/users/${u.id}`}>{u.username}</Link>
                </td>
                <td>{u.display_name}</td>
                <td>
                  <Num value={u.extension} />
                </td>
                <td>{t(`admin.role.${u.role}`)}</td>
                <td>{t(`admin.outbound.${u.outbound}`)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function UserForm(props: { user?: AdminUser; onDone: (u: AdminUser | null) => void }) {
  const u = props.user;
  const [f, setF] = useState({
    username: u?.username ?? '',
    display_name: u?.display_name ?? '',
    extension: u?.extension ?? '',
    password: '',
    role: u?.role ?? 'user',
    outbound: u?.outbound ?? 'national',
    mobile: u?.mobile ?? '',
  });
  const [error, setError] = useState<unknown>(null);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: val(e) });
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const body: Record<string, unknown> = {
      ...f,
      username: f.username.trim(),
      display_name: f.display_name.trim() || f.username.trim(),
      extension: f.extension.trim() || null,
      mobile: f.mobile.trim() || null,
    };
    if (u && !f.password) delete body.password;
    try {
      const saved = u
        ? await api<AdminUser>('PATCH', `/admin/users/${u.id}`, body)
        : await api<AdminUser>('POST', '/admin/users', body);
      props.onDone(saved);
    } catch (x) {
      setError(x);
    }
  };
  return (
    <form class="card form grid2" data-testid="user-form" onSubmit={submit}>
      <label>
        {t('admin.username')}
        <input name="username" required value={f.username} onInput={set('username')} />
      </label>
      <label>
        {t('admin.displayName')}
        <input name="display_name" value={f.display_name} onInput={set('display_name')} />
      </label>
      <label>
        {t('admin.extension')}
        <input name="extension" inputMode="numeric" value={f.extension} onInput={set('extension')} />
      </label>
      <label>
        {u ? t('admin.passwordKeep') : t('admin.password')}
        <input name="password" type="password" autoComplete="new-password" required={!u} value={f.password} onInput={set('password')} />
      </label>
      <label>
        {t('admin.role')}
        <select name="role" value={f.role} onChange={set('role')}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {t(`admin.role.${r}`)}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t('admin.outbound')}
        <select name="outbound" value={f.outbound} onChange={set('outbound')}>
          {OUTBOUND.map((o) => (
            <option key={o} value={o}>
              {t(`admin.outbound.${o}`)}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t('admin.mobile')}
        <input name="mobile" inputMode="tel" value={f.mobile} onInput={set('mobile')} />
      </label>
      <ErrorBox error={error} />
      <div class="actions">
        <button class="btn primary" type="submit" data-testid="user-save">
          {u ? t('common.save') : t('admin.create')}
        </button>
        <button class="btn" type="button" onClick={() => props.onDone(null)}>
          {t('common.cancel')}
        </button>
      </div>
    </form>
  );
}

export function AdminUser(props: { id: string }) {
  const loaded = useApi<AdminUser>(`/admin/users/${encodeURIComponent(props.id)}`);
  const devs = useApi<unknown>(`/admin/users/${encodeURIComponent(props.id)}/devices`);
  // Which desk phones are provisioned ones (they have a Phones entry to open).
  const phonesLoaded = useApi<unknown>('/admin/phones');
  const provisioned = new Set(
    asItems<{ device_id: number | null }>(phonesLoaded.data).items.map((p) => String(p.device_id)),
  );
  const [kind, setKind] = useState('webphone');
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [creds, setCreds] = useState<{ id: Device['id']; sip: { username: string; password: string } } | null>(null);
  const user = loaded.data;
  const devices = asItems<Device>(devs.data).items;
  const addDevice = async () => {
    setError(null);
    try {
      const dev = await api<{ id: Device['id']; kind: string; sip?: { username: string; password: string } }>(
        'POST',
        `/admin/users/${encodeURIComponent(props.id)}/devices`,
        { kind },
      );
      // A desk phone configured by hand needs its SIP account: show it once, right after creation.
      setCreds(dev.sip && dev.kind === 'deskphone' ? { id: dev.id, sip: dev.sip } : null);
      devs.reload();
    } catch (e) {
      setError(e);
    }
  };
  const delDevice = async (id: Device['id']) => {
    setError(null);
    try {
      await api('DELETE', `/admin/devices/${id}`);
      devs.reload();
    } catch (e) {
      setError(e);
    }
  };
  const delUser = async () => {
    if (!user || !confirm(t('admin.confirmDelete', { name: user.username }))) return;
    try {
      await api('DELETE', `/admin/users/${user.id}`);
      navigate('/admin/users');
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section class="page admin-user">
      <Link href="/admin/users">← {t('admin.back')}</Link>
      <LoadState loaded={loaded as never} feature={t('admin.users')} />
      {user && (
        <>
          <h1>{user.display_name || user.username}</h1>
          <UserForm
            key={String(user.id)}
            user={user}
            onDone={(u) => {
              if (u) {
                setSaved(true);
                loaded.reload();
              }
            }}
          />
          {saved && <p class="ok-text">{t('common.saved')}</p>}
          <div class="card">
            <h2>{t('admin.devices')}</h2>
            <ul class="plain" data-testid="device-list">
              {devices.map((d) => (
                <li key={d.id} data-testid="device-row" data-kind={d.kind}>
                  {t(`device.${d.kind}`)}
                  {d.label && d.label !== t(`device.${d.kind}`) && <span class="muted"> · {d.label}</span>}{' '}
                  <span class={`state ${d.online ? 'on' : 'off'}`}>{t(d.online ? 'device.online' : 'device.offline')}</span>{' '}
                  {d.kind === 'deskphone' && provisioned.has(String(d.id)) && (
                    <Link href={`/admin/phones?device=${encodeURIComponent(String(d.id))}`} testid="device-phone-link">
                      {t('phones.openFromDevice')}
                    </Link>
                  )}{' '}
                  <button class="link-btn danger" onClick={() => void delDevice(d.id)}>
                    {t('common.delete')}
                  </button>
                </li>
              ))}
            </ul>
            {creds && (
              <div data-testid="device-credentials">
                <SipAccount deviceId={creds.id} sip={creds.sip} />
              </div>
            )}
            <p>
              <Link href={`/admin/phones?user=${encodeURIComponent(props.id)}`} testid="user-add-phone">
                {t('phones.addForUser')}
              </Link>
            </p>
            <div class="inline-form">
              <select data-testid="device-kind" aria-label={t('admin.deviceKind')} value={kind} onChange={(e) => setKind(val(e))}>
                {KINDS.map((k) => (
                  <option key={k} value={k}>
                    {t(`device.${k}`)}
                  </option>
                ))}
              </select>
              <button class="btn" data-testid="device-add" onClick={() => void addDevice()}>
                {t('admin.addDevice')}
              </button>
            </div>
          </div>
          <ErrorBox error={error} />
          <button class="btn danger" onClick={() => void delUser()}>
            {t('admin.deleteUser')}
          </button>
        </>
      )}
    </section>
  );
}

const DIALPLAN_FIELDS = ['country', 'outbound_prefix', 'international_prefix', 'extension_pattern'] as const;

export function AdminDialplan() {
  const loaded = useApi<Record<string, unknown>>('/admin/settings/dialplan');
  const [f, setF] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    const d = loaded.data;
    if (!d) return;
    const next: Record<string, string> = {};
    for (const k of DIALPLAN_FIELDS) next[k] = d[k] == null ? '' : String(d[k]);
    next.emergency = Array.isArray(d.emergency) ? d.emergency.join(', ') : '';
    setF(next);
  }, [loaded.data]);
  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setSaved(false);
    const body: Record<string, unknown> = {};
    // Empty means "use the default for the country" (null), not an empty prefix... except outbound_prefix,
    // where an empty string is a real choice (no prefix to reach the outside line).
    for (const k of DIALPLAN_FIELDS) body[k] = f[k]?.trim() || (k === 'outbound_prefix' ? '' : null);
    const em = (f.emergency ?? '').split(/[\s,]+/).filter(Boolean);
    body.emergency = em.length ? em : null;
    try {
      await api('PUT', '/admin/settings/dialplan', body);
      setSaved(true);
      loaded.reload();
    } catch (x) {
      setError(x);
    }
  };
  const d = loaded.data ?? {};
  const effective = (k: string) => {
    const v = d[`effective_${k}`];
    return v == null ? null : Array.isArray(v) ? v.join(', ') : String(v);
  };
  return (
    <section class="page admin-dialplan">
      <h1>{t('admin.dialplan')}</h1>
      <LoadState loaded={loaded as never} feature={t('admin.dialplan')} />
      {loaded.data && (
        <form class="card form grid2" data-testid="dialplan-form" onSubmit={save}>
          {[...DIALPLAN_FIELDS, 'emergency'].map((k) => (
            <label key={k}>
              {t(`dialplan.${k}`)}
              <input
                name={k}
                value={f[k] ?? ''}
                onInput={(e) => setF({ ...f, [k]: val(e) })}
                placeholder={effective(k) ?? ''}
              />
              <small class="muted">{t(`dialplan.${k}.help`)}</small>
            </label>
          ))}
          <ErrorBox error={error} />
          <div class="actions">
            <button class="btn primary" type="submit" data-testid="dialplan-save">
              {t('common.save')}
            </button>
            {saved && <span class="ok-text">{t('common.saved')}</span>}
          </div>
        </form>
      )}
    </section>
  );
}
