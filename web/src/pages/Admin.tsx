// Admin pages (role admin): users and their devices, dial plan (trunks, click-to-call, card sources and
// all calls have their own files).
import { useEffect, useState } from 'preact/hooks';
import { AdminForm, AdminList, AdminPage, Field, TextField, useActions, useAdminList, useForm, val } from '../admin-ui';
import { api, asItems, type Schema } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { ErrorBox, Link, LoadState, Num, navigate, useApi } from '../ui';
import { SipAccount } from './AdminPhones';

type AdminUser = Schema<'AdminUserOut'>;
type AdminDevice = Schema<'AdminDeviceOut'>;
type Role = Schema<'Role'>;
type Outbound = Schema<'Outbound'>;
type DeviceKind = Schema<'DeviceKind'>;

const OUTBOUND: readonly Outbound[] = ['internal', 'national', 'international'];
const ROLES: readonly Role[] = ['user', 'admin'];
const KINDS: readonly DeviceKind[] = ['webphone', 'link', 'deskphone'];

export function AdminUsers() {
  const list = useAdminList<AdminUser>('/admin/users');
  return (
    <AdminPage
      class="admin-users"
      title={t('admin.users')}
      action={{ label: t('admin.newUser'), testid: 'user-new', onClick: list.toggleNew }}
      notice={list.notice}
    >
      {list.open && <UserForm onDone={(u) => list.done(u && t('admin.created', { name: u.username }))} />}
      <AdminList
        loaded={list.loaded}
        feature={t('admin.users')}
        items={list.items}
        testid="users-table"
        columns={[t('admin.username'), t('admin.displayName'), t('admin.extension'), t('admin.role'), t('admin.outbound')]}
        row={(u) => (
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
        )}
      />
    </AdminPage>
  );
}

function UserForm(props: { user?: AdminUser; onDone: (u: AdminUser | null) => void }) {
  const u = props.user;
  const form = useForm({
    username: u?.username ?? '',
    display_name: u?.display_name ?? '',
    extension: u?.extension ?? '',
    password: '',
    role: u?.role ?? 'user',
    outbound: u?.outbound ?? 'national',
    mobile: u?.mobile ?? '',
  });
  const { f, set } = form;
  const save = async () => {
    const fields = {
      username: f.username.trim(),
      display_name: f.display_name.trim() || f.username.trim(),
      extension: f.extension.trim() || null,
      mobile: f.mobile.trim() || null,
      role: f.role as Role,
      outbound: f.outbound as Outbound,
    };
    let saved: AdminUser;
    if (u) {
      const patch: Schema<'UserPatch'> = f.password ? { ...fields, password: f.password } : fields;
      saved = await api<AdminUser>('PATCH', `/admin/users/${u.id}`, patch);
    } else {
      const created: Schema<'UserCreate'> = { ...fields, password: f.password };
      saved = await api<AdminUser>('POST', '/admin/users', created);
    }
    props.onDone(saved);
  };
  return (
    <AdminForm
      testid="user-form"
      onSubmit={form.submit(save)}
      error={form.error}
      submitLabel={u ? t('common.save') : t('admin.create')}
      submitTestid="user-save"
      onCancel={() => props.onDone(null)}
    >
      <TextField form={form} name="username" label={t('admin.username')} required />
      <TextField form={form} name="display_name" label={t('admin.displayName')} />
      <TextField form={form} name="extension" label={t('admin.extension')} inputMode="numeric" />
      <TextField
        form={form}
        name="password"
        label={u ? t('admin.passwordKeep') : t('admin.password')}
        type="password"
        autoComplete="new-password"
        required={!u}
      />
      <Field label={t('admin.role')}>
        <select name="role" value={f.role} onChange={set('role')}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {t(`admin.role.${r}`)}
            </option>
          ))}
        </select>
      </Field>
      <Field label={t('admin.outbound')}>
        <select name="outbound" value={f.outbound} onChange={set('outbound')}>
          {OUTBOUND.map((o) => (
            <option key={o} value={o}>
              {t(`admin.outbound.${o}`)}
            </option>
          ))}
        </select>
      </Field>
      <TextField form={form} name="mobile" label={t('admin.mobile')} inputMode="tel" />
    </AdminForm>
  );
}

export function AdminUser(props: { id: string }) {
  const loaded = useApi<AdminUser>(`/admin/users/${encodeURIComponent(props.id)}`);
  const devs = useApi<AdminDevice[]>(`/admin/users/${encodeURIComponent(props.id)}/devices`);
  // Which desk phones are provisioned ones (they have a Phones entry to open).
  const phonesLoaded = useApi<Schema<'PhoneOut'>[]>('/admin/phones');
  const provisioned = new Set(asItems<Schema<'PhoneOut'>>(phonesLoaded.data).items.map((p) => String(p.device_id)));
  const [kind, setKind] = useState<DeviceKind>('webphone');
  const actions = useActions();
  const [saved, setSaved] = useState(false);
  const [creds, setCreds] = useState<{ id: AdminDevice['id']; sip: AdminDevice['sip'] } | null>(null);
  const user = loaded.data;
  const devices = asItems<AdminDevice>(devs.data).items;
  const addDevice = () =>
    actions.run(async () => {
      const body: Schema<'DeviceCreate'> = { kind };
      const dev = await api<AdminDevice>('POST', `/admin/users/${encodeURIComponent(props.id)}/devices`, body);
      // A desk phone configured by hand needs its SIP account: show it once, right after creation.
      setCreds(dev.sip && dev.kind === 'deskphone' ? { id: dev.id, sip: dev.sip } : null);
      devs.reload();
    });
  const delDevice = (id: AdminDevice['id']) =>
    actions.run(async () => {
      await api('DELETE', `/admin/devices/${id}`);
      devs.reload();
    });
  const delUser = async () => {
    if (!user || !confirm(t('admin.confirmDelete', { name: user.username }))) return;
    await actions.run(async () => {
      await api('DELETE', `/admin/users/${user.id}`);
      navigate('/admin/users');
    });
  };
  return (
    <AdminPage
      class="admin-user"
      lead={<Link href="/admin/users">← {t('admin.back')}</Link>}
      title={user ? user.display_name || user.username : undefined}
    >
      <LoadState loaded={loaded} feature={t('admin.users')} />
      {user && (
        <>
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
              <select data-testid="device-kind" aria-label={t('admin.deviceKind')} value={kind} onChange={(e) => setKind(val(e) as DeviceKind)}>
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
          <ErrorBox error={actions.error} />
          <button class="btn danger" onClick={() => void delUser()}>
            {t('admin.deleteUser')}
          </button>
        </>
      )}
    </AdminPage>
  );
}

const DIALPLAN_FIELDS = ['country', 'outbound_prefix', 'international_prefix', 'extension_pattern'] as const;
type DialplanForm = Record<(typeof DIALPLAN_FIELDS)[number] | 'emergency', string>;

const NO_DIALPLAN: DialplanForm = { country: '', outbound_prefix: '', international_prefix: '', extension_pattern: '', emergency: '' };

export function AdminDialplan() {
  const loaded = useApi<Schema<'DialPlanOut'>>('/admin/settings/dialplan');
  const form = useForm<DialplanForm>(NO_DIALPLAN);
  const { f, setF } = form;
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    const d = loaded.data;
    if (!d) return;
    const next = { ...NO_DIALPLAN };
    for (const k of DIALPLAN_FIELDS) next[k] = d[k] == null ? '' : String(d[k]);
    next.emergency = Array.isArray(d.emergency) ? d.emergency.join(', ') : '';
    setF(next);
  }, [loaded.data]);
  const save = async () => {
    setSaved(false);
    // Empty means "use the default for the country" (null), not an empty prefix... except outbound_prefix,
    // where an empty string is a real choice (no prefix to reach the outside line).
    const em = f.emergency.split(/[\s,]+/).filter(Boolean);
    const body: Schema<'DialPlanIn'> = {
      country: f.country.trim() || null,
      outbound_prefix: f.outbound_prefix.trim(),
      international_prefix: f.international_prefix.trim() || null,
      extension_pattern: f.extension_pattern.trim() || null,
      emergency: em.length ? em : null,
    };
    await api('PUT', '/admin/settings/dialplan', body);
    setSaved(true);
    loaded.reload();
  };
  // What the country's defaults come to, shown in the fields left empty.
  const d = loaded.data;
  const effective: Partial<DialplanForm> = d
    ? { international_prefix: d.effective_international_prefix ?? '', emergency: d.effective_emergency.join(', ') }
    : {};
  return (
    <AdminPage class="admin-dialplan" title={t('admin.dialplan')}>
      <LoadState loaded={loaded} feature={t('admin.dialplan')} />
      {loaded.data && (
        <AdminForm
          testid="dialplan-form"
          onSubmit={form.submit(save)}
          error={form.error}
          submitLabel={t('common.save')}
          submitTestid="dialplan-save"
          after={saved && <span class="ok-text">{t('common.saved')}</span>}
        >
          {([...DIALPLAN_FIELDS, 'emergency'] as const).map((k) => (
            <TextField
              key={k}
              form={form}
              name={k}
              label={t(`dialplan.${k}`)}
              help={t(`dialplan.${k}.help`)}
              placeholder={effective[k] ?? ''}
            />
          ))}
        </AdminForm>
      )}
    </AdminPage>
  );
}
