// What the popup, the content script and the service worker say to each other, and the stored state.

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
  return chrome.i18n.getMessage(key, subs) || key;
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
  return chrome.runtime.sendMessage(message) as Promise<Reply<T>>;
}
