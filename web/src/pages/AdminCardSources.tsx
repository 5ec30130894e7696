// Admin: customer card sources (a company database queried with SQL, or a web service over HTTP) that
// fill the customer card next to the phonebook. Add, edit, switch off, delete, and try one on a number.
import { useState } from 'preact/hooks';
import { AdminForm, AdminList, AdminPage, Field, TextField, useActions, useAdminList, useForm, val } from '../admin-ui';
import { api, type Schema } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { ErrorBox, Num, Toggle } from '../ui';

export type CardSource = Schema<'CardSourceOut'>;
type SourceResult = Schema<'SourceResult'>;

export function AdminCardSources() {
  const list = useAdminList<CardSource>('/admin/card-sources');
  const [testing, setTesting] = useState<CardSource | null>(null);
  return (
    <AdminPage
      class="admin-sources"
      title={t('sources.title')}
      action={{ label: t('sources.new'), testid: 'source-new', onClick: list.toggleNew, hidden: Boolean(list.loaded.error) }}
      help={t('sources.help')}
      notice={list.notice}
      error={list.error}
    >
      {list.open && (
        <SourceForm
          key={list.formKey}
          source={list.editing}
          onDone={(saved) => list.done(saved && t('common.savedName', { name: saved.name }))}
        />
      )}
      <AdminList
        loaded={list.loaded}
        feature={t('sources.title')}
        items={list.items}
        empty={{ text: t('sources.empty'), testid: 'sources-empty' }}
        testid="sources-table"
        columns={[t('sources.name'), t('sources.kind'), t('sources.target'), t('sources.timeout'), t('sources.state')]}
        actions
        row={(s) => (
          <tr key={s.id} data-testid="source-row" data-name={s.name}>
            <td>
              <strong>{s.name}</strong> <span class="muted">#{s.position}</span>
            </td>
            <td>{t(`sources.kind.${s.kind}`)}</td>
            <td class="break">
              <code>{String(s.kind === 'http' ? (s.config.url_template ?? '') : (s.config.url ?? ''))}</code>
            </td>
            <td>{s.timeout_ms} ms</td>
            <td>
              <span class={`state ${s.enabled ? 'on' : 'off'}`}>{t(s.enabled ? 'sources.enabled' : 'sources.disabled')}</span>
            </td>
            <td class="row-actions">
              <button class="link-btn" data-testid="source-test" onClick={() => setTesting(testing?.id === s.id ? null : s)}>
                {t('sources.try')}
              </button>
              <button class="link-btn" data-testid="source-edit" onClick={() => list.edit(s)}>
                {t('common.edit')}
              </button>
              <button
                class="link-btn danger"
                data-testid="source-delete"
                onClick={() =>
                  list.remove(s, {
                    question: t('sources.confirmDelete', { name: s.name }),
                    path: `/admin/card-sources/${s.id}`,
                    notice: t('sources.deleted', { name: s.name }),
                  })
                }
              >
                {t('common.delete')}
              </button>
            </td>
          </tr>
        )}
      />
      {testing && <SourceTry key={testing.id} source={testing} />}
    </AdminPage>
  );
}

function SourceTry(props: { source: CardSource }) {
  const [number, setNumber] = useState('');
  const [result, setResult] = useState<SourceResult | null>(null);
  const actions = useActions();
  const [busy, setBusy] = useState(false);
  const run = async (e: Event) => {
    e.preventDefault();
    setResult(null);
    setBusy(true);
    await actions.run(async () => {
      const path = `/admin/card-sources/${props.source.id}/test?number=${encodeURIComponent(number.trim())}`;
      setResult(await api<SourceResult>('POST', path));
    });
    setBusy(false);
  };
  return (
    <div class="card" data-testid="source-try">
      <h2>{t('sources.tryTitle', { name: props.source.name })}</h2>
      <form class="inline-form" onSubmit={run}>
        <input
          data-testid="source-try-number"
          inputMode="tel"
          required
          placeholder={t('sources.tryNumber')}
          value={number}
          onInput={(e) => setNumber(val(e))}
        />
        <button class="btn" type="submit" data-testid="source-try-go" disabled={busy}>
          {busy ? t('common.loading') : t('sources.try')}
        </button>
      </form>
      <ErrorBox error={actions.error} />
      {result && (
        <div data-testid="source-try-result" data-status={result.status}>
          <p>
            <strong class={`state ${result.status === 'ok' ? 'on' : 'off'}`}>{t(`sources.status.${result.status}`)}</strong>{' '}
            <span class="muted">
              {result.elapsed_ms} ms · <Num value={number.trim()} />
            </span>
          </p>
          {result.problem && <p class="error">{result.problem}</p>}
          {result.data != null && <pre class="pre code">{JSON.stringify(result.data, null, 2)}</pre>}
        </div>
      )}
    </div>
  );
}

function SourceForm(props: { source: CardSource | null; onDone: (s: CardSource | null) => void }) {
  const s = props.source;
  const c = s?.config ?? {};
  const [kind, setKind] = useState<Schema<'SourceKind'>>(s?.kind ?? 'http');
  const form = useForm({
    name: s?.name ?? '',
    position: String(s?.position ?? 0),
    timeout_ms: String(s?.timeout_ms ?? 2000),
    url: typeof c.url === 'string' ? c.url : '',
    query: typeof c.query === 'string' ? c.query : '',
    url_template: typeof c.url_template === 'string' ? c.url_template : '',
    headers:
      c.headers && typeof c.headers === 'object'
        ? Object.entries(c.headers as Record<string, string>)
            .map(([k, v]) => `${k}: ${v}`)
            .join('\n')
        : '',
  });
  const { f, set } = form;
  const [enabled, setEnabled] = useState(s?.enabled ?? true);
  const save = async () => {
    const headers: Record<string, string> = {};
    for (const line of f.headers.split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    const config = kind === 'sql' ? { url: f.url.trim(), query: f.query.trim() } : { url_template: f.url_template.trim(), headers };
    const fields = {
      name: f.name.trim(),
      enabled,
      position: Number(f.position) || 0,
      timeout_ms: Number(f.timeout_ms) || 2000,
      config,
    };
    const saved = s
      ? await api<CardSource>('PATCH', `/admin/card-sources/${s.id}`, fields satisfies Schema<'CardSourcePatch'>)
      : await api<CardSource>('POST', '/admin/card-sources', { ...fields, kind } satisfies Schema<'CardSourceIn'>);
    props.onDone(saved);
  };
  return (
    <AdminForm
      testid="source-form"
      title={s ? t('sources.edit', { name: s.name }) : t('sources.new')}
      wide
      onSubmit={form.submit(save)}
      error={form.error}
      submitLabel={s ? t('common.save') : t('common.add')}
      submitTestid="source-save"
      onCancel={() => props.onDone(null)}
    >
      <TextField form={form} name="name" label={t('sources.name')} required />
      <Field label={t('sources.kind')}>
        <select name="kind" value={kind} disabled={Boolean(s)} onChange={(e) => setKind(val(e) as Schema<'SourceKind'>)}>
          <option value="http">{t('sources.kind.http')}</option>
          <option value="sql">{t('sources.kind.sql')}</option>
        </select>
      </Field>
      {kind === 'http' ? (
        <>
          <TextField
            form={form}
            name="url_template"
            label={t('sources.urlTemplate')}
            help={t('sources.urlTemplateHelp')}
            wide
            required
            placeholder="https://erp.example/api/customers?phone={number}"
          />
          <Field label={t('sources.headers')} help={t('sources.headersHelp')} wide>
            <textarea name="headers" class="code" rows={2} placeholder="Authorization: Bearer …" value={f.headers} onInput={set('headers')} />
          </Field>
        </>
      ) : (
        <>
          <TextField
            form={form}
            name="url"
            label={t('sources.dbUrl')}
            wide
            required
            placeholder="postgresql://user:password@host/db"
          />
          <Field label={t('sources.query')} help={t('sources.queryHelp')} wide>
            <textarea
              name="query"
              class="code"
              rows={3}
              required
              placeholder="SELECT name, balance FROM customers WHERE phone = :national"
              value={f.query}
              onInput={set('query')}
            />
          </Field>
        </>
      )}
      <TextField form={form} name="position" label={t('sources.position')} type="number" min={0} max={1000} />
      <TextField form={form} name="timeout_ms" label={t('sources.timeout')} type="number" min={50} max={30000} />
      <Toggle label={t('sources.enabled')} checked={enabled} onChange={setEnabled} testid="source-enabled" />
    </AdminForm>
  );
}
