// The phonebook's import/export panel: a CSV or vCard file imported into your private contacts (or, for
// administrators, the company's shared ones), with the rows that could not be read listed by line; and
// every contact you can see exported as CSV or vCard.
import { useState } from 'preact/hooks';
import { api, download, type Schema } from '../api';
import { fieldLabel, numberReason, t, tOr } from '../i18n';
import { session } from '../session';
import { useStore } from '../store';
import { ErrorBox } from '../ui';

/** A refused row: `problem` is the server's English wording; the screen words it from the ids. */
type ImportRowError = Schema<'ImportRowError'>;

/** One refused row in the screen's language: which line, which column, the value and why. */
function rowText(er: ImportRowError): string {
  if (er.error === 'invalid-number') {
    const type = er.field ? tOr(`phonebook.numtype.${er.field}`, fieldLabel('number')) : fieldLabel('number');
    return t('transfer.rowNumber', { row: er.row, column: er.column || type, value: er.value ?? '', reason: numberReason(er.reason) });
  }
  if (er.field) return t('transfer.rowField', { row: er.row, field: fieldLabel(er.field) });
  return t('transfer.rowUnreadable', { row: er.row });
}

type ImportResult = Schema<'ImportOut'>;

export function ContactTransfer(props: { onImported: () => void; onClose: () => void }) {
  const me = useStore(session).me;
  const isAdmin = me?.role === 'admin';
  const [file, setFile] = useState<File | null>(null);
  const [shared, setShared] = useState(false);
  const [scope, setScope] = useState<'all' | 'private' | 'shared'>('all');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<ImportResult | null>(null);
  const [error, setError] = useState<unknown>(null);
  const doImport = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const q = shared ? '?shared=true' : '';
      const r = await api<ImportResult>('POST', `/phonebook/import${q}`, undefined, { raw: file });
      setResult(r);
      if (r.imported > 0) props.onImported();
    } catch (x) {
      setError(x);
    } finally {
      setBusy(false);
    }
  };
  const doExport = async (format: 'csv' | 'vcard') => {
    setError(null);
    try {
      await download(`/phonebook/export?format=${format}&scope=${scope}`, format === 'csv' ? 'phonebook.csv' : 'phonebook.vcf');
    } catch (x) {
      setError(x);
    }
  };
  return (
    <div class="card transfer-panel" data-testid="contact-transfer">
      <div class="page-head">
        <h2>{t('transfer.title')}</h2>
        <button class="link-btn" onClick={props.onClose}>
          {t('common.close')}
        </button>
      </div>
      <div class="grid2">
        <form class="form" onSubmit={doImport}>
          <h3>{t('transfer.import')}</h3>
          <p class="muted">{t('transfer.importHelp')}</p>
          <input
            type="file"
            data-testid="import-file"
            accept=".csv,.vcf,.vcard,text/csv,text/vcard,text/x-vcard"
            onChange={(e) => {
              setFile((e.target as HTMLInputElement).files?.[0] ?? null);
              setResult(null);
            }}
          />
          {isAdmin && (
            <label class="toggle">
              <input
                type="checkbox"
                data-testid="import-shared"
                checked={shared}
                onChange={(e) => setShared((e.target as HTMLInputElement).checked)}
              />
              <span>{t('transfer.shared')}</span>
            </label>
          )}
          <div class="actions">
            <button class="btn primary" type="submit" data-testid="import-go" disabled={!file || busy}>
              {busy ? t('transfer.importing') : t('transfer.importGo')}
            </button>
          </div>
        </form>
        <div class="form">
          <h3>{t('transfer.export')}</h3>
          <p class="muted">{t('transfer.exportHelp')}</p>
          <label>
            {t('transfer.scope')}
            <select data-testid="export-scope" value={scope} onChange={(e) => setScope((e.target as HTMLSelectElement).value as typeof scope)}>
              <option value="all">{t('transfer.scope.all')}</option>
              <option value="private">{t('transfer.scope.private')}</option>
              <option value="shared">{t('transfer.scope.shared')}</option>
            </select>
          </label>
          <div class="actions">
            <button class="btn" data-testid="export-csv" onClick={() => void doExport('csv')}>
              {t('transfer.csv')}
            </button>
            <button class="btn" data-testid="export-vcard" onClick={() => void doExport('vcard')}>
              {t('transfer.vcard')}
            </button>
          </div>
        </div>
      </div>
      <ErrorBox error={error} />
      {result && (
        <div class={result.failed ? 'notice' : 'ok-box'} data-testid="import-result" data-imported={result.imported} data-failed={result.failed}>
          <strong>{t('transfer.result', { imported: result.imported, total: result.total })}</strong>
          {result.failed > 0 && (
            <>
              <p>{t('transfer.failedRows', { failed: result.failed })}</p>
              <ul data-testid="import-errors">
                {result.errors.map((er, i) => (
                  <li key={i} data-row={er.row} data-reason={er.reason ?? undefined}>
                    {rowText(er)}
                  </li>
                ))}
              </ul>
              {result.errors_truncated && <p class="muted">{t('transfer.more')}</p>}
            </>
          )}
        </div>
      )}
    </div>
  );
}
