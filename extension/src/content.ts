// The content script: phone numbers in the page's text (found by libphonenumber-js for the dial plan's
// country) and tel:/callto:/sip: links become click-to-call, without changing the page's layout (an
// inline span that only adds a dotted underline and a pointer); a click shows the call's progress in a
// small notice in its own shadow root.
import { findPhoneNumbersInText, type CountryCode } from 'libphonenumber-js';
import { ext, failureText, isExcluded, msg, send, type CallInfo } from './shared';

const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEXTAREA', 'INPUT', 'SELECT', 'OPTION', 'A', 'BUTTON',
  'CODE', 'PRE', 'SVG', 'TEMPLATE', 'IFRAME', 'HEAD', 'TITLE']);
const CLASS = 'callto-number';
const LINKS = 'a[href^="tel:" i], a[href^="callto:" i], a[href^="sip:" i]';
const DIGITS = /\d[\d\s().\/-]{5,}\d/;

interface Config {
  signedIn: boolean;
  country: string;
  excluded: string[];
}

let country: CountryCode = 'IT';
let observer: MutationObserver | null = null;

function skipped(node: Node): boolean {
  for (let el = node.parentElement; el; el = el.parentElement) {
    if (SKIP.has(el.tagName) || el.classList.contains(CLASS) || el.isContentEditable || el.id === 'callto-notice') {
      return true;
    }
  }
  return false;
}

function wrap(node: Text): void {
  const text = node.data;
  if (!DIGITS.test(text)) return;
  const found = findPhoneNumbersInText(text, { defaultCountry: country });
  if (found.length === 0) return;
  const parent = node.parentNode;
  if (!parent) return;
  const frag = document.createDocumentFragment();
  let at = 0;
  for (const f of found) {
    if (f.startsAt < at) continue;
    frag.append(text.slice(at, f.startsAt));
    const span = document.createElement('span');
    span.className = CLASS;
    span.textContent = text.slice(f.startsAt, f.endsAt);
    span.dataset.callto = f.number.number;
    span.title = msg('clickToCall', [span.textContent]);
    span.setAttribute('role', 'link');
    span.tabIndex = 0;
    frag.append(span);
    at = f.endsAt;
  }
  frag.append(text.slice(at));
  parent.replaceChild(frag, node);
}

function scan(root: Node): void {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes: Text[] = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!skipped(n)) nodes.push(n as Text);
  }
  observer?.disconnect(); // our own changes are not news
  for (const n of nodes) wrap(n);
  observer?.observe(document.body, { childList: true, subtree: true, characterData: true });
}

// --- the notice ------------------------------------------------------------------------------------------
let notice: { host: HTMLElement; text: HTMLElement; hangup: HTMLButtonElement } | null = null;
let following: number | null = null;
let currentCall: string | null = null;

function ensureNotice(): NonNullable<typeof notice> {
  if (notice) return notice;
  const host = document.createElement('div');
  host.id = 'callto-notice';
  host.style.cssText = 'all: initial; position: fixed; right: 16px; bottom: 16px; z-index: 2147483647;';
  const root = host.attachShadow({ mode: 'open' });
  root.innerHTML = `<style>
    .box { font: 13px system-ui, sans-serif; background: #1f2328; color: #fff; padding: 10px 14px; border-radius: 8px;
      box-shadow: 0 2px 10px #0005; display: flex; gap: 10px; align-items: center; max-width: 320px; }
    button { font: inherit; border: 0; border-radius: 6px; padding: 4px 10px; cursor: pointer; }
    .hangup { background: #c62828; color: #fff; } .close { background: transparent; color: #ccc; }
  </style><div class="box" role="status" aria-live="polite"><span class="text"></span>
  <button class="hangup"></button><button class="close"></button></div>`;
  const text = root.querySelector('.text') as HTMLElement;
  const hangup = root.querySelector('.hangup') as HTMLButtonElement;
  const close = root.querySelector('.close') as HTMLButtonElement;
  hangup.textContent = msg('hangUp');
  close.textContent = '×';
  close.title = msg('close');
  hangup.addEventListener('click', () => {
    if (currentCall) void send({ type: 'hangup', id: currentCall });
  });
  close.addEventListener('click', hide);
  document.documentElement.append(host);
  notice = { host, text, hangup };
  return notice;
}

function hide(): void {
  notice?.host.remove();
  notice = null;
  if (following !== null) window.clearInterval(following);
  following = null;
}

function show(state: string, line: string, live: boolean): void {
  const n = ensureNotice();
  n.text.textContent = line;
  n.host.dataset.state = state;
  n.hangup.hidden = !live;
}

function showCall(c: CallInfo): boolean {
  const state = c.state;
  if (state === 'failed' || (state === 'ended' && c.reason && c.reason !== 'hung up by the user' && c.reason !== 'ended')) {
    show(state, state === 'failed' ? msg('stateFailed', [c.reason ?? '']) : `${msg('stateEnded')} (${c.reason})`, false);
    return false;
  }
  const key = { dialing: 'stateDialing', ringing: 'stateRinging', answered: 'stateAnswered', ended: 'stateEnded' }[state];
  show(state, key ? msg(key) : state, state !== 'ended');
  return state !== 'ended';
}

async function call(to: string, label: string): Promise<void> {
  if (following !== null) window.clearInterval(following);
  show('requesting', msg('stateRequesting', [label]), false);
  const r = await send<CallInfo>({ type: 'call', to });
  if (!r.ok) {
    show('failed', r.error === 'signed-out' ? failureText(r) : msg('stateFailed', [failureText(r)]), false);
    return;
  }
  currentCall = r.data.call_id;
  if (!showCall(r.data)) return;
  following = window.setInterval(async () => {
    const s = await send<CallInfo>({ type: 'callStatus', id: currentCall });
    if (s.ok && !showCall(s.data)) {
      if (following !== null) window.clearInterval(following);
      following = null;
      window.setTimeout(() => { if (following === null) hide(); }, 8000);
    }
  }, 700);
}

function onClick(ev: MouseEvent): void {
  const target = ev.target instanceof Element ? ev.target : null;
  const num = target?.closest(`.${CLASS}`) as HTMLElement | null;
  const link = num ? null : (target?.closest(LINKS) as HTMLAnchorElement | null);
  if (!num && !link) return;
  ev.preventDefault();
  ev.stopPropagation();
  if (num) void call(num.dataset.callto ?? num.textContent ?? '', num.textContent ?? '');
  else if (link) void call(link.getAttribute('href') ?? '', link.textContent?.trim() || link.href);
}

function onKey(ev: KeyboardEvent): void {
  const num = ev.target instanceof Element ? (ev.target.closest(`.${CLASS}`) as HTMLElement | null) : null;
  if (num && (ev.key === 'Enter' || ev.key === ' ')) {
    ev.preventDefault();
    void call(num.dataset.callto ?? '', num.textContent ?? '');
  }
}

async function start(): Promise<void> {
  const r = await send<Config>({ type: 'config' });
  if (!r.ok || !r.data.signedIn || isExcluded(location.hostname, r.data.excluded)) {
    document.documentElement.dataset.calltoExtension = r.ok && r.data.signedIn ? 'excluded' : 'signed-out';
    return;
  }
  country = (r.data.country || 'IT').toUpperCase() as CountryCode;
  document.addEventListener('click', onClick, true);
  document.addEventListener('keydown', onKey, true);
  let pending: Node[] = [];
  let timer: number | null = null;
  observer = new MutationObserver((records) => {
    for (const rec of records) rec.addedNodes.forEach((n) => pending.push(n));
    if (timer === null) {
      timer = window.setTimeout(() => {
        timer = null;
        const nodes = pending;
        pending = [];
        for (const n of nodes) if (n.isConnected && !skipped(n)) scan(n);
      }, 300);
    }
  });
  scan(document.body);
  document.documentElement.dataset.calltoExtension = 'active';
}

ext.runtime.onMessage.addListener((m: { type?: string; text?: string }) => {
  if (m.type === 'callSelection' && m.text) void call(m.text.trim(), m.text.trim());
  return false;
});

void start();
