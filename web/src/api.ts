// REST client for the callto server: bearer token handling, the JSON error shape, session expiry.
// Every call goes through `api()` so a 401 anywhere sends the user back to the login screen once.
import { lang } from './i18n';

import type { components } from './api-schema';

/**
 * The server's request and answer bodies, generated from its OpenAPI document (web/openapi.json, what
 * /api/v1/openapi.json serves) by openapi-typescript on every build: a server change that breaks a page
 * fails the type check. `Schema<'AdminUserOut'>` is one of them.
 */
export type Schemas = components['schemas'];
export type Schema<K extends keyof Schemas> = Schemas[K];

export type Device = Schema<'DeviceOut'>;

/** The signed-in user: `GET /me` (with the profile's preferences) or the login answer's user (without). */
export type Me = Schema<'UserOut'> & { preferences?: Schema<'PreferencesOut'> };

export type LoginResult = Schema<'LoginOut'>;

export type SipCredentials = Schema<'DeviceSipOut'>;

/** A failed request, carrying the server's stable error id and human message. */
export class ApiError extends Error {
  readonly status: number;
  readonly error: string;
  readonly details: Record<string, unknown>;

  constructor(status: number, error: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.status = status;
    this.error = error;
    this.details = details;
  }

  /** The endpoint does not exist (yet) on this server, or the feature behind it is switched off. */
  get unavailable(): boolean {
    return this.missingEndpoint || this.status === 503;
  }

  /** No such route on this server (an older server, or a feature not built in). */
  get missingEndpoint(): boolean {
    return this.status === 404 || this.status === 405 || this.status === 501;
  }
}

const TOKEN_KEY = 'callto.token';
const EXPIRES_KEY = 'callto.expires_at';

let expiryHandler: ((reason: 'expired' | 'invalid') => void) | null = null;

export function onSessionExpired(handler: (reason: 'expired' | 'invalid') => void): void {
  expiryHandler = handler;
}

export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function getExpiry(): Date | null {
  const v = localStorage.getItem(EXPIRES_KEY);
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function setSession(token: string, expiresAt: string): void {
  localStorage.setItem(TOKEN_KEY, token);
  localStorage.setItem(EXPIRES_KEY, expiresAt);
}

export function clearSession(): void {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(EXPIRES_KEY);
}

export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

interface RequestOptions {
  idempotencyKey?: string;
  /** false for the login request: its 401 is a wrong password, not an expired session. */
  expireOn401?: boolean;
  /** A file sent as it is (contact import) instead of a JSON body. */
  raw?: Blob;
}

export async function api<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  // What the server words itself follows the screen's language, not the browser's.
  const headers: Record<string, string> = { Accept: 'application/json', 'Accept-Language': lang.get() };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.raw) headers['Content-Type'] = opts.raw.type || 'application/octet-stream';
  else if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.idempotencyKey) headers['Idempotency-Key'] = opts.idempotencyKey;
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: opts.raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
  } catch (e) {
    throw new ApiError(0, 'network', e instanceof Error ? e.message : String(e));
  }
  if (!res.ok) throw await failure(res, token, opts);
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  return data as T;
}

/** Turns a failed response into an ApiError (and ends the session on a 401 with a token). */
async function failure(res: Response, token: string | null, opts: RequestOptions): Promise<ApiError> {
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  const obj = (data && typeof data === 'object' ? data : {}) as Record<string, unknown>;
  // FastAPI's own 404/405 carry {"detail": ...} instead of our error shape.
  const error = typeof obj.error === 'string' ? obj.error : `http-${res.status}`;
  const message =
    typeof obj.message === 'string' ? obj.message : typeof obj.detail === 'string' ? obj.detail : res.statusText;
  const details = (obj.details && typeof obj.details === 'object' ? obj.details : {}) as Record<string, unknown>;
  const err = new ApiError(res.status, error, message, details);
  if (res.status === 401 && token && opts.expireOn401 !== false) {
    clearSession();
    expiryHandler?.(details.reason === 'expired' ? 'expired' : 'invalid');
  }
  return err;
}

/**
 * Saves what an API path answers (CSV, vCard) as a file. A plain link cannot do it: the request needs
 * the bearer token, so the answer is fetched and handed to the browser as a download.
 */
export async function download(path: string, fallbackName: string): Promise<void> {
  const token = getToken();
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  } catch (e) {
    throw new ApiError(0, 'network', e instanceof Error ? e.message : String(e));
  }
  if (!res.ok) throw await failure(res, token, {});
  const blob = await res.blob();
  const m = /filename="?([^";]+)"?/.exec(res.headers.get('Content-Disposition') ?? '');
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = m ? m[1] : fallbackName;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** Lists come back either as a bare array or wrapped (`{items: [...], next_cursor}`): accept both. */
export function asItems<T>(data: unknown): { items: T[]; next: string | null } {
  if (Array.isArray(data)) return { items: data as T[], next: null };
  if (data && typeof data === 'object') {
    const o = data as Record<string, unknown>;
    for (const k of ['items', 'results', 'contacts', 'entries', 'users', 'calls', 'trunks', 'devices', 'data']) {
      if (Array.isArray(o[k])) {
        const next = (o.next_cursor ?? o.cursor ?? o.next ?? null) as string | null;
        return { items: o[k] as T[], next: typeof next === 'string' ? next : null };
      }
    }
  }
  return { items: [], next: null };
}
