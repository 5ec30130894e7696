// Admin integrations: service tokens for CRM servers, webhooks (register, send a test event, the
// delivery log), the delivery policy and the company-wide screen pop.
import { useState } from 'preact/hooks';
import { AdminPage, useActions, val } from '../admin-ui';
import { api, type Schema } from '../api';
// The admin screens' texts (their own table loads with them, not with a plain user's first screen).
import { t } from '../i18n-admin';
import { tOr } from '../i18n';
import { ErrorBox, LoadState, formatTime, useApi } from '../ui';
import { ScreenPopForm, TokenManager } from './Integrations';
import './integrations.css';

type EventName = Schema<'WebhookIn'>['events'][number];

const EVENTS: readonly EventName[] = [
  'call.ringing',
  'call.answered',
  'call.ended',
  'call.missed',
  'history.new',
  'history.updated',
  'presence.changed',
];

type Webhook = Schema<'WebhookOut'>;
type Delivery = Schema<'DeliveryOut'>;

function Deliveries(props: { id: number; tick: number }) {
  const loaded = useApi<Delivery[]>(`/admin/webhooks/${props.id}/deliveries?limit=20`, [props.tick]);
  return (
    <table class="list" data-testid="webhook-deliveries">
      <tbody>
        {(loaded.data ?? []).map((d) => (
          <tr key={d.id} data-testid="delivery-row" data-status={d.status}>
            <td>{formatTime(d.updated_at)}</td>
            <td>{d.event_type}</td>
            <td>{tOr(`webhooks.status.${d.status}`, d.status)}</td>
            <td>{t('webhooks.attempts', { n: d.attempts })}</td>
            <td>{d.response_status ?? '—'}</td>
            <td>{d.latency_ms === null ? '' : `${Math.round(d.latency_ms)} ms`}</td>
            <td class="muted">{d.error}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Webhooks() {
  const loaded = useApi<Webhook[]>('/admin/webhooks');
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<EventName[]>(['call.ringing', 'call.answered', 'call.ended']);
  const [secret, setSecret] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [tick, setTick] = useState(0);
  const actions = useActions();
  const create = (e: Event) => {
    e.preventDefault();
    void actions.run(async () => {
      const body: Schema<'WebhookIn'> = { url, events };
      const res = await api<Schema<'WebhookCreatedOut'>>('POST', '/admin/webhooks', body);
      setSecret(res.secret);
      setUrl('');
      loaded.reload();
    });
  };
  const test = async (id: number) => {
    await actions.run(() => api('POST', `/admin/webhooks/${id}/test`));
    setOpen(id);
    setTick(tick + 1);
  };
  const remove = (id: number) =>
    actions.run(async () => {
      await api('DELETE', `/admin/webhooks/${id}`);
      loaded.reload();
    });
  return (
    <div class="card" data-testid="webhooks">
      <LoadState loaded={loaded} feature={t('webhooks.title')} />
      {secret && (
        <div class="notice" data-testid="webhook-secret">
          <strong>{t('webhooks.secretOnce')}</strong>
          <code>{secret}</code>
        </div>
      )}
      {(loaded.data ?? []).map((h) => (
        <div key={h.id} class="webhook" data-testid="webhook-row">
          <strong>{h.url}</strong> <span class="muted">{h.events.join(', ')}</span>{' '}
          <button class="btn" data-testid="webhook-test" onClick={() => void test(h.id)}>
            {t('webhooks.test')}
          </button>{' '}
          <button class="btn" onClick={() => setOpen(open === h.id ? null : h.id)}>{t('webhooks.log')}</button>{' '}
          <button class="btn danger" onClick={() => void remove(h.id)}>
            {t('common.delete')}
          </button>
          {open === h.id && <Deliveries id={h.id} tick={tick} />}
        </div>
      ))}
      <form class="form" onSubmit={create}>
        <label>
          {t('webhooks.url')}
          <input data-testid="webhook-url" value={url} required placeholder="https://crm.example/callto"
            onInput={(e) => setUrl(val(e))} />
        </label>
        <fieldset>
          <legend>{t('webhooks.events')}</legend>
          {EVENTS.map((ev) => (
            <label key={ev} class="inline">
              <input type="checkbox" checked={events.includes(ev)}
                onChange={() => setEvents(events.includes(ev) ? events.filter((x) => x !== ev) : [...events, ev])} />{' '}
              {ev}
            </label>
          ))}
        </fieldset>
        <button class="btn primary" type="submit" data-testid="webhook-create">
          {t('common.add')}
        </button>
      </form>
      <ErrorBox error={actions.error} />
    </div>
  );
}

export function AdminIntegrations() {
  return (
    <AdminPage class="admin-integrations" title={t('integrations.title')}>
      <h2>{t('webhooks.title')}</h2>
      <p class="muted">{t('webhooks.help')}</p>
      <Webhooks />
      <h2>{t('servicetokens.title')}</h2>
      <p class="muted">{t('servicetokens.help')}</p>
      <TokenManager path="/admin/service-tokens" testid="service-tokens" />
      <h2>{t('screenpop.companyTitle')}</h2>
      <ScreenPopForm path="/admin/screen-pop" />
    </AdminPage>
  );
}
