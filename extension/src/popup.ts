// The popup: sign in (server, username, password, second factor), then the main device and the
// excluded sites.
import { ext, failureText, msg, send } from './shared';

interface Device { id: number; kind: string; label: string }
interface Me { id: number; username: string; display_name: string; main_device_id: number | null; devices: Device[] }
interface Config { signedIn: boolean; excluded: string[]; username?: string; displayName?: string; server?: string }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function error(text: string | null): void {
  const el = $('error');
  el.textContent = text ?? '';
  el.hidden = !text;
}

async function showAccount(cfg: Config): Promise<void> {
  $('signin').hidden = true;
  $('account').hidden = false;
  $('who').textContent = msg('signedInAs', [cfg.displayName || cfg.username || '']);
  ($('excluded') as HTMLTextAreaElement).value = cfg.excluded.join('\n');
  const me = await send<Me>({ type: 'me' });
  if (!me.ok) {
    error(failureText(me));
    return;
  }
  const select = $('device') as HTMLSelectElement;
  select.replaceChildren();
  for (const d of me.data.devices) {
    const kind = { webphone: 'deviceWebphone', link: 'deviceLink', deskphone: 'deviceDeskphone' }[d.kind];
    const kindName = kind ? msg(kind) : d.kind;
    const o = new Option(d.label === kindName ? d.label : `${d.label} (${kindName})`, String(d.id));
    o.selected = d.id === me.data.main_device_id;
    select.append(o);
  }
}

function showSignIn(cfg: Config | null): void {
  $('account').hidden = true;
  $('signin').hidden = false;
  const form = $('signin') as HTMLFormElement;
  if (cfg?.server) (form.elements.namedItem('server') as HTMLInputElement).value = cfg.server;
}

async function init(): Promise<void> {
  document.querySelectorAll<HTMLElement>('[data-i18n]').forEach((el) => { el.textContent = msg(el.dataset.i18n!); });
  document.documentElement.lang = ext.i18n.getUILanguage().slice(0, 2);
  $('signin').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error(null);
    const f = ev.target as HTMLFormElement;
    const value = (n: string) => (f.elements.namedItem(n) as HTMLInputElement).value;
    const r = await send<Config>({ type: 'login', server: value('server'), username: value('username'),
      password: value('password'), otp: value('otp') });
    if (!r.ok) {
      error(failureText(r));
      return;
    }
    (f.elements.namedItem('password') as HTMLInputElement).value = '';
    await showAccount(r.data);
  });
  $('device').addEventListener('change', async () => {
    const r = await send({ type: 'setMain', device_id: ($('device') as HTMLSelectElement).value });
    error(r.ok ? null : failureText(r));
  });
  $('save').addEventListener('click', async () => {
    const lines = ($('excluded') as HTMLTextAreaElement).value.split('\n');
    const r = await send({ type: 'setExcluded', excluded: lines });
    $('saved').hidden = !r.ok;
  });
  $('exclude-this').addEventListener('click', async () => {
    const [tab] = await ext.tabs.query({ active: true, currentWindow: true });
    if (!tab?.url) return;
    const area = $('excluded') as HTMLTextAreaElement;
    area.value = [...area.value.split('\n').filter(Boolean), new URL(tab.url).hostname].join('\n');
  });
  $('signout').addEventListener('click', async () => {
    await send({ type: 'logout' });
    showSignIn(null);
  });
  const cfg = await send<Config>({ type: 'config' });
  if (cfg.ok && cfg.data.signedIn) await showAccount(cfg.data);
  else showSignIn(cfg.ok ? cfg.data : null);
}

void init();
