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
