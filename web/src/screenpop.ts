// Screen pop: when a call to this user starts ringing (or is answered: the user's choice), open the
// CRM address from the screen pop template, filled in and URL-encoded by the server. {name} is the event's
// caller_name, the one callto Link uses. A browser that blocks the pop-up gets a link to click instead
// (screenPopBlocked).
import { api } from './api';
import { events, type ServerEvent } from './events';
import { phone } from './phone';
import { session } from './session';
import { Store } from './store';

interface PopConfig {
  url_template: string;
  on: 'ringing' | 'answered';
  enabled: boolean;
}

let config: PopConfig | null = null;
let loadedFor: string | null = null;
const popped = new Set<string>();
export const screenPopBlocked = new Store<string | null>(null);

// The settings being read: a call that rings right after sign-in waits for them rather than pop nothing.
let loading: Promise<void> = Promise.resolve();

export function reloadScreenPop(): Promise<void> {
  loading = api<PopConfig>('GET', '/me/screen-pop').then(
    (c) => {
      config = c;
    },
    () => {
      config = null; // an older server, or none configured: no screen pop
    },
  );
  return loading;
}

session.subscribe((s) => {
  const id = s.me ? String(s.me.id) : null;
  if (id === loadedFor) return;
  loadedFor = id;
  config = null;
  popped.clear();
  if (id) void reloadScreenPop();
});

function incomingForMe(ev: ServerEvent): boolean {
  const me = session.get().me;
  if (!me) return false;
  const d = ev.data;
  if (d.direction === 'inbound' || d.direction === 'incoming') return true;
  // an internal call: this user is the one called when the call is to their extension
  return d.direction === 'internal' && !!me.extension && String(d.to ?? '') === String(me.extension);
}

/** The caller's name a call event carries (`caller_name`: directory, else the phonebook), null when none. */
function eventCallerName(ev: ServerEvent): string | null {
  const n = ev.data.caller_name;
  return typeof n === 'string' && n ? n : null;
}

async function onCall(ev: ServerEvent): Promise<void> {
  await loading;
  if (!config || !config.enabled || !config.url_template) return;
  if (ev.type !== `call.${config.on}` || !incomingForMe(ev)) return;
  const callId = String(ev.data.call_id ?? '');
  if (!callId || popped.has(callId)) return;
  popped.add(callId);
  const number = String(ev.data.from ?? '');
  // The event's caller_name, as callto Link fills {name}; looked up here only when the event has none (an
  // unknown caller, a look-up that took too long, an older server).
  let name = eventCallerName(ev) ?? '';
  if (!name) {
    try {
      name = (phone.lookupName && number ? await phone.lookupName(number) : null) ?? '';
    } catch {
      name = '';
    }
  }
  const q = new URLSearchParams({ number, name, call_id: callId });
  const res = await api<{ url: string | null }>('GET', `/me/screen-pop/url?${q.toString()}`);
  if (!res.url) return;
  const win = window.open(res.url, '_blank', 'noopener');
  if (!win) screenPopBlocked.set(res.url);
}

for (const type of ['call.ringing', 'call.answered']) events.on(type, (ev) => void onCall(ev).catch(() => undefined));
