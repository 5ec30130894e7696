// Settings: main device, do-not-disturb, incoming-call alerts (pop-up, ring tone: saved in the profile, so
// they hold in every browser and in callto Link), audio input/output and processing (this computer only),
// notifications, language (also in the profile).
import { useEffect, useState } from 'preact/hooks';
import { LangSwitch } from '../App';
import { api, type Me } from '../api';
import { tOr, t } from '../i18n';
import { phone } from '../phone';
import { refreshMe, session } from '../session';
import { prefs, savePrefs, type PrefChange } from '../settings';
import { useStore } from '../store';
import { ErrorBox, Toggle, deviceName } from '../ui';

export function useAudioDevices(): { inputs: MediaDeviceInfo[]; outputs: MediaDeviceInfo[] } {
  const [devs, setDevs] = useState<MediaDeviceInfo[]>([]);
  useEffect(() => {
    const md = navigator.mediaDevices;
    if (!md?.enumerateDevices) return undefined;
    const load = () => void md.enumerateDevices().then(setDevs).catch(() => setDevs([]));
    load();
    md.addEventListener('devicechange', load);
    return () => md.removeEventListener('devicechange', load);
  }, []);
  return {
    inputs: devs.filter((d) => d.kind === 'audioinput' && d.deviceId),
    outputs: devs.filter((d) => d.kind === 'audiooutput' && d.deviceId),
  };
}

export function Settings() {
  const me = useStore(session).me as Me;
  const p = useStore(prefs);
  const { inputs, outputs } = useAudioDevices();
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  // What the user just chose, shown at once while the server saves it (reverted if saving fails).
  const [pendingMain, setPendingMain] = useState<string | null>(null);
  const [pendingDnd, setPendingDnd] = useState<boolean | null>(null);
  const [notif, setNotif] = useState('Notification' in window ? Notification.permission : 'denied');
  const flash = (what: string) => {
    setSaved(what);
    window.setTimeout(() => setSaved(null), 2000);
  };
  const setMain = async (id: string) => {
    setError(null);
    setPendingMain(id);
    try {
      const dev = me.devices.find((d) => String(d.id) === id);
      await api('PUT', '/me/main-device', { device_id: dev ? dev.id : id });
      await refreshMe();
      flash('main');
    } catch (e) {
      setError(e);
    } finally {
      setPendingMain(null);
    }
  };
  const setDnd = async (dnd: boolean) => {
    setError(null);
    setPendingDnd(dnd);
    try {
      await api('PUT', '/me/presence', { dnd });
      session.update({ me: { ...me, dnd } });
      flash('dnd');
    } catch (e) {
      setError(e);
    } finally {
      setPendingDnd(null);
    }
  };
  const setShared = async (c: PrefChange, what: string) => {
    setError(null);
    try {
      await savePrefs(c);
      flash(what);
    } catch (e) {
      setError(e);
    }
  };
  const mainId = pendingMain ?? String(me.main_device_id);
  const labelOf = (d: MediaDeviceInfo, i: number) =>
    d.label || t(d.kind === 'audioinput' ? 'settings.inputN' : 'settings.outputN', { n: i + 1 });
  const unnamed = inputs.length > 0 && inputs.every((d) => !d.label);
  return (
    <section class="page settings">
      <h1>{t('settings.title')}</h1>
      <ErrorBox error={error} />
      <div class="card">
        <h2>{t('settings.mainDevice')}</h2>
        <p class="muted">{t('settings.mainDeviceHelp')}</p>
        {me.devices.length === 0 ? (
          <p>{t('settings.noDevices')}</p>
        ) : (
          <div class="radios" data-testid="main-device">
            {me.devices.map((d) => (
              <label key={d.id} class="radio">
                <input
                  type="radio"
                  name="main-device"
                  value={String(d.id)}
                  checked={String(d.id) === mainId}
                  onChange={() => void setMain(String(d.id))}
                />
                <span>
                  {deviceName(d.label, d.kind) || tOr(`device.${d.kind}`, d.kind)}
                  {deviceName(d.label, d.kind) !== tOr(`device.${d.kind}`, d.kind) && (
                    <span class="muted"> ({tOr(`device.${d.kind}`, d.kind)})</span>
                  )}
                </span>
                <span class={`state ${d.online ? 'on' : 'off'}`}>{t(d.online ? 'device.online' : 'device.offline')}</span>
              </label>
            ))}
          </div>
        )}
        {saved === 'main' && <span class="ok-text">{t('common.saved')}</span>}
      </div>
      <div class="card">
        <Toggle label={t('settings.dnd')} checked={pendingDnd ?? me.dnd} testid="dnd" onChange={(v) => void setDnd(v)} />
        {saved === 'dnd' && <span class="ok-text">{t('common.saved')}</span>}
      </div>
      <div class="card" data-testid="incoming-alerts">
        <h2>{t('settings.incoming')}</h2>
        <p class="muted">{t('settings.incomingHelp')}</p>
        <Toggle
          label={t('settings.popup')}
          checked={p.incomingPopup}
          testid="incoming-popup"
          onChange={(v) => void setShared({ incomingPopup: v }, 'popup')}
        />
        <Toggle
          label={t('settings.ringtone')}
          checked={p.ringtone}
          testid="ringtone"
          onChange={(v) => void setShared({ ringtone: v }, 'ringtone')}
        />
        <p class="muted">{t('settings.popupHelp')}</p>
        {(saved === 'popup' || saved === 'ringtone') && (
          <span class="ok-text" data-testid="alerts-saved">
            {t('common.saved')}
          </span>
        )}
      </div>
      <div class="card">
        <h2>{t('settings.audio')}</h2>
        <p class="muted">{t('settings.audioHelp')}</p>
        <label>
          {t('settings.input')}
          <select
            data-testid="audio-input"
            value={p.inputDeviceId}
            onChange={(e) => prefs.update({ inputDeviceId: (e.target as HTMLSelectElement).value })}
          >
            <option value="">{t('settings.default')}</option>
            {inputs.map((d, i) => (
              <option key={d.deviceId} value={d.deviceId}>
                {labelOf(d, i)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('settings.output')}
          <select
            data-testid="audio-output"
            value={p.outputDeviceId}
            onChange={(e) => {
              const v = (e.target as HTMLSelectElement).value;
              prefs.update({ outputDeviceId: v });
              void phone.setOutputDevice(v).catch(() => undefined);
            }}
          >
            <option value="">{t('settings.default')}</option>
            {outputs.map((d, i) => (
              <option key={d.deviceId} value={d.deviceId}>
                {labelOf(d, i)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('settings.ringOutput')}
          <select
            data-testid="ring-output"
            value={p.ringDeviceId}
            onChange={(e) => prefs.update({ ringDeviceId: (e.target as HTMLSelectElement).value })}
          >
            <option value="">{t('settings.sameAsCall')}</option>
            {outputs.map((d, i) => (
              <option key={d.deviceId} value={d.deviceId}>
                {labelOf(d, i)}
              </option>
            ))}
          </select>
        </label>
        {unnamed && <p class="muted">{t('settings.devicesHidden')}</p>}
        <p class="muted">{t('settings.processingHelp')}</p>
        <Toggle
          label={t('settings.echo')}
          testid="echo"
          checked={p.echoCancellation}
          onChange={(v) => prefs.update({ echoCancellation: v })}
        />
        <Toggle
          label={t('settings.noise')}
          testid="noise"
          checked={p.noiseSuppression}
          onChange={(v) => prefs.update({ noiseSuppression: v })}
        />
        <Toggle
          label={t('settings.agc')}
          testid="agc"
          checked={p.autoGainControl}
          onChange={(v) => prefs.update({ autoGainControl: v })}
        />
      </div>
      <div class="card">
        <h2>{t('settings.notifications')}</h2>
        <p>
          {t(`settings.notify.${notif}`)}{' '}
          {notif === 'default' && (
            <button
              class="btn"
              onClick={() => void Notification.requestPermission().then((r) => setNotif(r))}
            >
              {t('settings.notifyAllow')}
            </button>
          )}
        </p>
      </div>
      <div class="card">
        <h2>{t('lang.label')}</h2>
        <p class="muted">{t('settings.languageHelp')}</p>
        <LangSwitch />
      </div>
    </section>
  );
}
