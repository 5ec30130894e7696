// Admin: customer card sources (a company database queried with SQL, or a web service over HTTP) that
// fill the customer card next to the phonebook. Add, edit, switch off, delete, and try one on a number.
import { useState } from 'preact/hooks';
import { AdminForm, AdminList, AdminPage, Field, useForm, val } from '../admin-ui';
import { api, asItems, type Schema } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { ErrorBox, Num, Toggle, useApi } from '../ui';

export type CardSource = Schema<'CardSourceOut'>;
type SourceResult = Schema<'SourceResult'>;

export function AdminCardSources() {
  const loaded = useApi<CardSource[]>('/admin/card-sources');
  const sources = asItems<CardSource>(loaded.data).items;
  const [editing, setEditing] = useState<CardSource | 'new' | null>(null);
  const [testing, setTesting] = useState<CardSource | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const remove = async (s: CardSource) => {
    if (!confirm(t('sources.confirmDelete', { name: s.name }))) return;
    setError(null);
    try {
      await api('DELETE', `/admin/card-sources/${s.id}`);
      setNotice(t('sources.deleted', { name: s.name }));
      loaded.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <AdminPage
      class="admin-sources"
      title={t('sources.title')}
      action={{
        label: t('sources.new'),
        testid: 'source-new',
        onClick: () => setEditing(editing === 'new' ? null : 'new'),
        hidden: Boolean(loaded.error),
      }}
      help={t('sources.help')}
      notice={notice}
      error={error}
    >
      {editing && (
        <SourceForm
          key={editing === 'new' ? 'new' : editing.id}
          source={editing === 'new' ? null : editing}
          onDone={(saved) => {
            setEditing(null);
            if (saved) {
              setNotice(t('common.savedName', { name: saved.name }));
              loaded.reload();
            }
          }}
        />
      )}
      <AdminList
        loaded={loaded}
        feature={t('sources.title')}
        items={sources}
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
              <button class="link-btn" data-testid="source-edit" onClick={() => setEditing(s)}>
                {t('common.edit')}
              </button>
              <button class="link-btn danger" data-testid="source-delete" onClick={() => void remove(s)}>
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
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    setBusy(true);
    try {
      setResult(
        await api<SourceResult>(
          'POST',
          `/admin/card-sources/${props.source.id}/test?number=${encodeURIComponent(number.trim())}`,
        ),
      );
    } catch (x) {
      setError(x);
    } finally {
      setBusy(false);
    }
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
      <ErrorBox error={error} />
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
      <Field label={t('sources.name')}>
        <input name="name" required value={f.name} onInput={set('name')} />
      </Field>
      <Field label={t('sources.kind')}>
        <select name="kind" value={kind} disabled={Boolean(s)} onChange={(e) => setKind(val(e) as Schema<'SourceKind'>)}>
          <option value="http">{t('sources.kind.http')}</option>
          <option value="sql">{t('sources.kind.sql')}</option>
        </select>
      </Field>
      {kind === 'http' ? (
        <>
          <Field label={t('sources.urlTemplate')} help={t('sources.urlTemplateHelp')} wide>
            <input
              name="url_template"
              required
              placeholder="https://erp.example/api/customers?phone={number}"
              value={f.url_template}
              onInput={set('url_template')}
            />
          </Field>
          <Field label={t('sources.headers')} help={t('sources.headersHelp')} wide>
            <textarea name="headers" class="code" rows={2} placeholder="Authorization: Bearer …" value={f.headers} onInput={set('headers')} />
          </Field>
        </>
      ) : (
        <>
          <Field label={t('sources.dbUrl')} wide>
            <input name="url" required placeholder="postgresql://user:password@host/db" value={f.url} onInput={set('url')} />
          </Field>
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
      <Field label={t('sources.position')}>
        <input name="position" type="number" min={0} max={1000} value={f.position} onInput={set('position')} />
      </Field>
      <Field label={t('sources.timeout')}>
        <input name="timeout_ms" type="number" min={50} max={30000} value={f.timeout_ms} onInput={set('timeout_ms')} />
      </Field>
      <Toggle label={t('sources.enabled')} checked={enabled} onChange={setEnabled} testid="source-enabled" />
    </AdminForm>
  );
}
