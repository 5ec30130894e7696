// Admin: trunks (the provider connections). List with live registration state, a form to add or edit
// one (the password is write-only: the server only says whether one is set), DIDs mapped to users,
// delete with confirmation.
import { useState } from 'preact/hooks';
import {
  AdminForm,
  AdminList,
  AdminPage,
  Field,
  TextField,
  UserOptions,
  useAdminList,
  useForm,
  useUsers,
  userName,
  val,
  type UserRef,
} from '../admin-ui';
import { api, type Schema } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { Num, Toggle } from '../ui';

/** A trunk as `/admin/trunks` lists it: no password, only whether one is set, and its live registration. */
export type Trunk = Schema<'TrunkOut'>;

// No 'tls': the switch has no outbound TLS to providers yet, and the server refuses it (422).
const TRANSPORTS: readonly Schema<'Transport'>[] = ['udp', 'tcp'];

export function AdminTrunks() {
  const list = useAdminList<Trunk>('/admin/trunks');
  const users = useUsers();
  return (
    <AdminPage
      class="admin-trunks"
      title={t('admin.trunks')}
      action={{ label: t('admin.newTrunk'), testid: 'trunk-new', onClick: list.toggleNew, hidden: Boolean(list.loaded.error) }}
      help={t('trunk.help')}
      notice={list.notice}
      error={list.error}
    >
      {list.open && (
        <TrunkForm
          key={list.formKey}
          trunk={list.editing}
          users={users}
          onDone={(saved) => list.done(saved && t('common.savedName', { name: saved.name }))}
        />
      )}
      <AdminList
        loaded={list.loaded}
        feature={t('admin.trunks')}
        items={list.items}
        empty={{ text: t('trunk.empty'), testid: 'trunks-empty' }}
        testid="trunks-table"
        columns={[t('trunk.name'), t('trunk.server'), t('trunk.state'), t('trunk.callerId'), t('trunk.dids')]}
        actions
        row={(tr) => (
          <tr key={tr.id} data-testid="trunk-row" data-name={tr.name}>
            <td>
              <strong>{tr.name}</strong>
            </td>
            <td>
              {tr.host}:{tr.port} <span class="tag">{tr.transport.toUpperCase()}</span>
            </td>
            <td data-testid="trunk-state">
              <TrunkState trunk={tr} />
            </td>
            <td>{tr.caller_id ? <Num value={tr.caller_id} /> : <span class="muted">—</span>}</td>
            <td>
              {tr.dids.length === 0 && <span class="muted">—</span>}
              {tr.dids.map((d) => (
                <div key={d.number}>
                  <Num value={d.number} /> <span class="muted">→ {userName(users, d.user_id)}</span>
                </div>
              ))}
            </td>
            <td class="row-actions">
              <button class="link-btn" data-testid="trunk-edit" onClick={() => list.edit(tr)}>
                {t('common.edit')}
              </button>
              <button
                class="link-btn danger"
                data-testid="trunk-delete"
                onClick={() =>
                  list.remove(tr, {
                    question: t('trunk.confirmDelete', { name: tr.name }),
                    path: `/admin/trunks/${tr.id}`,
                    notice: t('trunk.deleted', { name: tr.name }),
                  })
                }
              >
                {t('common.delete')}
              </button>
            </td>
          </tr>
        )}
      />
    </AdminPage>
  );
}

function TrunkState(props: { trunk: Trunk }) {
  const tr = props.trunk;
  if (!tr.enabled) return <span class="state off">{t('trunk.disabled')}</span>;
  if (!tr.register) return <span class="state">{t('trunk.noRegister')}</span>;
  if (tr.registered) return <span class="state on">{t('trunk.registered')}</span>;
  return (
    <span class="state off" title={tr.last_error ?? ''}>
      {t('trunk.notRegistered')}
      {tr.last_error ? `: ${tr.last_error}` : ''}
    </span>
  );
}

function TrunkForm(props: { trunk: Trunk | null; users: UserRef[]; onDone: (t: Trunk | null) => void }) {
  const tr = props.trunk;
  const form = useForm(
    {
      name: tr?.name ?? '',
      host: tr?.host ?? '',
      port: String(tr?.port ?? 5060),
      transport: tr?.transport ?? 'udp',
      username: tr?.username ?? '',
      password: '',
      caller_id: tr?.caller_id ?? '',
    },
    { clearErrorOnInput: true },
  );
  const { f, set } = form;
  const [register, setRegister] = useState(tr?.register ?? true);
  const [enabled, setEnabled] = useState(tr?.enabled ?? true);
  const [dids, setDids] = useState<{ number: string; user_id: string }[]>(
    (tr?.dids ?? []).map((d) => ({ number: d.number, user_id: String(d.user_id) })),
  );
  const save = async () => {
    const body: Schema<'TrunkIn'> = {
      name: f.name.trim(),
      host: f.host.trim(),
      port: Number(f.port) || 5060,
      transport: f.transport as Schema<'Transport'>,
      username: f.username.trim(),
      register,
      caller_id: f.caller_id.replace(/[\s./()-]/g, ''),
      enabled,
      dids: dids
        .filter((d) => d.number.trim())
        .map((d) => ({ number: d.number.replace(/[\s./()-]/g, ''), user_id: Number(d.user_id) })),
    };
    // Editing: an empty password keeps the stored one (the server never sends it back).
    if (!tr || f.password) body.password = f.password;
    const saved = tr
      ? await api<Trunk>('PATCH', `/admin/trunks/${tr.id}`, body satisfies Schema<'TrunkPatch'>)
      : await api<Trunk>('POST', '/admin/trunks', body);
    props.onDone(saved);
  };
  return (
    <AdminForm
      testid="trunk-form"
      title={tr ? t('trunk.edit', { name: tr.name }) : t('admin.newTrunk')}
      wide
      onSubmit={form.submit(save)}
      error={form.error}
      submitLabel={tr ? t('common.save') : t('common.add')}
      submitTestid="trunk-save"
      onCancel={() => props.onDone(null)}
    >
      <TextField form={form} name="name" label={t('trunk.name')} required />
      <TextField form={form} name="host" label={t('trunk.host')} required placeholder="sip.provider.example" />
      <TextField form={form} name="port" label={t('trunk.port')} type="number" min={1} max={65535} />
      <Field label={t('trunk.transport')}>
        <select name="transport" value={f.transport} onChange={set('transport')}>
          {TRANSPORTS.map((x) => (
            <option key={x} value={x}>
              {x.toUpperCase()}
            </option>
          ))}
        </select>
      </Field>
      <TextField form={form} name="username" label={t('trunk.username')} autoComplete="off" />
      <TextField
        form={form}
        name="password"
        label={tr?.password_set ? t('trunk.passwordKeep') : t('admin.password')}
        type="password"
        autoComplete="new-password"
      />
      <TextField form={form} name="caller_id" label={t('trunk.callerId')} help={t('trunk.callerIdHelp')} inputMode="tel" />
      <div class="stack">
        <Toggle label={t('trunk.register')} checked={register} onChange={setRegister} testid="trunk-register" />
        <Toggle label={t('trunk.enabled')} checked={enabled} onChange={setEnabled} testid="trunk-enabled" />
      </div>
      <fieldset class="span2 dids" data-testid="trunk-dids">
        <legend>{t('trunk.dids')}</legend>
        <small class="muted">{t('trunk.didsHelp')}</small>
        {dids.map((d, i) => (
          <div class="numrow" key={i} data-testid="did-row">
            <input
              name="did-number"
              inputMode="tel"
              placeholder={t('trunk.didNumber')}
              value={d.number}
              onInput={(e) => setDids(dids.map((x, j) => (j === i ? { ...x, number: val(e) } : x)))}
            />
            <select
              name="did-user"
              value={d.user_id}
              onChange={(e) => setDids(dids.map((x, j) => (j === i ? { ...x, user_id: val(e) } : x)))}
            >
              <UserOptions users={props.users} style="paren" />
            </select>
            <button type="button" class="link-btn danger" onClick={() => setDids(dids.filter((_, j) => j !== i))}>
              {t('common.remove')}
            </button>
          </div>
        ))}
        <button
          type="button"
          class="btn"
          data-testid="did-add"
          disabled={props.users.length === 0}
          onClick={() => setDids([...dids, { number: '', user_id: String(props.users[0]?.id ?? '') }])}
        >
          {t('trunk.addDid')}
        </button>
      </fieldset>
    </AdminForm>
  );
}
