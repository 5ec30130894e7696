// Admin: Devices -> Phones. The provisioned desk phones (MAC, vendor and model, user, registration,
// last config fetch, firmware), adding one by MAC (the vendor suggested from the MAC's OUI, the models
// from the server's catalog), and per phone: assign or unassign, its own click-to-call order, reload,
// a one-time bootstrap URL, delete, and the SIP account a person would type into the phone.
import { useEffect, useState } from 'preact/hooks';
import { AdminForm, AdminList, AdminPage, Field, val } from '../admin-ui';
import { api, asItems, type Schema } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { tOr } from '../i18n';
import { ErrorBox, LoadState, formatTime, useApi } from '../ui';

export type PhoneRow = Schema<'PhoneOut'>;

interface VendorInfo {
  id: string;
  name: string;
  models: { id: string; name: string }[];
}

type UserRef = Pick<Schema<'AdminUserOut'>, 'id' | 'username' | 'display_name' | 'extension'>;

export type SipServer = Schema<'SipServerOut'>;

const STRATEGIES = ['phone_http', 'lan_relay', 'originate'];
// How often the list asks again while the screen is open: a phone that was just plugged in shows its
// fetch and registration without a reload.
const POLL_MS = 4000;

function userName(users: UserRef[], id: number | null): string {
  if (id === null) return '';
  const u = users.find((x) => x.id === id);
  return u ? `${u.display_name || u.username}${u.extension ? ` · ${u.extension}` : ''}` : `#${id}`;
}

function vendorName(vendors: VendorInfo[], id: string): string {
  return vendors.find((v) => v.id === id)?.name ?? id;
}

export function AdminPhones() {
  const loaded = useApi<unknown>('/admin/phones');
  const models = useApi<VendorInfo[]>('/admin/phone-models');
  const usersLoaded = useApi<unknown>('/admin/users');
  const users = asItems<UserRef>(usersLoaded.data).items;
  const vendors = models.data ?? [];
  const phones = asItems<PhoneRow>(loaded.data).items;
  const params = new URLSearchParams(location.search);
  const forUser = params.get('user');
  const [adding, setAdding] = useState(forUser !== null);
  const [openId, setOpenId] = useState<number | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  useEffect(() => {
    const timer = window.setInterval(() => loaded.reload(), POLL_MS);
    return () => window.clearInterval(timer);
  }, []);
  useEffect(() => {
    // Opened from a user's devices: show that user's phone.
    const dev = params.get('device');
    if (dev && openId === null) {
      const p = phones.find((x) => String(x.device_id) === dev);
      if (p) setOpenId(p.id);
    }
  }, [loaded.data]);
  const open = phones.find((p) => p.id === openId) ?? null;
  return (
    <AdminPage
      class="admin-phones"
      title={t('phones.title')}
      action={{ label: t('phones.add'), testid: 'phone-new', onClick: () => setAdding(!adding), hidden: Boolean(loaded.error) }}
      help={t('phones.help')}
      notice={notice}
      noticeRole="status"
    >
      {adding && (
        <PhoneForm
          vendors={vendors}
          users={users}
          userId={forUser}
          onDone={(p) => {
            setAdding(false);
            if (p) {
              setNotice(t('phones.added', { mac: p.mac_display }));
              setOpenId(p.id);
              loaded.reload();
            }
          }}
        />
      )}
      <AdminList
        loaded={loaded}
        feature={t('phones.title')}
        items={phones}
        empty={{ text: t('phones.empty'), testid: 'phones-empty' }}
        testid="phones-table"
        columns={[
          t('phones.mac'),
          t('phones.model'),
          t('phones.user'),
          t('phones.registration'),
          t('phones.lastFetch'),
          t('phones.firmware'),
        ]}
        actions
        scroll
        row={(p) => (
          <tr
            key={p.id}
            data-testid="phone-row"
            data-mac={p.mac}
            data-registered={p.registration.registered ? 'true' : 'false'}
          >
            <td>
              <code>{p.mac_display}</code>
              {p.label && <span class="muted block">{p.label}</span>}
            </td>
            <td>
              {vendorName(vendors, p.vendor)} {p.model}
            </td>
            <td data-testid="phone-user">
              {p.user_id === null ? <span class="muted">{t('phones.unassigned')}</span> : userName(users, p.user_id)}
            </td>
            <td data-testid="phone-registration">
              {p.registration.registered ? (
                <span class="state on">
                  {t('phones.registered')}
                  {p.registration.address ? ` · ${p.registration.address}` : ''}
                </span>
              ) : (
                <span class="state off">{t('phones.notRegistered')}</span>
              )}
            </td>
            <td data-testid="phone-fetch">
              {p.last_fetch_at ? (
                <>
                  {formatTime(p.last_fetch_at)}
                  {p.last_fetch_ip && <span class="muted block">{p.last_fetch_ip}</span>}
                </>
              ) : (
                <span class="muted">{t('phones.never')}</span>
              )}
            </td>
            <td>{p.firmware || <span class="muted">—</span>}</td>
            <td class="row-actions">
              <button
                class="link-btn"
                data-testid="phone-open"
                aria-expanded={openId === p.id}
                onClick={() => setOpenId(openId === p.id ? null : p.id)}
              >
                {t('phones.manage')}
                <span class="sr-only"> {p.mac_display}</span>
              </button>
            </td>
          </tr>
        )}
      />
      {open && (
        <PhoneDetails
          key={open.id}
          phone={open}
          users={users}
          vendors={vendors}
          onChanged={() => loaded.reload()}
          onDeleted={() => {
            setNotice(t('phones.deleted', { mac: open.mac_display }));
            setOpenId(null);
            loaded.reload();
          }}
        />
      )}
    </AdminPage>
  );
}

function PhoneForm(props: {
  vendors: VendorInfo[];
  users: UserRef[];
  userId: string | null;
  onDone: (p: PhoneRow | null) => void;
}) {
  const [mac, setMac] = useState('');
  const [vendor, setVendor] = useState('');
  const [model, setModel] = useState('');
  const [userId, setUserId] = useState(props.userId ?? '');
  const [label, setLabel] = useState('');
  const [hint, setHint] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const hex = mac.replace(/[^0-9a-fA-F]/g, '');
    if (hex.length < 6) {
      setHint(null);
      return undefined;
    }
    let live = true;
    // The OUI (first 3 bytes) names the maker; an unknown or shared prefix leaves the choice to the admin.
    api<Schema<'SuggestOut'>>('GET', `/admin/phone-models/suggest?mac=${encodeURIComponent(hex.padEnd(12, '0'))}`)
      .then((r) => {
        if (!live) return;
        if (r.vendor) {
          setVendor(r.vendor);
          setHint(t('phones.suggested', { vendor: props.vendors.find((v) => v.id === r.vendor)?.name ?? r.vendor }));
        } else setHint(r.candidates.length > 1 ? t('phones.shared') : t('phones.unknownOui'));
      })
      .catch(() => live && setHint(null));
    return () => {
      live = false;
    };
  }, [mac.replace(/[^0-9a-fA-F]/g, '').slice(0, 6)]);
  const models = props.vendors.find((v) => v.id === vendor)?.models ?? [];
  useEffect(() => {
    if (!models.some((m) => m.id === model)) setModel(models[0]?.id ?? '');
  }, [vendor, props.vendors]);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const body: Schema<'PhoneCreate'> = { mac: mac.trim(), model, label: label.trim() };
    if (vendor) body.vendor = vendor;
    if (userId) body.user_id = Number(userId);
    try {
      props.onDone(await api<PhoneRow>('POST', '/admin/phones', body));
    } catch (x) {
      setError(x);
    }
  };
  return (
    <AdminForm
      testid="phone-form"
      onSubmit={submit}
      error={error}
      submitLabel={t('phones.addGo')}
      submitTestid="phone-save"
      onCancel={() => props.onDone(null)}
    >
      <Field label={t('phones.mac')}>
        <input
          name="mac"
          required
          autoComplete="off"
          spellcheck={false}
          placeholder="00:15:65:AA:BB:CC"
          value={mac}
          onInput={(e) => setMac(val(e))}
        />
        <small class="muted" data-testid="phone-oui-hint" aria-live="polite">
          {hint ?? t('phones.macHelp')}
        </small>
      </Field>
      <Field label={t('phones.vendor')}>
        <select name="vendor" required value={vendor} onChange={(e) => setVendor(val(e))}>
          <option value="">{t('phones.chooseVendor')}</option>
          {props.vendors.map((v) => (
            <option key={v.id} value={v.id}>
              {v.name}
            </option>
          ))}
        </select>
      </Field>
      <Field label={t('phones.model')}>
        <select name="model" required value={model} onChange={(e) => setModel(val(e))}>
          {models.map((m) => (
            <option key={m.id} value={m.id}>
              {m.name}
            </option>
          ))}
        </select>
      </Field>
      <Field label={t('phones.user')}>
        <UserSelect name="user" users={props.users} value={userId} onChange={setUserId} />
      </Field>
      <Field label={t('phones.label')}>
        <input name="label" value={label} onInput={(e) => setLabel(val(e))} />
      </Field>
    </AdminForm>
  );
}

function UserSelect(props: { name: string; users: UserRef[]; value: string; onChange: (v: string) => void }) {
  return (
    <select name={props.name} value={props.value} onChange={(e) => props.onChange(val(e))}>
      <option value="">{t('phones.nobody')}</option>
      {props.users.map((u) => (
        <option key={u.id} value={String(u.id)}>
          {u.display_name || u.username}
          {u.extension ? ` · ${u.extension}` : ''}
        </option>
      ))}
    </select>
  );
}

function PhoneDetails(props: {
  phone: PhoneRow;
  users: UserRef[];
  vendors: VendorInfo[];
  onChanged: () => void;
  onDeleted: () => void;
}) {
  const p = props.phone;
  const [userId, setUserId] = useState(p.user_id === null ? '' : String(p.user_id));
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [bootstrap, setBootstrap] = useState<{ url: string; expires: string } | null>(
    p.bootstrap_url && p.bootstrap_expires_at ? { url: p.bootstrap_url, expires: p.bootstrap_expires_at } : null,
  );
  const [hours, setHours] = useState('24');
  const act = async (work: () => Promise<void>) => {
    setError(null);
    setMessage(null);
    try {
      await work();
    } catch (e) {
      setError(e);
    }
  };
  const assign = (value: string) =>
    act(async () => {
      await api('PATCH', `/admin/phones/${p.id}`, { user_id: value ? Number(value) : null });
      setUserId(value);
      setMessage(value ? t('phones.assignedTo', { name: userName(props.users, Number(value)) }) : t('phones.unassignedDone'));
      props.onChanged();
    });
  const reload = () =>
    act(async () => {
      const r = await api<Schema<'ReloadOut'>>('POST', `/admin/phones/${p.id}/reload`);
      setMessage(tOr(`phones.reload.${r.outcome}`, t('phones.reload.other', { outcome: r.outcome })));
      props.onChanged();
    });
  const newBootstrap = () =>
    act(async () => {
      const r = await api<{ bootstrap_url: string; bootstrap_expires_at: string }>(
        'POST',
        `/admin/phones/${p.id}/bootstrap`,
        { hours: Number(hours) || 24 },
      );
      setBootstrap({ url: r.bootstrap_url, expires: r.bootstrap_expires_at });
    });
  const remove = () =>
    act(async () => {
      if (!confirm(t('phones.confirmDelete', { mac: p.mac_display }))) return;
      await api('DELETE', `/admin/phones/${p.id}`);
      props.onDeleted();
    });
  return (
    <div class="card phone-details" data-testid="phone-details" data-mac={p.mac}>
      <h2>
        {vendorName(props.vendors, p.vendor)} {p.model} <code>{p.mac_display}</code>
      </h2>
      {message && (
        <p class="ok-text" role="status" data-testid="phone-message">
          {message}
        </p>
      )}
      <ErrorBox error={error} />
      <div class="inline-form">
        <label>
          {t('phones.assign')}
          <UserSelect name="assign" users={props.users} value={userId} onChange={(v) => void assign(v)} />
        </label>
        {p.user_id !== null && (
          <button class="btn" data-testid="phone-unassign" onClick={() => void assign('')}>
            {t('phones.unassign')}
          </button>
        )}
      </div>
      <h3>{t('phones.provisioning')}</h3>
      <dl>
        <div class="dl-row">
          <dt>{t('phones.provisioningUrl')}</dt>
          <dd>
            <code data-testid="phone-provisioning-url">{p.provisioning_url}</code>
            <small class="muted block">{p.provisioning_url_https}</small>
          </dd>
        </div>
      </dl>
      <FetchLog phoneId={p.id} lastFetch={p.last_fetch_at} />
      <div class="inline-form">
        <button class="btn" data-testid="phone-reload" disabled={p.device_id === null} onClick={() => void reload()}>
          {t('phones.reload')}
        </button>
        <label>
          {t('phones.bootstrapHours')}
          <input name="hours" type="number" min="1" max="720" value={hours} onInput={(e) => setHours(val(e))} />
        </label>
        <button class="btn" data-testid="phone-bootstrap" onClick={() => void newBootstrap()}>
          {t('phones.bootstrap')}
        </button>
      </div>
      {bootstrap && (
        <p class="notice" data-testid="phone-bootstrap-url">
          <code>{bootstrap.url}</code>
          <small class="block">{t('phones.bootstrapExpires', { when: formatTime(bootstrap.expires) })}</small>
        </p>
      )}
      <PhoneStrategies phone={p} onSaved={props.onChanged} />
      {p.device_id !== null && <SipAccount deviceId={p.device_id} provisioningUrl={p.provisioning_url} />}
      <div class="actions">
        <button class="btn danger" data-testid="phone-delete" onClick={() => void remove()}>
          {t('phones.delete')}
        </button>
      </div>
    </div>
  );
}

type FetchRow = Schema<'FetchOut'>;

// How many of the server's recorded fetches the details show: enough to see a phone that keeps retrying.
const FETCHES_SHOWN = 5;

/** The phone's newest configuration fetches (the server keeps the last 50): when, from where, what, result. */
function FetchLog(props: { phoneId: number; lastFetch: string | null }) {
  // Asked again when the list (polled) shows a newer fetch.
  const loaded = useApi<FetchRow[]>(`/admin/phones/${props.phoneId}/fetches`, [props.lastFetch]);
  const rows = Array.isArray(loaded.data) ? loaded.data.slice(0, FETCHES_SHOWN) : [];
  return (
    <div class="phone-fetches" data-testid="phone-fetches">
      <h3>{t('phones.fetchLog')}</h3>
      {loaded.error && <LoadState loaded={loaded} feature={t('phones.fetchLog')} />}
      {!loaded.error && !loaded.loading && rows.length === 0 && <p class="muted">{t('phones.fetchLogEmpty')}</p>}
      {rows.length > 0 && (
        <div class="scroll-x">
          <table class="table">
            <thead>
              <tr>
                <th scope="col">{t('phones.fetch.at')}</th>
                <th scope="col">{t('phones.fetch.ip')}</th>
                <th scope="col">{t('phones.fetch.file')}</th>
                <th scope="col">{t('phones.fetch.via')}</th>
                <th scope="col">{t('phones.fetch.result')}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((f, i) => (
                <tr key={i} data-testid="phone-fetch-row" data-status={f.status}>
                  <td>{formatTime(f.at)}</td>
                  <td>{f.ip}</td>
                  <td title={f.user_agent}>
                    <code>{f.file}</code>
                  </td>
                  <td>{tOr(`phones.fetch.via.${f.via}`, f.via)}</td>
                  <td>
                    <span class={`state ${f.status < 400 ? 'on' : 'off'}`}>
                      {f.status < 400 ? t('phones.fetch.ok') : t('phones.fetch.refused', { status: f.status })}
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

interface StrategyRow {
  name: string;
  on: boolean;
}

function PhoneStrategies(props: { phone: PhoneRow; onSaved: () => void }) {
  const own = props.phone.strategies;
  const [custom, setCustom] = useState(own !== null && own.length > 0);
  const [rows, setRows] = useState<StrategyRow[]>([
    ...(own ?? []).map((name) => ({ name, on: true })),
    ...STRATEGIES.filter((s) => !(own ?? []).includes(s)).map((name) => ({ name, on: own === null })),
  ]);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const move = (i: number, by: number) => {
    const j = i + by;
    if (j < 0 || j >= rows.length) return;
    const next = [...rows];
    [next[i], next[j]] = [next[j], next[i]];
    setRows(next);
    setSaved(false);
  };
  const save = async () => {
    setError(null);
    setSaved(false);
    const chosen = rows.filter((r) => r.on).map((r) => r.name);
    try {
      await api('PATCH', `/admin/phones/${props.phone.id}`, { strategies: custom ? chosen : null });
      setSaved(true);
      props.onSaved();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <fieldset class="phone-strategies" data-testid="phone-strategies">
      <legend>{t('phones.order')}</legend>
      <label class="toggle">
        <input
          type="checkbox"
          data-testid="phone-order-custom"
          checked={custom}
          onChange={(e) => {
            setCustom((e.target as HTMLInputElement).checked);
            setSaved(false);
          }}
        />
        <span>{t('phones.orderCustom')}</span>
      </label>
      {!custom && <p class="muted">{t('phones.orderDefault')}</p>}
      {custom && (
        <ol class="strategies">
          {rows.map((r, i) => (
            <li key={r.name} data-testid="phone-strategy" data-name={r.name} data-on={r.on ? 'true' : 'false'}>
              <label class="toggle">
                <input
                  type="checkbox"
                  checked={r.on}
                  data-testid={`phone-strategy-on-${r.name}`}
                  onChange={(e) => {
                    setRows(rows.map((x, j) => (j === i ? { ...x, on: (e.target as HTMLInputElement).checked } : x)));
                    setSaved(false);
                  }}
                />
                <span>
                  <strong>{tOr(`c2c.${r.name}`, r.name)}</strong>
                </span>
              </label>
              <span class="updown">
                <button
                  type="button"
                  class="btn small"
                  aria-label={`${t('c2c.up')}: ${tOr(`c2c.${r.name}`, r.name)}`}
                  title={t('c2c.up')}
                  disabled={i === 0}
                  onClick={() => move(i, -1)}
                >
                  ↑
                </button>
                <button
                  type="button"
                  class="btn small"
                  aria-label={`${t('c2c.down')}: ${tOr(`c2c.${r.name}`, r.name)}`}
                  title={t('c2c.down')}
                  disabled={i === rows.length - 1}
                  onClick={() => move(i, 1)}
                >
                  ↓
                </button>
              </span>
            </li>
          ))}
        </ol>
      )}
      <ErrorBox error={error} />
      <div class="actions">
        <button class="btn" data-testid="phone-order-save" onClick={() => void save()}>
          {t('common.save')}
        </button>
        {saved && (
          <span class="ok-text" data-testid="phone-order-saved">
            {t('common.saved')}
          </span>
        )}
      </div>
    </fieldset>
  );
}

/** Everything a person types into a desk phone configured by hand, and its provisioning URL if any. */
export function SipAccount(props: {
  deviceId: number | string;
  sip?: { username: string; password: string };
  provisioningUrl?: string | null;
}) {
  const server = useApi<SipServer>('/admin/sip-server');
  const device = useApi<{ sip?: { username: string; password: string } }>(
    props.sip ? null : `/admin/devices/${props.deviceId}`,
  );
  const sip = props.sip ?? device.data?.sip;
  const s = server.data;
  return (
    <div class="notice creds" data-testid="sip-account">
      <h3>{t('sip.title')}</h3>
      <LoadState loaded={server as never} feature={t('sip.title')} />
      <dl>
        {s && (
          <div class="dl-row">
            <dt>{t('sip.server')}</dt>
            <dd>
              <code data-testid="sip-server">{s.server}</code>
            </dd>
          </div>
        )}
        {s && (
          <div class="dl-row">
            <dt>{t('sip.domain')}</dt>
            <dd>
              <code data-testid="sip-domain">{s.domain}</code>
            </dd>
          </div>
        )}
        {s?.transports.map((tr) => (
          <div class="dl-row" key={tr.transport}>
            <dt>{t('sip.port', { transport: tr.transport.toUpperCase() })}</dt>
            <dd>
              <code data-testid={`sip-port-${tr.transport}`}>{tr.port}</code>
            </dd>
          </div>
        ))}
        {sip && (
          <div class="dl-row">
            <dt>{t('sip.username')}</dt>
            <dd>
              <code data-testid="sip-username">{sip.username}</code>
            </dd>
          </div>
        )}
        {sip && (
          <div class="dl-row">
            <dt>{t('sip.password')}</dt>
            <dd>
              <code data-testid="sip-password">{sip.password}</code>
            </dd>
          </div>
        )}
        {props.provisioningUrl && (
          <div class="dl-row">
            <dt>{t('phones.provisioningUrl')}</dt>
            <dd>
              <code>{props.provisioningUrl}</code>
            </dd>
          </div>
        )}
      </dl>
      <small>{t('admin.sipAccountHelp')}</small>
    </div>
  );
}
