// The event stream: one WebSocket to /api/v1/events per tab, reconnecting with backoff after blips,
// declaring the tab's web phone (`hello`) so the server can push `dial` commands to exactly one tab.
import { Store } from './store';

export interface ServerEvent {
  type: string;
  at?: string;
  data: Record<string, unknown>;
}

// 'waiting': the server is up but cannot reach its database (close 1013); it is retried like a lost link.
export type StreamState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'waiting';

export interface StreamStatus {
  state: StreamState;
  sessionId: string | null;
  /** How many times the stream came back after losing the connection: shown on screen. */
  reconnects: number;
  lastError: string | null;
}

type Listener = (ev: ServerEvent) => void;

export class EventStream {
  readonly status = new Store<StreamStatus>({ state: 'idle', sessionId: null, reconnects: 0, lastError: null });
  private ws: WebSocket | null = null;
  private token: string | null = null;
  private helloDeviceId: number | string | null = null;
  private readonly listeners = new Map<string, Set<Listener>>();
  private retryTimer: number | null = null;
  private attempt = 0;
  private everOpened = false;
  private stopped = true;
  private authFailed: (() => void) | null = null;

  start(token: string, onAuthFailed: () => void): void {
    this.stop();
    this.token = token;
    this.authFailed = onAuthFailed;
    this.stopped = false;
    this.everOpened = false;
    this.attempt = 0;
    this.status.set({ state: 'connecting', sessionId: null, reconnects: 0, lastError: null });
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer !== null) window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
    this.ws = null;
    this.status.set({ state: 'idle', sessionId: null, reconnects: 0, lastError: null });
  }

  /** Declares this tab's web phone; re-sent after every reconnect. */
  hello(deviceId: number | string | null): void {
    this.helloDeviceId = deviceId;
    if (deviceId !== null) this.send({ type: 'hello', data: { device_id: deviceId } });
  }

  send(msg: Record<string, unknown>): boolean {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  on(type: string, l: Listener): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(l);
    return () => set.delete(l);
  }

  /** Test hook: drop the socket as a network blip would, without stopping the stream. */
  simulateBlip(): void {
    this.ws?.close(4000, 'blip');
  }

  private url(): string {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/api/v1/events?token=${encodeURIComponent(this.token ?? '')}`;
  }

  private connect(): void {
    if (this.stopped) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this.scheduleRetry(String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const reconnects = this.everOpened ? this.status.get().reconnects + 1 : 0;
      this.everOpened = true;
      this.attempt = 0;
      this.status.set({ state: 'open', sessionId: null, reconnects, lastError: null });
      if (this.helloDeviceId !== null) this.send({ type: 'hello', data: { device_id: this.helloDeviceId } });
    };
    ws.onmessage = (m) => {
      let ev: ServerEvent;
      try {
        ev = JSON.parse(String(m.data)) as ServerEvent;
      } catch {
        return;
      }
      if (!ev || typeof ev.type !== 'string') return;
      ev.data = ev.data ?? {};
      if (ev.type === 'session.ready') {
        this.status.update({ sessionId: String(ev.data.session_id ?? '') });
      } else if (ev.type === 'ping') {
        this.send({ type: 'pong' });
      }
      for (const type of [ev.type, '*']) {
        for (const l of this.listeners.get(type) ?? []) {
          try {
            l(ev);
          } catch (e) {
            console.error('event listener failed', ev.type, e);
          }
        }
      }
    };
    ws.onclose = (c) => {
      this.ws = null;
      // 4401/1008: the server refused our token; retrying would only be refused again.
      if (c.code === 4401 || c.code === 4403 || c.code === 1008) {
        this.stopped = true;
        this.status.set({ state: 'idle', sessionId: null, reconnects: 0, lastError: c.reason || 'unauthorized' });
        this.authFailed?.();
        return;
      }
      // 1013: the server cannot reach its database; the token is fine, so keep it and try again.
      this.scheduleRetry(c.reason || `closed (${c.code})`, c.code === 1013 ? 'waiting' : undefined);
    };
  }

  private scheduleRetry(reason: string, state?: StreamState): void {
    if (this.stopped) return;
    this.attempt += 1;
    // Quick first retry so a short blip heals at once, then back off to at most 10 s.
    const delay = Math.min(10000, 250 * 2 ** Math.min(this.attempt - 1, 6));
    this.status.update({ state: state ?? (this.everOpened ? 'reconnecting' : 'connecting'), lastError: reason });
    this.retryTimer = window.setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }
}

export const events = new EventStream();
