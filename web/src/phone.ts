// The built-in web phone: JsSIP over WebSocket to the switch's /sip, registering with the user's
// webphone device credentials; places, receives and controls calls in the browser. One call is in the
// foreground (every control acts on it); a second one can wait in the background: an incoming call
// ringing during the first (call waiting), or the call put on hold to answer it.
import type * as JsSIPTypes from 'jssip';
import type { AnswerOptions, RTCSession } from 'jssip/lib/RTCSession';
import type { CallOptions } from 'jssip/lib/UA';
import type { SipCredentials } from './api';
import { t } from './i18n';
import { audioConstraints, prefs } from './settings';
import { Store } from './store';

export type RegState = 'off' | 'connecting' | 'unreachable' | 'registered' | 'unregistered' | 'failed' | 'reconnecting';
export type MicState = 'unknown' | 'prompt' | 'granted' | 'denied' | 'missing';

export interface PhoneStatus {
  reg: RegState;
  deviceId: number | string | null;
  error: string | null;
  reconnects: number;
  mic: MicState;
}

export interface CallView {
  id: string;
  direction: 'in' | 'out';
  number: string;
  name: string;
  state: 'ringing' | 'calling' | 'early' | 'established' | 'ended';
  muted: boolean;
  held: boolean;
  startedAt: number | null;
  endedCause: string | null;
  /** The server's click (`c2c-...`) this call places, sent with the INVITE as `X-Callto-Click`. */
  clickId?: string | null;
}

/** A web phone failure with a stable id the UI turns into plain words (see i18n `err.<id>`). */
export class PhoneError extends Error {
  readonly id: string;
  constructor(id: string, message = id) {
    super(message);
    this.id = id;
  }
}

const ICE_CAP_MS = 150;
// A call event's caller name stands for an INVITE from the same number for this long, for this many numbers.
const SERVER_NAME_FRESH_MS = 60_000;
const SERVER_NAMES_KEPT = 8;

function cleanNumber(target: string): string {
  // Only dialable characters reach the SIP URI; the server already normalized the number.
  return target.replace(/^(tel:|callto:|sip:)\/*/i, '').replace(/@.*$/, '').replace(/[^0-9+*#]/g, '');
}

export class WebPhone {
  readonly status = new Store<PhoneStatus>({ reg: 'off', deviceId: null, error: null, reconnects: 0, mic: 'unknown' });
  /** The foreground call: the one the panel's controls act on. */
  readonly call = new Store<CallView | null>(null);
  /** The background call: ringing while the foreground one goes on (call waiting), or on hold. */
  readonly other = new Store<CallView | null>(null);
  /** What the ringer plays now: the ring of a call, the short call-waiting beeps, or nothing. */
  readonly alert = new Store<'off' | 'ring' | 'waiting'>('off');
  private ua: JsSIPTypes.UA | null = null;
  private startSeq = 0;
  private session: RTCSession | null = null;
  private second: RTCSession | null = null;
  private readonly views = new Map<string, CallView>();
  private readonly localStreams = new Map<string, MediaStream>();
  private readonly remoteStreams = new Map<string, MediaStream>();
  private domain = '';
  private wasRegistered = false;
  private audioCtx: AudioContext | null = null;
  private ringer: { gain: GainNode; timer: number } | null = null;
  private notification: Notification | null = null;
  private alertWho = '';
  private titleTimer: number | null = null;
  private readonly savedTitle = document.title;
  /** When the last INVITE left this tab (Date.now()): click-to-INVITE latency is measured from it. */
  lastInviteAt = 0;
  /** Called when a call starts, to look up the other party's name (customer card). */
  lookupName: ((number: string) => Promise<string | null>) | null = null;
  /** The names the server's call events gave callers lately (number -> name, when): see nameCaller. */
  private readonly serverNames = new Map<string, { name: string; at: number }>();

  get ready(): boolean {
    return this.status.get().reg === 'registered';
  }

  get busy(): boolean {
    return this.session !== null;
  }

  constructor() {
    // Browsers start audio only after the user has touched the page: make the ringer's audio context
    // during a click or key press, so that a call arriving later in a background tab can ring aloud.
    const prime = () => {
      // Only for a web phone in use: a page without one needs no audio at all.
      if (this.status.get().reg === 'off') return;
      this.ensureAudio();
      if (this.audioCtx && this.audioCtx.state !== 'suspended') {
        window.removeEventListener('pointerdown', prime, true);
        window.removeEventListener('keydown', prime, true);
      }
    };
    window.addEventListener('pointerdown', prime, true);
    window.addEventListener('keydown', prime, true);
    // A ringing tab that goes to the background shows a desktop notification; back in front, the
    // page's own alert is enough and the notification goes away.
    document.addEventListener('visibilitychange', () => this.syncNotification());
    window.addEventListener('focus', () => this.syncNotification());
    window.addEventListener('blur', () => this.syncNotification());
  }

  /** JsSIP is loaded only for users who have a web phone: it is most of the bundle's weight. */
  async start(creds: SipCredentials, displayName: string): Promise<void> {
    this.stop();
    const seq = ++this.startSeq;
    this.status.set({ ...this.status.get(), reg: 'connecting', deviceId: creds.device_id, error: null, reconnects: 0 });
    const JsSIP = await import('jssip');
    // stop() or a newer start() ran while the library was loading.
    if (seq !== this.startSeq) return;
    this.domain = creds.domain;
    // An https page may not open ws://: then the same origin's wss:// /sip, which the server also serves.
    const wsUrl =
      location.protocol === 'https:' ? `wss://${location.host}/sip` : creds.ws_url || `ws://${location.host}/sip`;
    this.status.set({ ...this.status.get(), reg: 'connecting', deviceId: creds.device_id, error: null, reconnects: 0 });
    this.wasRegistered = false;
    let ua: JsSIPTypes.UA;
    try {
      const socket = new JsSIP.WebSocketInterface(wsUrl);
      ua = new JsSIP.UA({
        sockets: [socket],
        uri: `sip:${creds.username}@${creds.domain}`,
        authorization_user: creds.username,
        password: creds.password,
        display_name: displayName,
        register: true,
        register_expires: 120,
        session_timers: false,
        user_agent: 'callto-web',
        connection_recovery_min_interval: 1,
        connection_recovery_max_interval: 10,
      });
    } catch (e) {
      this.status.update({ reg: 'failed', error: e instanceof Error ? e.message : String(e) });
      return;
    }
    this.ua = ua;
    ua.on('connecting', () => {
      const reg = this.status.get().reg;
      // Keep saying "unreachable" while JsSIP retries, rather than flicking back to "connecting".
      if (reg !== 'registered' && reg !== 'unreachable') {
        this.status.update({ reg: this.wasRegistered ? 'reconnecting' : 'connecting' });
      }
    });
    ua.on('disconnected', () => {
      this.status.update({ reg: this.wasRegistered ? 'reconnecting' : 'unreachable', error: null });
    });
    ua.on('registered', () => {
      const s = this.status.get();
      const reconnects = this.wasRegistered && s.reg !== 'registered' ? s.reconnects + 1 : s.reconnects;
      this.wasRegistered = true;
      this.status.update({ reg: 'registered', error: null, reconnects });
    });
    ua.on('unregistered', () => {
      if (this.ua === ua) this.status.update({ reg: this.wasRegistered ? 'reconnecting' : 'unregistered' });
    });
    ua.on('registrationFailed', (e: { cause?: string }) => {
      this.status.update({ reg: 'failed', error: e.cause ?? 'registration failed' });
    });
    ua.on('newRTCSession', (e: { originator: string; session: RTCSession; request?: { getHeader(n: string): string | undefined } }) => {
      if (e.originator === 'remote') this.onIncoming(e.session, e.request?.getHeader('Call-Info') ?? '');
    });
    ua.start();
  }

  stop(): void {
    this.startSeq += 1;
    this.stopAlert();
    for (const s of [this.session, this.second]) {
      if (s && !s.isEnded()) {
        try {
          s.terminate();
        } catch {
          // Already gone.
        }
      }
    }
    this.session = null;
    this.second = null;
    for (const id of [...this.localStreams.keys()]) this.releaseMic(id);
    this.views.clear();
    this.remoteStreams.clear();
    this.other.set(null);
    if (this.ua) {
      const ua = this.ua;
      this.ua = null;
      ua.removeAllListeners();
      ua.stop();
    }
    this.call.set(null);
    this.status.update({ reg: 'off', deviceId: null, error: null });
  }

  /** Test hook: drop the SIP WebSocket as a network blip would; JsSIP reconnects and re-registers. */
  simulateBlip(): void {
    const socket = (this.ua as unknown as { _transport?: { socket?: { _ws?: WebSocket } } })?._transport?.socket?._ws;
    socket?.close();
  }

  /** Asks for the microphone; only ever called when the web phone is about to be used. */
  async getMic(): Promise<MediaStream> {
    if (!navigator.mediaDevices?.getUserMedia) {
      this.status.update({ mic: 'missing' });
      throw new PhoneError('microphone-unsupported');
    }
    const p = prefs.get();
    try {
      let stream: MediaStream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints(p) });
      } catch (e) {
        // The chosen input was unplugged: fall back to the default one rather than fail the call.
        if (p.inputDeviceId && e instanceof DOMException && e.name === 'OverconstrainedError') {
          stream = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints(p, false) });
        } else {
          throw e;
        }
      }
      this.status.update({ mic: 'granted' });
      return stream;
    } catch (e) {
      const name = e instanceof DOMException ? e.name : '';
      if (name === 'NotAllowedError' || name === 'SecurityError') {
        this.status.update({ mic: 'denied' });
        throw new PhoneError('microphone-blocked');
      }
      if (name === 'NotFoundError') {
        this.status.update({ mic: 'missing' });
        throw new PhoneError('microphone-missing');
      }
      throw new PhoneError('microphone-failed', e instanceof Error ? e.message : String(e));
    }
  }

  /** Places a call from the browser. Resolves once the INVITE is on its way. */
  async dial(target: string, name = '', clickId: string | null = null): Promise<void> {
    const number = cleanNumber(target);
    if (!number) throw new PhoneError('invalid-number');
    if (!this.ua || !this.ready) throw new PhoneError('webphone-not-registered');
    if (this.session) throw new PhoneError('webphone-busy');
    const stream = await this.getMic();
    const view: CallView = {
      id: '',
      direction: 'out',
      number,
      name,
      state: 'calling',
      muted: false,
      held: false,
      startedAt: null,
      endedCause: null,
      clickId,
    };
    let session: RTCSession;
    // JsSIP names the session only once call() returns, but the peer connection can come before that.
    let id = '';
    try {
      session = this.ua.call(`sip:${number}@${this.domain}`, {
        mediaStream: stream,
        // The click's id ties this call to the click: its call.* events and history carry it.
        extraHeaders: clickId && /^c2c-[0-9a-f]+$/.test(clickId) ? [`X-Callto-Click: ${clickId}`] : [],
        pcConfig: { iceServers: [], rtcpMuxPolicy: 'require', bundlePolicy: 'balanced' },
        eventHandlers: {
          peerconnection: (e: { peerconnection: RTCPeerConnection }) => this.attachRemoteAudio(id, e.peerconnection),
          icecandidate: capIce(),
          sending: () => {
            this.lastInviteAt = Date.now();
          },
        },
      } as unknown as CallOptions);
    } catch (e) {
      for (const tr of stream.getTracks()) tr.stop();
      throw new PhoneError('call-failed', e instanceof Error ? e.message : String(e));
    }
    id = session.id;
    view.id = session.id;
    this.localStreams.set(session.id, stream);
    this.views.set(session.id, view);
    this.session = session;
    this.publish();
    this.wireSession(session);
    void this.fillName(number, false);
  }

  answer(): Promise<void> {
    return this.answerWith();
  }

  /** Answers the call waiting in the background: the foreground call goes on hold (or, when it is not
   * connected yet, ends) and the answered one comes to the foreground. */
  async answerWaiting(): Promise<void> {
    const waiting = this.second;
    if (!waiting || this.views.get(waiting.id)?.state !== 'ringing') return;
    const current = this.session;
    if (current) {
      const v = this.views.get(current.id);
      if (v?.state === 'established') {
        if (!v.held && current.hold()) this.patch(current, { held: true });
      } else {
        current.terminate();
      }
    }
    this.second = current && !current.isEnded() ? current : null;
    this.session = waiting;
    this.publish();
    await this.answerWith();
  }

  /** Turns down the call waiting in the background; the foreground call goes on undisturbed. */
  rejectWaiting(): void {
    const waiting = this.second;
    if (!waiting || this.views.get(waiting.id)?.state !== 'ringing') return;
    this.stopAlert();
    waiting.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
  }

  /** Swaps the foreground call and the one on hold: the first goes on hold, the other resumes. */
  swap(): void {
    const cur = this.session;
    const held = this.second;
    const cv = cur && this.views.get(cur.id);
    const hv = held && this.views.get(held.id);
    if (!cur || !held || !cv || !hv || cv.state !== 'established' || hv.state !== 'established') return;
    if (!cv.held && cur.hold()) this.patch(cur, { held: true });
    if (hv.held && held.unhold()) this.patch(held, { held: false });
    this.session = held;
    this.second = cur;
    this.publish();
  }

  private async answerWith(): Promise<void> {
    const session = this.session;
    if (!session || session.direction !== 'incoming') return;
    this.stopAlert();
    let stream: MediaStream;
    try {
      stream = await this.getMic();
    } catch (e) {
      // Without a microphone the call cannot be taken here; let it ring on the user's other devices.
      session.terminate({ status_code: 480, reason_phrase: 'Microphone Unavailable' });
      throw e;
    }
    this.localStreams.set(session.id, stream);
    session.on('icecandidate', capIce());
    session.answer({
      mediaStream: stream,
      pcConfig: { iceServers: [], rtcpMuxPolicy: 'require', bundlePolicy: 'balanced' },
    } as unknown as AnswerOptions);
  }

  reject(): void {
    this.stopAlert();
    this.session?.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
  }

  hangup(): void {
    this.session?.terminate();
  }

  toggleMute(): void {
    const s = this.session;
    const v = s && this.views.get(s.id);
    if (!s || !v) return;
    if (v.muted) s.unmute({ audio: true });
    else s.mute({ audio: true });
    this.patch(s, { muted: !v.muted });
  }

  toggleHold(): void {
    const s = this.session;
    const v = s && this.views.get(s.id);
    if (!s || !v || v.state !== 'established') return;
    const ok = v.held ? s.unhold() : s.hold();
    if (ok) this.patch(s, { held: !v.held });
  }

  dtmf(tone: string): void {
    if (!/^[0-9*#A-D]$/.test(tone)) return;
    // In the media (RFC 4733 telephone-event), not SIP INFO: it crosses the B2BUA and rtpengine to any
    // phone or IVR, where INFO would need the switch to translate it.
    this.session?.sendDTMF(tone, { duration: 120, interToneGap: 70, transportType: 'RFC2833' } as never);
  }

  /** Blind transfer: REFER the other party to an extension or number, then our leg ends. */
  transfer(target: string): void {
    const number = cleanNumber(target);
    if (!number || !this.session) throw new PhoneError('invalid-number');
    this.session.refer(`sip:${number}@${this.domain}`);
  }

  /** The remote stream, for the diagnostics page and tests. */
  get peerConnection(): RTCPeerConnection | null {
    return (this.session?.connection as RTCPeerConnection | undefined) ?? null;
  }

  async setOutputDevice(deviceId: string): Promise<void> {
    const el = remoteAudio() as HTMLAudioElement & { setSinkId?: (id: string) => Promise<void> };
    if (el.setSinkId) await el.setSinkId(deviceId);
  }

  /** The user asked, on this page, to move their call here: the switch's INVITE for it (which asks for
   * auto-answer with `Call-Info: ...;answer-after=0`, a header the switch strips from anyone else's
   * INVITE) is answered by itself for a while. */
  expectMove(ms = 25_000): void {
    this.moveUntil = Date.now() + ms;
  }

  private moveUntil = 0;

  private onIncoming(session: RTCSession, callInfo = ''): void {
    const current = this.session && this.views.get(this.session.id);
    // Room for one call in the foreground and one waiting; a third call, or a second one while the
    // first is still ringing here, is busy.
    if (this.second || (current && current.direction === 'in' && current.state === 'ringing')) {
      session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    const waiting = this.session !== null;
    if (waiting) this.second = session;
    else this.session = session;
    const number = session.remote_identity?.uri?.user ?? '';
    const shown = session.remote_identity?.display_name ?? '';
    // Switches often put the number itself in the display name: that is no name.
    const name = shown && shown !== number ? shown : '';
    this.views.set(session.id, {
      id: session.id,
      direction: 'in',
      number,
      name,
      state: 'ringing',
      muted: false,
      held: false,
      startedAt: null,
      endedCause: null,
    });
    this.publish();
    if (session.connection) this.attachRemoteAudio(session.id, session.connection as RTCPeerConnection);
    else session.on('peerconnection', (e) => this.attachRemoteAudio(session.id, e.peerconnection as RTCPeerConnection));
    this.wireSession(session);
    if (!waiting && Date.now() < this.moveUntil && /answer-after=0/i.test(callInfo)) {
      this.moveUntil = 0;
      void this.fillName(number, true);
      void this.answerWith().catch(() => undefined);
      return;
    }
    this.startAlert(name || number, waiting ? 'waiting' : 'ring');
    void this.fillName(number, true);
  }

  /** Shows the foreground and background calls, and plays the foreground call's audio. */
  private publish(): void {
    const fg = this.session ? (this.views.get(this.session.id) ?? null) : null;
    const bg = this.second ? (this.views.get(this.second.id) ?? null) : null;
    // An ended call stays on screen a moment (see wireSession) while nothing else is in front.
    if (fg || !this.call.get() || this.call.get()?.state !== 'ended') this.call.set(fg);
    this.other.set(bg);
    const el = remoteAudio();
    const stream = this.session ? (this.remoteStreams.get(this.session.id) ?? null) : null;
    if (el.srcObject !== stream) {
      el.srcObject = stream;
      if (stream) void el.play().catch(() => undefined);
    }
  }

  private patch(session: RTCSession, p: Partial<CallView>): void {
    const v = this.views.get(session.id);
    if (!v) return;
    const next = { ...v, ...p };
    this.views.set(session.id, next);
    if (session === this.session) this.call.set(next);
    else if (session === this.second) this.other.set(next);
    else if (this.call.get()?.id === session.id) this.call.set(next);
  }

  private wireSession(session: RTCSession): void {
    const patch = (p: Partial<CallView>) => this.patch(session, p);
    // For an incoming call 'progress' is our own 180 Ringing: it keeps ringing, not "early".
    session.on('progress', () => {
      if (session.direction === 'outgoing') patch({ state: 'early' });
    });
    session.on('accepted', () => {
      if (this.alertFor(session)) this.stopAlert();
      patch({ state: 'established', startedAt: Date.now() });
    });
    session.on('confirmed', () => {
      const v = this.views.get(session.id);
      if (v && v.state !== 'established') patch({ state: 'established', startedAt: Date.now() });
    });
    const ended = (e: { cause?: string }) => {
      const wasRinging = this.alertFor(session);
      patch({ state: 'ended', endedCause: e.cause ?? null });
      this.releaseMic(session.id);
      this.remoteStreams.delete(session.id);
      this.views.delete(session.id);
      if (this.second === session) {
        // The waiting call gave up (or was turned down): the foreground call is untouched.
        this.second = null;
        if (wasRinging) this.stopAlert();
        this.publish();
        return;
      }
      if (this.session !== session) return;
      if (wasRinging) this.stopAlert();
      const next = this.second;
      this.session = next;
      this.second = null;
      if (next) {
        // The call in the background comes to the front: still on hold (the user resumes it) or,
        // when it is still ringing, ringing like any incoming call.
        this.call.set(null);
        this.publish();
        const v = this.views.get(next.id);
        if (v?.state === 'ringing') this.startAlert(v.name || v.number, 'ring');
        return;
      }
      this.publish();
      // Keep the ended call on screen briefly so the user sees how it ended.
      window.setTimeout(() => {
        const v = this.call.get();
        if (v && v.id === session.id) this.call.set(null);
      }, 2500);
    };
    session.on('ended', ended);
    session.on('failed', ended);
  }

  /**
   * The caller's name from a call event's `caller_name` (the server's answer, the one callto Link and the
   * screen pop use): it names an incoming call from this number, over a name looked up here.
   */
  nameCaller(number: string, name: string): void {
    if (!number || !name) return;
    this.serverNames.delete(number);
    this.serverNames.set(number, { name, at: Date.now() });
    // Only the last few calls matter: the INVITE and its event arrive together.
    for (const k of this.serverNames.keys()) {
      if (this.serverNames.size <= SERVER_NAMES_KEPT) break;
      this.serverNames.delete(k);
    }
    this.showName(number, name, true);
  }

  private async fillName(number: string, incoming: boolean): Promise<void> {
    if (!number) return;
    const known = incoming ? this.serverNames.get(number) : undefined;
    if (known && Date.now() - known.at < SERVER_NAME_FRESH_MS) {
      this.showName(number, known.name, true); // the event came first: no look-up
      return;
    }
    if (!this.lookupName) return;
    try {
      const name = await this.lookupName(number);
      if (name) this.showName(number, name, false);
    } catch {
      // No card, no name: the number alone is shown.
    }
  }

  /** Names the incoming calls from this number; a looked-up name never replaces one already shown. */
  private showName(number: string, name: string, fromServer: boolean): void {
    for (const s of [this.session, this.second]) {
      const v = s && this.views.get(s.id);
      if (!s || !v || v.number !== number) continue;
      if (fromServer && v.direction !== 'in') continue; // the event names the caller of a call to this user
      if (v.name === name || (v.name && !fromServer)) continue;
      this.patch(s, { name });
      if (this.alertFor(s)) {
        // The alert names the caller now: the title at once, the notification shown again.
        this.alertWho = name;
        if (this.notification) {
          this.notification.close();
          this.notification = null;
          this.syncNotification();
        }
      }
    }
  }

  private attachRemoteAudio(sessionId: string, pc: RTCPeerConnection): void {
    pc.addEventListener('track', (e) => {
      // The session's id may be known only now (an outgoing call's peer connection comes first).
      const id = sessionId || this.session?.id || '';
      this.remoteStreams.set(id, e.streams[0] ?? new MediaStream([e.track]));
      const out = prefs.get().outputDeviceId;
      if (out) void this.setOutputDevice(out).catch(() => undefined);
      // Only the foreground call is heard; the one on hold waits in the background.
      if (!this.session || this.session.id === id) this.publish();
    });
  }

  private releaseMic(sessionId: string): void {
    for (const t of this.localStreams.get(sessionId)?.getTracks() ?? []) t.stop();
    this.localStreams.delete(sessionId);
  }

  /** Whether the alert now playing is this call's (it is ringing, in front or waiting). */
  private alertFor(session: RTCSession): boolean {
    return this.alert.get() !== 'off' && this.views.get(session.id)?.state === 'ringing';
  }

  private ensureAudio(): AudioContext | null {
    try {
      if (!this.audioCtx || this.audioCtx.state === 'closed') this.audioCtx = new AudioContext();
      if (this.audioCtx.state === 'suspended') void this.audioCtx.resume().catch(() => undefined);
      return this.audioCtx;
    } catch {
      return null;
    }
  }

  private startAlert(who: string, kind: 'ring' | 'waiting'): void {
    this.stopAlert();
    this.alertWho = who;
    this.alert.set(kind);
    const ctx = prefs.get().ringtone ? this.ensureAudio() : null;
    const ringOn = prefs.get().ringDeviceId;
    // The ring tone may go to another output than the call (a loudspeaker while calls use a headset).
    const sink = ctx as (AudioContext & { setSinkId?: (id: string) => Promise<void> }) | null;
    if (sink?.setSinkId) void sink.setSinkId(kind === 'ring' && ringOn ? ringOn : prefs.get().outputDeviceId).catch(() => undefined);
    if (ctx) {
      const gain = ctx.createGain();
      gain.gain.value = kind === 'ring' ? 0.15 : 0.1;
      gain.connect(ctx.destination);
      // The cadence is scheduled on the audio clock a minute ahead: timers of a background tab are
      // throttled (to once a minute after a while), the audio clock is not.
      const cycle = kind === 'ring' ? 6 : 4;
      let until = ctx.currentTime;
      const schedule = () => {
        const horizon = ctx.currentTime + 60;
        while (until < horizon) {
          if (kind === 'ring') {
            // Ring tone: 440 + 480 Hz, 2 s on, 4 s off.
            for (const f of [440, 480]) this.tone(ctx, gain, f, until, 2);
          } else {
            // Call waiting: two short 440 Hz beeps every 4 s, quiet enough to talk over.
            this.tone(ctx, gain, 440, until, 0.2);
            this.tone(ctx, gain, 440, until + 0.4, 0.2);
          }
          until += cycle;
        }
      };
      schedule();
      this.ringer = { gain, timer: window.setInterval(schedule, 20_000) };
    }
    this.syncNotification();
    // Users who answer on a desk phone turn the pop-up off: no flashing title either.
    if (!prefs.get().incomingPopup && kind === 'ring') return;
    let on = false;
    const prefix = kind === 'ring' ? '☎' : '☎ +1';
    this.titleTimer = window.setInterval(() => {
      on = !on;
      document.title = on ? `${prefix} ${this.alertWho}` : this.savedTitle;
    }, 800);
  }

  private tone(ctx: AudioContext, gain: GainNode, frequency: number, at: number, seconds: number): void {
    const o = ctx.createOscillator();
    o.frequency.value = frequency;
    o.connect(gain);
    o.start(at);
    o.stop(at + seconds);
  }

  /** A desktop notification while a call rings and the page is not in front (hidden or not focused). */
  private syncNotification(): void {
    const kind = this.alert.get();
    const away = document.visibilityState === 'hidden' || !document.hasFocus();
    if (kind === 'off' || !away) {
      this.notification?.close();
      this.notification = null;
      return;
    }
    if (this.notification || !('Notification' in window) || Notification.permission !== 'granted') return;
    if (kind === 'ring' && !prefs.get().incomingPopup) return;
    try {
      const title = t(kind === 'ring' ? 'phone.notifyIncoming' : 'phone.notifyWaiting');
      const n = new Notification(title, { body: this.alertWho, tag: 'callto-incoming', requireInteraction: true });
      n.onclick = () => {
        window.focus();
        n.close();
      };
      this.notification = n;
    } catch {
      this.notification = null;
    }
  }

  private stopAlert(): void {
    if (this.ringer) {
      window.clearInterval(this.ringer.timer);
      // Disconnecting the gain silences every tone already scheduled.
      this.ringer.gain.disconnect();
      this.ringer = null;
    }
    this.alert.set('off');
    this.notification?.close();
    this.notification = null;
    if (this.titleTimer !== null) window.clearInterval(this.titleTimer);
    this.titleTimer = null;
    document.title = this.savedTitle;
  }
}

/**
 * Ends ICE gathering on the first host candidate, or 150 ms after the first candidate of any kind:
 * with no STUN/TURN servers nothing better will come, and JsSIP would otherwise wait for gathering to
 * complete (seconds on some networks) before sending the INVITE.
 */
function capIce(): (e: { candidate: RTCIceCandidate; ready: () => void }) => void {
  let timer: number | null = null;
  let done = false;
  return (e) => {
    if (done) return;
    const finish = () => {
      if (done) return;
      done = true;
      if (timer !== null) window.clearTimeout(timer);
      e.ready();
    };
    const c = e.candidate;
    if (c && (c.type === 'host' || / typ host/.test(c.candidate))) {
      finish();
      return;
    }
    if (timer === null) timer = window.setTimeout(finish, ICE_CAP_MS);
  };
}

function remoteAudio(): HTMLAudioElement {
  let el = document.getElementById('remote-audio') as HTMLAudioElement | null;
  if (!el) {
    el = document.createElement('audio');
    el.id = 'remote-audio';
    el.autoplay = true;
    document.body.appendChild(el);
  }
  return el;
}

export const phone = new WebPhone();
