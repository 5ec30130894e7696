// Preferences. Two homes: what belongs to this machine (audio devices and their processing) stays in
// localStorage; what belongs to the user (the incoming-call pop-up and ring tone switches, the language)
// is saved in the user's profile on the server (`/api/v1/me/preferences`), so it follows them to every
// browser and to callto Link. A choice this browser kept locally before the profile existed is moved there
// on the first load that finds the profile never set.
import { api, type Schema } from './api';
import { lang, setLang, type Lang } from './i18n';
import { Store } from './store';

export interface Prefs {
  inputDeviceId: string;
  outputDeviceId: string;
  echoCancellation: boolean;
  noiseSuppression: boolean;
  autoGainControl: boolean;
  /** From the profile: ring aloud for incoming calls (web phone and Link). */
  ringtone: boolean;
  /** Where the ring tone plays ('' = the call's output): a loudspeaker while calls go to a headset. */
  ringDeviceId: string;
  /** From the profile: the incoming-call alert (panel, notification, flashing title); off for desk phone users. */
  incomingPopup: boolean;
}

/** The profile's preferences as the server sends them (`GET /me/preferences`, `/me`, event `me.preferences`). */
/** The profile's preferences (`/me/preferences`); `updated_at` is null until the user first chose anything. */
export type ServerPrefs = Schema<'PreferencesOut'>;

const KEY = 'callto.prefs';
const LANG_KEY = 'callto.lang';
// Set once this browser's old local choices went to a profile: never copied into a second one.
const MIGRATED_KEY = 'callto.prefs.migrated';

const defaults: Prefs = {
  inputDeviceId: '',
  outputDeviceId: '',
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
  ringtone: true,
  ringDeviceId: '',
  incomingPopup: true,
};

function stored(): Partial<Prefs> {
  try {
    const raw = localStorage.getItem(KEY);
    if (raw) return JSON.parse(raw) as Partial<Prefs>;
  } catch {
    // A corrupt value falls back to the defaults.
  }
  return {};
}

export const prefs = new Store<Prefs>({ ...defaults, ...stored() });
prefs.subscribe((p) => localStorage.setItem(KEY, JSON.stringify(p)));

let signedIn = false;
// A language picked on the login screen is a choice for the profile too, saved once signed in.
let languageBeforeLogin: Lang | null = null;

/** Take the profile's values (on load, after saving, and when another browser or Link changed them). */
export function applyServerPrefs(sp: Partial<ServerPrefs> | null | undefined): void {
  if (!sp) return;
  const patch: Partial<Prefs> = {};
  if (typeof sp.ringtone === 'boolean') patch.ringtone = sp.ringtone;
  if (typeof sp.incoming_popup === 'boolean') patch.incomingPopup = sp.incoming_popup;
  prefs.update(patch);
  if ((sp.language === 'en' || sp.language === 'it') && sp.language !== lang.get()) setLang(sp.language);
}

export interface PrefChange {
  ringtone?: boolean;
  incomingPopup?: boolean;
  language?: Lang;
}

function body(c: PrefChange): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (c.ringtone !== undefined) b.ringtone = c.ringtone;
  if (c.incomingPopup !== undefined) b.incoming_popup = c.incomingPopup;
  if (c.language !== undefined) b.language = c.language;
  return b;
}

/** Change profile preferences: shown at once, saved on the server, put back if saving fails. */
export async function savePrefs(c: PrefChange): Promise<void> {
  const before = { ringtone: prefs.get().ringtone, incomingPopup: prefs.get().incomingPopup, language: lang.get() };
  const local: Partial<Prefs> = {};
  if (c.ringtone !== undefined) local.ringtone = c.ringtone;
  if (c.incomingPopup !== undefined) local.incomingPopup = c.incomingPopup;
  prefs.update(local);
  if (c.language !== undefined) setLang(c.language);
  if (!signedIn) {
    if (c.language !== undefined) languageBeforeLogin = c.language;
    return;
  }
  try {
    applyServerPrefs(await api<ServerPrefs>('PATCH', '/me/preferences', body(c)));
  } catch (e) {
    prefs.update({ ringtone: before.ringtone, incomingPopup: before.incomingPopup });
    if (c.language !== undefined) setLang(before.language);
    throw e;
  }
}

/** The language switch: on the login screen it is remembered for the profile, once signed in it is saved. */
export function chooseLanguage(l: Lang): void {
  void savePrefs({ language: l }).catch(() => undefined);
}

/** At the start of a session, before the first screen, with the profile's preferences from `/me`. */
export async function startPrefs(given: ServerPrefs | null | undefined): Promise<void> {
  signedIn = true;
  let sp = given;
  if (!sp) {
    // The login answer carries the user without them: ask (an older server has no such route, and the
    // local values stay in charge).
    try {
      sp = await api<ServerPrefs>('GET', '/me/preferences');
    } catch {
      return;
    }
  }
  const change: PrefChange = {};
  if (languageBeforeLogin !== null && languageBeforeLogin !== sp.language) change.language = languageBeforeLogin;
  languageBeforeLogin = null;
  if (sp.updated_at === null && localStorage.getItem(MIGRATED_KEY) === null) {
    // The profile was never set: what this browser kept so far becomes the profile's (only what differs
    // from the defaults: the rest is the default anyway).
    const old = stored();
    if (old.ringtone === false) change.ringtone = false;
    if (old.incomingPopup === false) change.incomingPopup = false;
    const oldLang = localStorage.getItem(LANG_KEY);
    if (change.language === undefined && (oldLang === 'en' || oldLang === 'it')) change.language = oldLang;
    localStorage.setItem(MIGRATED_KEY, '1');
  }
  // The first screen shows the result at once; saving it goes on in the background.
  applyServerPrefs({
    ...sp,
    ...(change.ringtone !== undefined ? { ringtone: change.ringtone } : {}),
    ...(change.incomingPopup !== undefined ? { incoming_popup: change.incomingPopup } : {}),
    ...(change.language !== undefined ? { language: change.language } : {}),
  });
  if (Object.keys(change).length === 0) return;
  void api<ServerPrefs>('PATCH', '/me/preferences', body(change))
    .then(applyServerPrefs)
    .catch(() => {
      // Not saved (an outage): this browser keeps its choice and the next load tries again.
      localStorage.removeItem(MIGRATED_KEY);
    });
}

export function stopPrefs(): void {
  signedIn = false;
}

export function audioConstraints(p: Prefs, withDevice = true): MediaTrackConstraints {
  const c: MediaTrackConstraints = {
    echoCancellation: p.echoCancellation,
    noiseSuppression: p.noiseSuppression,
    autoGainControl: p.autoGainControl,
  };
  if (withDevice && p.inputDeviceId) c.deviceId = { exact: p.inputDeviceId };
  return c;
}
