// Admin: Devices -> Phones. The provisioned desk phones (MAC, vendor and model, user, registration,
// last config fetch, firmware), adding one by MAC (the vendor suggested from the MAC's OUI, the models
// from the server's catalog), and per phone: assign or unassign, its own click-to-call order, reload,
// a one-time bootstrap URL, delete, and the SIP account a person would type into the phone.
import { useEffect, useState } from 'preact/hooks';
import {
  AdminForm,
  AdminList,
  AdminPage,
  Field,
  OrderedToggles,
  SaveBar,
  UserOptions,
  useActions,
  useAdminList,
  useUsers,
  userName,
  val,
  type Toggled,
  type UserRef,
} from '../admin-ui';
import { api, type Schema } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { tOr } from '../i18n';
import { ErrorBox, LoadState, formatTime, useApi } from '../ui';

export type PhoneRow = Schema<'PhoneOut'>;

type VendorInfo = Schema<'VendorOut'>;

export type SipServer = Schema<'SipServerOut'>;

type Strategy = NonNullable<Schema<'PhonePatch'>['strategies']>[number];
const STRATEGIES: readonly Strategy[] = ['phone_http', 'lan_relay', 'originate'];
// How often the list asks again while the screen is open: a phone that was just plugged in shows its
// fetch and registration without a reload.
const POLL_MS = 4000;

function vendorName(vendors: VendorInfo[], id: string): string {
  return vendors.find((v) => v.id === id)?.name ?? id;
}

export function AdminPhones() {
  const params = new URLSearchParams(location.search);
  const forUser = params.get('user');
  const list = useAdminList<PhoneRow>('/admin/phones', { startNew: forUser !== null });
  const { loaded, items: phones } = list;
  const models = useApi<VendorInfo[]>('/admin/phone-models');
  const users = useUsers();
  const vendors = models.data ?? [];
  const [openId, setOpenId] = useState<number | null>(null);
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
      action={{ label: t('phones.add'), testid: 'phone-new', onClick: list.toggleNew, hidden: Boolean(loaded.error) }}
      help={t('phones.help')}
      notice={list.notice}
      noticeRole="status"
    >
      {list.open && (
        <PhoneForm
          vendors={vendors}
          users={users}
          userId={forUser}
          onDone={(p) => {
            if (p) setOpenId(p.id);
            list.done(p && t('phones.added', { mac: p.mac_display }));
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
              {p.user_id === null ? <span class="muted">{t('phones.unassigned')}</span> : userName(users, p.user_id, 'dot')}
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
            list.setNotice(t('phones.deleted', { mac: open.mac_display }));
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
  const actions = useActions();
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
  const submit = (e: Event) => {
    e.preventDefault();
    const body: Schema<'PhoneCreate'> = { mac: mac.trim(), model, label: label.trim() };
    if (vendor) body.vendor = vendor;
    if (userId) body.user_id = Number(userId);
    void actions.run(async () => props.onDone(await api<PhoneRow>('POST', '/admin/phones', body)));
  };
  return (
    <AdminForm
      testid="phone-form"
      onSubmit={submit}
      error={actions.error}
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
      <UserOptions users={props.users} none={t('phones.nobody')} style="dot" />
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
  const actions = useActions();
  const message = actions.notice;
  const [bootstrap, setBootstrap] = useState<{ url: string; expires: string } | null>(
    p.bootstrap_url && p.bootstrap_expires_at ? { url: p.bootstrap_url, expires: p.bootstrap_expires_at } : null,
  );
  const [hours, setHours] = useState('24');
  // Each action's outcome replaces the last one's.
  const act = (work: () => Promise<string | void>) => {
    actions.setNotice(null);
    return actions.run(work);
  };
  const assign = (value: string) =>
    act(async () => {
      await api('PATCH', `/admin/phones/${p.id}`, { user_id: value ? Number(value) : null });
      setUserId(value);
      props.onChanged();
      return value ? t('phones.assignedTo', { name: userName(props.users, Number(value), 'dot') }) : t('phones.unassignedDone');
    });
  const reload = () =>
    act(async () => {
      const r = await api<Schema<'ReloadOut'>>('POST', `/admin/phones/${p.id}/reload`);
      props.onChanged();
      return tOr(`phones.reload.${r.outcome}`, t('phones.reload.other', { outcome: r.outcome }));
    });
  const newBootstrap = () =>
    act(async () => {
      const r = await api<Schema<'BootstrapOut'>>('POST', `/admin/phones/${p.id}/bootstrap`, {
        hours: Number(hours) || 24,
      } satisfies Schema<'BootstrapIn'>);
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
      <ErrorBox error={actions.error} />
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

function isStrategy(s: string): s is Strategy {
  return (STRATEGIES as readonly string[]).includes(s);
}

function PhoneStrategies(props: { phone: PhoneRow; onSaved: () => void }) {
  const own = props.phone.strategies;
  const [custom, setCustom] = useState(own !== null && own.length > 0);
  const [rows, setRows] = useState<Toggled<Strategy>[]>([
    // The server lists only known ways; one it no longer knows is left out rather than sent back.
    ...(own ?? []).filter(isStrategy).map((name) => ({ name, on: true })),
    ...STRATEGIES.filter((s) => !(own ?? []).includes(s)).map((name) => ({ name, on: own === null })),
  ]);
  const actions = useActions();
  const [saved, setSaved] = useState(false);
  const save = () => {
    setSaved(false);
    const chosen = rows.filter((r) => r.on).map((r) => r.name);
    void actions.run(async () => {
      const body: Schema<'PhonePatch'> = { strategies: custom ? chosen : null };
      await api('PATCH', `/admin/phones/${props.phone.id}`, body);
      setSaved(true);
      props.onSaved();
    });
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
        <OrderedToggles
          rows={rows}
          onChange={(next) => {
            setRows(next);
            setSaved(false);
          }}
          label={(name) => tOr(`c2c.${name}`, name)}
          testid="phone-strategy"
          rowTestid="phone-strategy"
          named
        />
      )}
      <SaveBar onSave={save} error={actions.error} saved={saved} testid="phone-order-save" savedTestid="phone-order-saved" />
    </fieldset>
  );
}

/** One line of what to type into a phone: its name, and the value in a code font. */
function Value(props: { label: string; value: string | number; testid?: string }) {
  return (
    <div class="dl-row">
      <dt>{props.label}</dt>
      <dd>
        <code data-testid={props.testid}>{props.value}</code>
      </dd>
    </div>
  );
}

/** Everything a person types into a desk phone configured by hand, and its provisioning URL if any. */
export function SipAccount(props: {
  deviceId: number | string;
  sip?: Schema<'SipCredentials'>;
  provisioningUrl?: string | null;
}) {
  const server = useApi<SipServer>('/admin/sip-server');
  const device = useApi<Schema<'AdminDeviceOut'>>(props.sip ? null : `/admin/devices/${props.deviceId}`);
  const sip = props.sip ?? device.data?.sip;
  const s = server.data;
  return (
    <div class="notice creds" data-testid="sip-account">
      <h3>{t('sip.title')}</h3>
      <LoadState loaded={server} feature={t('sip.title')} />
      <dl>
        {s && <Value label={t('sip.server')} value={s.server} testid="sip-server" />}
        {s && <Value label={t('sip.domain')} value={s.domain} testid="sip-domain" />}
        {s?.transports.map((tr) => (
          <Value
            key={tr.transport}
            label={t('sip.port', { transport: tr.transport.toUpperCase() })}
            value={tr.port}
            testid={`sip-port-${tr.transport}`}
          />
        ))}
        {sip && <Value label={t('sip.username')} value={sip.username} testid="sip-username" />}
        {sip && <Value label={t('sip.password')} value={sip.password} testid="sip-password" />}
        {props.provisioningUrl && <Value label={t('phones.provisioningUrl')} value={props.provisioningUrl} />}
      </dl>
      <small>{t('admin.sipAccountHelp')}</small>
    </div>
  );
}
