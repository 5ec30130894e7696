// The built-in web phone: JsSIP over WebSocket to the switch's /sip, registering with the user's
// webphone device credentials; places, receives and controls one call at a time in the browser.
import type * as JsSIPTypes from 'jssip';
import type { AnswerOptions, RTCSession } from 'jssip/lib/RTCSession';
import type { CallOptions } from 'jssip/lib/UA';
import type { SipCredentials } from './api';
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

function cleanNumber(target: string): string {
  // Only dialable characters reach the SIP URI; the server already normalized the number.
  return target.replace(/^(tel:|callto:|sip:)\/*/i, '').replace(/@.*$/, '').replace(/[^0-9+*#]/g, '');
}

export class WebPhone {
  readonly status = new Store<PhoneStatus>({ reg: 'off', deviceId: null, error: null, reconnects: 0, mic: 'unknown' });
  readonly call = new Store<CallView | null>(null);
  private ua: JsSIPTypes.UA | null = null;
  private startSeq = 0;
  private session: RTCSession | null = null;
  private domain = '';
  private localStream: MediaStream | null = null;
  private wasRegistered = false;
  private ringer: { ctx: AudioContext; timer: number } | null = null;
  private notification: Notification | null = null;
  private titleTimer: number | null = null;
  private readonly savedTitle = document.title;
  /** When the last INVITE left this tab (Date.now()): click-to-INVITE latency is measured from it. */
  lastInviteAt = 0;
  /** Called when a call starts, to look up the other party's name (customer card). */
  lookupName: ((number: string) => Promise<string | null>) | null = null;

  get ready(): boolean {
    return this.status.get().reg === 'registered';
  }

  get busy(): boolean {
    return this.session !== null;
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
    ua.on('newRTCSession', (e: { originator: string; session: RTCSession }) => {
      if (e.originator === 'remote') this.onIncoming(e.session);
    });
    ua.start();
  }

  stop(): void {
    this.startSeq += 1;
    this.stopAlert();
    if (this.session && !this.session.isEnded()) {
      try {
        this.session.terminate();
      } catch {
        // Already gone.
      }
    }
    this.session = null;
    this.releaseMic();
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
  async dial(target: string, name = ''): Promise<void> {
    const number = cleanNumber(target);
    if (!number) throw new PhoneError('invalid-number');
    if (!this.ua || !this.ready) throw new PhoneError('webphone-not-registered');
    if (this.session) throw new PhoneError('webphone-busy');
    const stream = await this.getMic();
    this.localStream = stream;
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
    };
    let session: RTCSession;
    try {
      session = this.ua.call(`sip:${number}@${this.domain}`, {
        mediaStream: stream,
        pcConfig: { iceServers: [], rtcpMuxPolicy: 'require', bundlePolicy: 'balanced' },
        eventHandlers: {
          peerconnection: (e: { peerconnection: RTCPeerConnection }) => this.attachRemoteAudio(e.peerconnection),
          icecandidate: capIce(),
          sending: () => {
            this.lastInviteAt = Date.now();
          },
        },
      } as unknown as CallOptions);
    } catch (e) {
      this.releaseMic();
      throw new PhoneError('call-failed', e instanceof Error ? e.message : String(e));
    }
    view.id = session.id;
    this.session = session;
    this.call.set(view);
    this.wireSession(session);
    void this.fillName(number);
  }

  answer(): Promise<void> {
    return this.answerWith();
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
    this.localStream = stream;
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
    const v = this.call.get();
    if (!s || !v) return;
    if (v.muted) s.unmute({ audio: true });
    else s.mute({ audio: true });
    this.call.set({ ...v, muted: !v.muted });
  }

  toggleHold(): void {
    const s = this.session;
    const v = this.call.get();
    if (!s || !v || v.state !== 'established') return;
    const ok = v.held ? s.unhold() : s.hold();
    if (ok) this.call.set({ ...v, held: !v.held });
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

  private onIncoming(session: RTCSession): void {
    if (this.session) {
      session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    this.session = session;
    const number = session.remote_identity?.uri?.user ?? '';
    const shown = session.remote_identity?.display_name ?? '';
    // Switches often put the number itself in the display name: that is no name.
    const name = shown && shown !== number ? shown : '';
    this.call.set({
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
    if (session.connection) this.attachRemoteAudio(session.connection as RTCPeerConnection);
    else session.on('peerconnection', (e) => this.attachRemoteAudio(e.peerconnection as RTCPeerConnection));
    this.wireSession(session);
    this.startAlert(name || number);
    void this.fillName(number);
  }

  private wireSession(session: RTCSession): void {
    const patch = (p: Partial<CallView>) => {
      const v = this.call.get();
      if (v && v.id === session.id) this.call.set({ ...v, ...p });
    };
    // For an incoming call 'progress' is our own 180 Ringing: it keeps ringing, not "early".
    session.on('progress', () => {
      if (session.direction === 'outgoing') patch({ state: 'early' });
    });
    session.on('accepted', () => {
      this.stopAlert();
      patch({ state: 'established', startedAt: Date.now() });
    });
    session.on('confirmed', () => {
      const v = this.call.get();
      if (v && v.state !== 'established') patch({ state: 'established', startedAt: Date.now() });
    });
    const ended = (e: { cause?: string }) => {
      this.stopAlert();
      patch({ state: 'ended', endedCause: e.cause ?? null });
      if (this.session === session) this.session = null;
      this.releaseMic();
      // Keep the ended call on screen briefly so the user sees how it ended.
      window.setTimeout(() => {
        const v = this.call.get();
        if (v && v.id === session.id) this.call.set(null);
      }, 2500);
    };
    session.on('ended', ended);
    session.on('failed', ended);
  }

  private async fillName(number: string): Promise<void> {
    if (!this.lookupName || !number) return;
    try {
      const name = await this.lookupName(number);
      const v = this.call.get();
      if (name && v && v.number === number && !v.name) this.call.set({ ...v, name });
    } catch {
      // No card, no name: the number alone is shown.
    }
  }

  private attachRemoteAudio(pc: RTCPeerConnection): void {
    pc.addEventListener('track', (e) => {
      const el = remoteAudio();
      el.srcObject = e.streams[0] ?? new MediaStream([e.track]);
      const out = prefs.get().outputDeviceId;
      if (out) void this.setOutputDevice(out).catch(() => undefined);
      void el.play().catch(() => undefined);
    });
  }

  private releaseMic(): void {
    for (const t of this.localStream?.getTracks() ?? []) t.stop();
    this.localStream = null;
  }

  private startAlert(who: string): void {
    this.stopAlert();
    if (prefs.get().ringtone) {
      try {
        const ctx = new AudioContext();
        const ring = () => {
          // North-American style ring (440 + 480 Hz), 2 s on, 4 s off.
          const gain = ctx.createGain();
          gain.gain.value = 0.15;
          gain.connect(ctx.destination);
          for (const f of [440, 480]) {
            const o = ctx.createOscillator();
            o.frequency.value = f;
            o.connect(gain);
            o.start();
            o.stop(ctx.currentTime + 2);
          }
        };
        ring();
        this.ringer = { ctx, timer: window.setInterval(ring, 6000) };
      } catch {
        // No audio output: the visible alert and the notification remain.
      }
    }
    if ('Notification' in window && Notification.permission === 'granted') {
      try {
        this.notification = new Notification('callto', { body: who, tag: 'callto-incoming', requireInteraction: true });
        this.notification.onclick = () => window.focus();
      } catch {
        this.notification = null;
      }
    }
    let on = false;
    this.titleTimer = window.setInterval(() => {
      on = !on;
      document.title = on ? `☎ ${who}` : this.savedTitle;
    }, 800);
  }

  private stopAlert(): void {
    if (this.ringer) {
      window.clearInterval(this.ringer.timer);
      void this.ringer.ctx.close().catch(() => undefined);
      this.ringer = null;
    }
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
