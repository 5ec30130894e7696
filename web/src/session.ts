// The logged-in session: login/logout/expiry, and what starts with it (event stream, web phone,
// the `dial` command handler, click-to-call progress, the latest customer card).
import { ApiError, api, asItems, clearSession, getExpiry, getToken, newIdempotencyKey, onSessionExpired, setSession } from './api';
import type { LoginResult, Me, Schema, SipCredentials } from './api';
import { events, type ServerEvent } from './events';
import { causeOf, isFailure } from './causes';
import { PhoneError, phone } from './phone';
import { applyServerPrefs, prefs, startPrefs, stopPrefs, type ServerPrefs } from './settings';
import type { TextKey } from './i18n';
import { Store } from './store';

export interface SessionState {
  me: Me | null;
  booting: boolean;
  /** i18n key of a message for the login screen (e.g. session expired). */
  notice: TextKey | null;
}

export const session = new Store<SessionState>({ me: null, booting: true, notice: null });

export interface CallProgress {
  key: string;
  to: string;
  callId: string | null;
  deviceLabel: string | null;
  deviceKind: string | null;
  strategy: string | null;
  state: 'requesting' | 'dialing' | 'ringing' | 'answered' | 'ended' | 'error';
  /** Why it ended, as a cause id (see causes.ts); `failed` when it ended before being answered. */
  reason: string | null;
  failed?: boolean;
  answered?: boolean;
  /** error id: the UI shows `err.<id>` and `fix.<id>` */
  error: string | null;
  errorMessage: string | null;
  /** The error's `details` (an `invalid-number`'s reason and value, shown in the user's words). */
  errorDetails?: Record<string, unknown>;
}

export const progress = new Store<CallProgress | null>(null);
/** The card pushed for a call; `ended` once that call is over (the side panel then collapses). */
export const card = new Store<{ number: string; data: Record<string, unknown>; callId?: string; ended?: boolean } | null>(
  null,
);
export const missed = new Store<number>(0);

let expiryTimer: number | null = null;
const earlyCallEvents = new Map<string, ServerEvent[]>();

// An invalid token (server restarted with new keys, user deleted) reads the same to the user as expiry.
// A 401 that lands once the session is already over (a request still in flight when the user signed out,
// answered after the logout revoked its token) must not turn "signed out" into "expired".
onSessionExpired(() => {
  const s = session.get();
  if (!s.me && !s.booting) return;
  endSession('login.expired');
});

function endSession(notice: TextKey | null): void {
  if (expiryTimer !== null) window.clearTimeout(expiryTimer);
  expiryTimer = null;
  events.stop();
  phone.stop();
  progress.set(null);
  card.set(null);
  stopPrefs();
  clearSession();
  session.set({ me: null, booting: false, notice });
}

export async function login(username: string, password: string, otp?: string): Promise<void> {
  const body: Record<string, string> = { username, password };
  if (otp) body.otp = otp;
  const res = await api<LoginResult>('POST', '/auth/login', body, { expireOn401: false });
  setSession(res.token, res.expires_at);
  // Ask now, during the click that logged in: an incoming call in a background tab can then notify.
  if ('Notification' in window && Notification.permission === 'default') {
    void Notification.requestPermission().catch(() => undefined);
  }
  await start(res.user);
}

export async function logout(): Promise<void> {
  try {
    await api('POST', '/auth/logout');
  } catch {
    // The session ends locally whatever the server says.
  }
  endSession('login.loggedOut');
}

/** On page load: resume the stored session if the server still accepts its token. */
export async function boot(): Promise<void> {
  if (!getToken()) {
    session.set({ me: null, booting: false, notice: null });
    return;
  }
  const exp = getExpiry();
  if (exp && exp.getTime() <= Date.now()) {
    endSession('login.expired');
    return;
  }
  try {
    const me = await api<Me>('GET', '/me');
    await start(me);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      // 503 (storage-unavailable) or no answer: the token is kept and /me asked again until it answers.
      const retrying = e instanceof ApiError && e.status === 503;
      session.set({ me: null, booting: false, notice: retrying ? 'login.serverRetrying' : 'login.serverDown' });
      const wait = Number((e instanceof ApiError && e.details.retry_after) || 5);
      window.setTimeout(() => {
        if (!session.get().me && getToken()) void boot();
      }, Math.min(Math.max(wait, 1), 30) * 1000);
    }
  }
}

export async function refreshMe(): Promise<Me | null> {
  const me = await api<Me>('GET', '/me');
  session.update({ me });
  applyServerPrefs(me.preferences);
  return me;
}

async function start(me: Me): Promise<void> {
  // Before the first screen: it opens in the profile's language with the profile's alerts.
  await startPrefs(me.preferences);
  session.set({ me, booting: false, notice: null });
  const exp = getExpiry();
  if (exp) {
    // setTimeout overflows past ~24.8 days; a session that long is refreshed by reloads anyway.
    const ms = Math.min(exp.getTime() - Date.now(), 2 ** 31 - 1);
    expiryTimer = window.setTimeout(() => endSession('login.expired'), Math.max(0, ms));
  }
  void loadMissed();
  events.start(getToken() ?? '', () => {
    // The stream was refused: find out whether the session itself is gone (api() handles the 401).
    void api('GET', '/me').catch(() => undefined);
  });
  await startPhone(me);
}

export function webphoneDevice(me: Me | null) {
  return me?.devices.find((d) => d.kind === 'webphone') ?? null;
}

/** Inside callto Link's phone window (`/?embedded=link`) the page is Link's phone: it registers with the
 * user's `link` device, and Link itself (which holds the event session for that device) hands it the
 * numbers to dial through `window.calltoPhone.dial`. */
export const embeddedInLink = new URLSearchParams(location.search).get('embedded') === 'link';

export function phoneDevice(me: Me | null) {
  return embeddedInLink ? (me?.devices.find((d) => d.kind === 'link') ?? null) : webphoneDevice(me);
}

/** What Link's phone window calls on this page (src/callto/link/phone_window.py). */
interface LinkPhoneHook {
  /** Dial for a click: the click's id (`c2c-...`) goes into the INVITE, so the call is that click's story. */
  dial(number: string, clickId?: string | null): Promise<void>;
  /** The ring tone's speaker, by the name the system shows (Link's setting); "" is the calls' speaker. */
  setRingDevice(name: string): Promise<void>;
  /** Link's tray asked to move the user's call here: answer the switch's INVITE for it by itself. */
  expectMove(): void;
}

if (embeddedInLink) {
  const hook: LinkPhoneHook = {
    dial: (number, clickId) => phone.dial(number, '', clickId ?? null),
    expectMove: () => phone.expectMove(),
    setRingDevice: async (name) => {
      let id = '';
      if (name && navigator.mediaDevices?.enumerateDevices) {
        const outputs = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audiooutput');
        id = outputs.find((d) => d.label === name)?.deviceId ?? '';
      }
      prefs.update({ ringDeviceId: id });
    },
  };
  (window as unknown as { calltoPhone: LinkPhoneHook }).calltoPhone = hook;
}

export async function startPhone(me: Me): Promise<void> {
  const dev = phoneDevice(me);
  if (!dev) {
    phone.stop();
    events.hello(null);
    return;
  }
  // In Link, Link's own session speaks for the device; a second hello would take its dial commands.
  events.hello(embeddedInLink ? null : dev.id);
  try {
    const creds = await api<SipCredentials>('GET', `/me/devices/${dev.id}/sip`);
    await phone.start(creds, me.display_name || me.username);
  } catch (e) {
    phone.status.update({ reg: 'failed', deviceId: dev.id, error: e instanceof Error ? e.message : String(e) });
  }
}

/** The other party's name: a colleague's (directory, by extension), else the customer card's. */
phone.lookupName = async (number) => {
  try {
    const dir = asItems<{ extension?: string | null; display_name?: string }>(await api('GET', '/directory')).items;
    const colleague = dir.find((u) => u.extension && u.extension === number);
    if (colleague?.display_name) return colleague.display_name;
  } catch {
    // No directory on this server: try the card.
  }
  const c = await api<Record<string, unknown>>('GET', `/customer-card?number=${encodeURIComponent(number)}`);
  return cardName(c);
};

/** The best display name in a customer card, whatever its exact shape. */
export function cardName(c: Record<string, unknown> | null | undefined): string | null {
  if (!c) return null;
  if (typeof c.name === 'string' && c.name) return c.name;
  for (const k of ['contacts', 'matches', 'contact']) {
    const v = c[k];
    const first = Array.isArray(v) ? v[0] : v;
    if (first && typeof first === 'object' && typeof (first as { name?: unknown }).name === 'string') {
      return (first as { name: string }).name;
    }
  }
  return null;
}

// The server pushes `dial` to exactly one session: the tab that declared the web phone with `hello`.
events.on('dial', (ev) => {
  const d = ev.data as {
    command_id?: string;
    call_id?: string;
    to?: string;
    number?: { dialed?: string };
    device_id?: unknown;
  };
  const ack = (ok: boolean, reason: string | null = null) =>
    events.send({ type: 'dial.ack', data: { command_id: d.command_id, ok, reason } });
  const mine = phone.status.get().deviceId;
  if (mine === null || (d.device_id !== undefined && String(d.device_id) !== String(mine))) {
    ack(false, 'not-this-device');
    return;
  }
  const number = d.number?.dialed || d.to || '';
  phone
    .dial(number, '', d.call_id ?? null)
    .then(() => {
      ack(true);
      const p = progress.get();
      if (p && (p.state === 'requesting' || p.state === 'dialing')) progress.set({ ...p, state: 'dialing' });
    })
    .catch((e: unknown) => {
      const id = e instanceof PhoneError ? e.id : 'call-failed';
      ack(false, id);
      const p = progress.get();
      progress.set({
        ...(p ?? emptyProgress(number)),
        state: 'error',
        error: id,
        errorMessage: e instanceof Error ? e.message : null,
      });
    });
});

function emptyProgress(to: string): CallProgress {
  return {
    key: newIdempotencyKey(),
    to,
    callId: null,
    deviceLabel: null,
    deviceKind: null,
    strategy: null,
    state: 'requesting',
    reason: null,
    error: null,
    errorMessage: null,
  };
}

// How long the toast stays after the end: long enough to read a failure and its fix.
const ENDED_MS = 6000;
const FAILED_MS = 12000;
// A web phone call whose end the server never reported (the INVITE did not reach it): end the click
// with the browser's own cause after this long.
const LOCAL_END_MS = 3000;

function endProgress(p: CallProgress, reason: string | null): void {
  const cause = causeOf(reason);
  const failed = !p.answered && isFailure(cause);
  progress.set({ ...p, state: 'ended', reason: cause, failed });
  window.setTimeout(() => {
    if (progress.get()?.key === p.key) progress.set(null);
  }, failed ? FAILED_MS : ENDED_MS);
}

function applyCallEvent(ev: ServerEvent): void {
  const p = progress.get();
  const callId = String(ev.data.call_id ?? '');
  if (!p) return;
  if (!p.callId) {
    // The event beat the 202 answer: keep it until we know our call id.
    if (p.state === 'requesting' && callId) {
      const list = earlyCallEvents.get(callId) ?? [];
      list.push(ev);
      earlyCallEvents.set(callId, list);
    }
    return;
  }
  if (callId && callId !== p.callId) return;
  if (p.state === 'ended' || p.state === 'error') return;
  const state = ev.type.slice('call.'.length) as CallProgress['state'];
  const reason = typeof ev.data.reason === 'string' ? ev.data.reason : null;
  if (state === 'ended') {
    endProgress(p, reason ?? p.reason);
    return;
  }
  progress.set({ ...p, state, reason: reason ?? p.reason, answered: p.answered || state === 'answered' });
}

// The web phone's call for the click ended: if the server has not said so within a moment, the
// browser's own cause ends the click (no toast left on "Starting the call..." for good).
phone.call.subscribe((c) => {
  if (!c || c.state !== 'ended' || !c.clickId) return;
  const clickId = c.clickId;
  const cause = c.endedCause;
  window.setTimeout(() => {
    const p = progress.get();
    if (p && p.callId === clickId && p.state !== 'ended' && p.state !== 'error') endProgress(p, cause);
  }, LOCAL_END_MS);
});

for (const t of ['call.dialing', 'call.ringing', 'call.answered', 'call.ended']) events.on(t, applyCallEvent);

// The server names the caller in its call events (caller_name): the web phone's incoming call shows that
// name, as the screen pop and callto Link use it, rather than one it looked up itself.
for (const t of ['call.ringing', 'call.answered']) {
  events.on(t, (ev) => {
    const name = ev.data.caller_name;
    if (typeof name === 'string' && name) phone.nameCaller(String(ev.data.from ?? ''), name);
  });
}

events.on('card', (ev) => {
  const number = String(ev.data.number ?? '');
  const data = (ev.data.card ?? ev.data) as Record<string, unknown>;
  card.set({ number, data, callId: typeof ev.data.call_id === 'string' ? ev.data.call_id : undefined });
});

// The call the card is about ended (a click's events name the switch's call as sip_call_id).
events.on('call.ended', (ev) => {
  const c = card.get();
  if (!c?.callId || c.ended) return;
  if (c.callId === ev.data.call_id || c.callId === ev.data.sip_call_id) card.set({ ...c, ended: true });
});

events.on('history.new', (ev) => {
  if (typeof ev.data.missed_unseen === 'number') {
    missed.set(ev.data.missed_unseen);
    return;
  }
  const e = (ev.data.entry ?? ev.data) as { missed?: boolean };
  if (e.missed) missed.set(missed.get() + 1);
});
events.on('history.seen', () => missed.set(0));
// Changed in another browser or in Link: this tab follows at once.
events.on('me.preferences', (ev) => applyServerPrefs(ev.data as Partial<ServerPrefs>));

async function loadMissed(): Promise<void> {
  try {
    const r = await api<Schema<'MissedOut'>>('GET', '/history/missed');
    missed.set(r.missed_unseen ?? 0);
  } catch {
    // No history on this server: no badge.
  }
}

/** What `POST /calls` answers (202): the call id, the device and the strategy the server chose. */
type CallAccepted = Schema<'CallOut'>;

/** Every number on screen calls this: the server picks the user's device and places the call. */
export async function clickToCall(to: string): Promise<void> {
  const me = session.get().me;
  if (!me) return;
  const cur = progress.get();
  // A double click on the same number reuses the key: the server places one call.
  const key = cur && cur.to === to && cur.state === 'requesting' ? cur.key : newIdempotencyKey();
  const p: CallProgress = { ...emptyProgress(to), key };
  progress.set(p);
  const main = me.devices.find((d) => String(d.id) === String(me.main_device_id));
  if (main?.kind === 'webphone' && phone.status.get().deviceId !== null) {
    // The web phone will be used: check the microphone first so a blocked one places no call at all.
    try {
      const s = await phone.getMic();
      for (const tr of s.getTracks()) tr.stop();
    } catch (e) {
      progress.set({ ...p, state: 'error', error: e instanceof PhoneError ? e.id : 'microphone-failed' });
      return;
    }
  }
  try {
    const res = await api<CallAccepted>('POST', '/calls', { to }, { idempotencyKey: key });
    const dev = me.devices.find((d) => String(d.id) === String(res.device_id));
    const now = progress.get();
    if (now?.key !== key) return;
    progress.set({
      ...now,
      callId: String(res.call_id),
      deviceLabel: dev?.label ?? (res.device_id === 'mobile' ? 'mobile' : String(res.device_id)),
      deviceKind: res.device_kind ?? dev?.kind ?? null,
      strategy: res.strategy,
      state: now.state === 'requesting' ? 'dialing' : now.state,
    });
    for (const ev of earlyCallEvents.get(String(res.call_id)) ?? []) applyCallEvent(ev);
    earlyCallEvents.clear();
  } catch (e) {
    if (progress.get()?.key !== key) return;
    if (e instanceof ApiError && e.missingEndpoint && main?.kind === 'webphone' && phone.ready) {
      // This server has no click-to-call endpoint yet: the web phone can still dial by itself.
      try {
        await phone.dial(to);
        progress.set({ ...p, state: 'dialing', deviceLabel: main.label, strategy: 'webphone-direct' });
      } catch (pe) {
        progress.set({ ...p, state: 'error', error: pe instanceof PhoneError ? pe.id : 'call-failed' });
      }
      return;
    }
    const id = e instanceof ApiError ? (e.missingEndpoint ? 'calls-unavailable' : e.error) : 'call-failed';
    progress.set({
      ...p,
      state: 'error',
      error: id,
      errorMessage: e instanceof Error ? e.message : null,
      errorDetails: e instanceof ApiError ? e.details : undefined,
    });
  }
}

export function dismissProgress(): void {
  progress.set(null);
}

export const _debug = { events, phone, session, progress };

// --- moving a live call between the user's own devices ------------------------------------------------

/** The user's answered call as the server's `call.*` events tell it (on any of their devices): the
 * phone panel offers to take it onto this page's web phone when this page does not carry it. */
export interface LiveCall {
  callId: string;
  number: string;
  deviceId: number | null;
}

export const liveCall = new Store<LiveCall | null>(null);

/** A move this page started: the device it rings, or why it failed (`move-failed` and its reason). */
export interface MoveState {
  deviceId: number;
  state: 'ringing' | 'failed';
  error?: string;
  reason?: string | null;
}

export const moving = new Store<MoveState | null>(null);

events.on('call.answered', (ev) => {
  if (typeof ev.data.call_id !== 'string') return;
  const me = session.get().me;
  const from = String(ev.data.from ?? '');
  // the user's own extension as the caller: the other party is the one called
  const number = me?.extension && from === me.extension ? String(ev.data.to ?? '') : from;
  liveCall.set({ callId: ev.data.call_id, number, deviceId: null });
});
events.on('call.moved', (ev) => {
  const c = liveCall.get();
  if (c && c.callId === ev.data.call_id) liveCall.set({ ...c, deviceId: Number(ev.data.device_id) || null });
});
events.on('call.ended', (ev) => {
  if (liveCall.get()?.callId === ev.data.call_id) liveCall.set(null);
});

/** Move the user's answered call to `deviceId` (one of theirs); resolves once it talks there. */
export async function moveCall(deviceId: number, callId?: string | null): Promise<void> {
  moving.set({ deviceId, state: 'ringing' });
  const mine = phoneDevice(session.get().me);
  if (mine && mine.id === deviceId) phone.expectMove();
  try {
    await api('POST', '/calls/move', { device_id: deviceId, call_id: callId ?? null });
    moving.set(null);
  } catch (e) {
    const error = e instanceof ApiError ? e.error : 'unknown';
    const reason = e instanceof ApiError && typeof e.details.reason === 'string' ? e.details.reason : null;
    moving.set({ deviceId, state: 'failed', error, reason });
  }
}
