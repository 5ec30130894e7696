// What the popup, the content script and the background script say to each other, the stored state,
// and the WebExtension API object all three use (the same code runs in Chromium and in Firefox).

/** Firefox's `browser` (promise-based) when there is one, else Chromium's `chrome` (promise-based in
 * Manifest V3 as well): the calls made here have the same shape in both. */
export const ext: typeof chrome = (globalThis as { browser?: typeof chrome }).browser ?? chrome;

export interface Stored {
  server?: string;
  token?: string;
  expiresAt?: string;
  username?: string;
  displayName?: string;
  country?: string;
  excluded?: string[];
}

export interface CallInfo {
  call_id: string;
  state: string;
  reason?: string;
  to?: string;
  number?: { display?: string; dialed?: string };
}

export type Reply<T> = { ok: true; data: T } | { ok: false; error: string; message: string };

export function msg(key: string, subs: string[] = []): string {
  return ext.i18n.getMessage(key, subs) || key;
}

/** The message key for each refusal id the extension knows; the server's English `message` is only the
 * fallback for ids not listed here (the server speaks stable ids, the clients put them into words). */
const FAILURE_KEYS: Record<string, string> = {
  'signed-out': 'signInFirst',
  network: 'errorNetwork',
  'invalid-credentials': 'err_invalid_credentials',
  'otp-required': 'err_otp_required',
  'invalid-otp': 'err_invalid_otp',
  'too-many-attempts': 'err_too_many_attempts',
  'too-many-requests': 'err_too_many_requests',
  'invalid-token': 'err_invalid_token',
  'device-offline': 'err_device_offline',
  'no-main-device': 'err_no_main_device',
  'number-not-permitted': 'err_number_not_permitted',
  'device-not-owned': 'err_device_not_owned',
  'invalid-number': 'err_invalid_number',
  'idempotency-in-progress': 'err_idempotency_in_progress',
  'calls-unavailable': 'err_calls_unavailable',
  'storage-unavailable': 'err_storage_unavailable',
};

/** A failed Reply in the browser's language, from its `error` id. */
export function failureText(r: { error: string; message: string }): string {
  const key = FAILURE_KEYS[r.error];
  return (key && ext.i18n.getMessage(key)) || r.message;
}

/** Whether pages of `host` are excluded: the host itself or any of its subdomains. */
export function isExcluded(host: string, excluded: string[] | undefined): boolean {
  const h = host.toLowerCase();
  return (excluded ?? []).some((e) => {
    const x = e.trim().toLowerCase();
    return x !== '' && (h === x || h.endsWith(`.${x}`));
  });
}

export function send<T>(message: Record<string, unknown>): Promise<Reply<T>> {
  return ext.runtime.sendMessage(message) as Promise<Reply<T>>;
}
