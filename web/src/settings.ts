// Per-browser preferences (audio devices and processing, language), kept in localStorage.
import { Store } from './store';

export interface Prefs {
  inputDeviceId: string;
  outputDeviceId: string;
  echoCancellation: boolean;
  noiseSuppression: boolean;
  autoGainControl: boolean;
  ringtone: boolean;
  /** Where the ring tone plays ('' = the call's output): a loudspeaker while calls go to a headset. */
  ringDeviceId: string;
  /** The web phone's incoming-call alert (panel, notification, flashing title); off for desk phone users. */
  incomingPopup: boolean;
}

const KEY = 'callto.prefs';

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

function load(): Prefs {
  try {
    const raw = localStorage.getItem(KEY);
    if (raw) return { ...defaults, ...(JSON.parse(raw) as Partial<Prefs>) };
  } catch {
    // A corrupt value falls back to the defaults.
  }
  return { ...defaults };
}

export const prefs = new Store<Prefs>(load());
prefs.subscribe((p) => localStorage.setItem(KEY, JSON.stringify(p)));

export function audioConstraints(p: Prefs, withDevice = true): MediaTrackConstraints {
  const c: MediaTrackConstraints = {
    echoCancellation: p.echoCancellation,
    noiseSuppression: p.noiseSuppression,
    autoGainControl: p.autoGainControl,
  };
  if (withDevice && p.inputDeviceId) c.deviceId = { exact: p.inputDeviceId };
  return c;
}
