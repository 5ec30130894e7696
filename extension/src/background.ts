// The background script (Chromium's service worker, Firefox's event page: the same file): the only part
// that talks to the callto server (with the session token kept in the extension's local storage), and
// the "Call <selection> with callto" context menu.
import { ext, msg, type Reply, type Stored } from './shared';

const MENU_ID = 'callto-call';

async function stored(): Promise<Stored> {
  return (await ext.storage.local.get(null)) as Stored;
}

class ApiFailure extends Error {
  constructor(readonly error: string, message: string) {
    super(message);
  }
}

async function api<T>(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<T> {
  const s = await stored();
  if (!s.server) throw new ApiFailure('signed-out', msg('signInFirst'));
  const headers: Record<string, string> = { Accept: 'application/json', ...extra };
  if (s.token) headers.Authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r: Response;
  try {
    r = await fetch(`${s.server}/api/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit',
    });
  } catch {
    throw new ApiFailure('network', msg('errorNetwork'));
  }
  const text = await r.text();
  let doc: Record<string, unknown> | null = null;
  try {
    doc = text ? (JSON.parse(text) as Record<string, unknown>) : null;
  } catch {
    doc = null;
  }
  if (r.status === 401 && !path.startsWith('/auth/login')) {
    await ext.storage.local.remove(['token', 'expiresAt']);
    throw new ApiFailure('signed-out', msg('signInFirst'));
  }
  if (!r.ok) throw new ApiFailure(String(doc?.error ?? 'error'), String(doc?.message ?? r.statusText));
  return doc as T;
}

function key(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

type Handler = (m: Record<string, unknown>) => Promise<unknown>;

const handlers: Record<string, Handler> = {
  async config() {
    const s = await stored();
    const live = !!s.token && (!s.expiresAt || new Date(s.expiresAt).getTime() > Date.now());
    return { signedIn: live, country: s.country ?? 'IT', excluded: s.excluded ?? [], username: s.username,
      displayName: s.displayName, server: s.server };
  },
  async login(m) {
    const server = String(m.server ?? '').trim().replace(/\/+$/, '');
    await ext.storage.local.set({ server });
    const body: Record<string, string> = { username: String(m.username ?? ''), password: String(m.password ?? '') };
    if (m.otp) body.otp = String(m.otp);
    const res = await api<{ token: string; expires_at: string; user: { username: string; display_name: string } }>(
      'POST', '/auth/login', body);
    await ext.storage.local.set({ token: res.token, expiresAt: res.expires_at, username: res.user.username,
      displayName: res.user.display_name });
    try {
      const plan = await api<{ country: string }>('GET', '/integrations/dialplan');
      await ext.storage.local.set({ country: plan.country });
    } catch {
      await ext.storage.local.set({ country: 'IT' }); // an older server: the product's default
    }
    return handlers.config(m);
  },
  async logout() {
    try {
      await api('POST', '/auth/logout');
    } catch {
      // signed out here whatever the server says
    }
    await ext.storage.local.remove(['token', 'expiresAt', 'username', 'displayName']);
    return {};
  },
  me: () => api('GET', '/me'),
  setMain: (m) => api('PUT', '/me/main-device', { device_id: Number(m.device_id) }),
  async setExcluded(m) {
    const excluded = (m.excluded as string[]).map((x) => x.trim().toLowerCase()).filter(Boolean);
    await ext.storage.local.set({ excluded });
    return { excluded };
  },
  call: (m) => api('POST', '/calls', { to: String(m.to ?? '') }, { 'Idempotency-Key': key() }),
  callStatus: (m) => api('GET', `/calls/${encodeURIComponent(String(m.id))}`),
  hangup: (m) => api('DELETE', `/calls/${encodeURIComponent(String(m.id))}`),
};

ext.runtime.onMessage.addListener((m: Record<string, unknown>, _sender, reply: (r: Reply<unknown>) => void) => {
  const handler = handlers[String(m.type)];
  if (!handler) return false;
  handler(m).then(
    (data) => reply({ ok: true, data }),
    (e: unknown) => reply({ ok: false, error: e instanceof ApiFailure ? e.error : 'error',
      message: e instanceof Error ? e.message : String(e) }),
  );
  return true; // the answer comes later
});

async function menus(): Promise<void> {
  await ext.contextMenus.removeAll();
  // %s: the browser puts the selected text in the title
  ext.contextMenus.create({ id: MENU_ID, title: msg('menuCall'), contexts: ['selection'] });
}
ext.runtime.onInstalled.addListener(() => void menus());
ext.runtime.onStartup.addListener(() => void menus());

/** The menu's click: the tab's content script places the call, so its notice shows the progress as for
 * a click on a number. */
export function onMenuClicked(info: chrome.contextMenus.OnClickData, tab?: chrome.tabs.Tab): Promise<unknown> {
  if (info.menuItemId !== MENU_ID || !info.selectionText || tab?.id === undefined) return Promise.resolve(null);
  return ext.tabs.sendMessage(tab.id, { type: 'callSelection', text: info.selectionText });
}
ext.contextMenus.onClicked.addListener((info, tab) => {
  onMenuClicked(info, tab).catch(() => undefined); // a tab without the content script (the browser's own pages)
});
// The browser's own menu cannot be opened where nothing is drawn (headless tests): they call this.
(globalThis as { calltoMenuClicked?: typeof onMenuClicked }).calltoMenuClicked = onMenuClicked;
