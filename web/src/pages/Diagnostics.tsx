// Diagnostics: the server's checks for this user (`/me/diagnostics`) and this browser's own:
// event stream, web phone registration, microphone permission with a level meter, chosen devices.
import { useEffect, useRef, useState } from 'preact/hooks';
import { causeText } from '../causes';
import { events } from '../events';
import { has, t, tOr } from '../i18n';
import { PhoneError, phone } from '../phone';
import { session, webphoneDevice } from '../session';
import { prefs } from '../settings';
import { useStore } from '../store';
import { LoadState, deviceName, formatTime, useApi } from '../ui';
import { useAudioDevices } from './Settings';

interface Check {
  id: string;
  status: 'ok' | 'warn' | 'fail';
  message: string;
  fix?: string | null;
  code?: string;
  params?: Record<string, unknown>;
}

function sourceVars(src: { address?: string; since?: string }): Record<string, string> {
  return { address: src.address ?? '', since: formatTime(src.since) };
}

/** Title, message and fix of a server check, worded here from its code and params. */
export function checkText(c: Check): { title: string; message: string; fix: string | null } {
  const code = c.code ?? '';
  if (!code || !has(`diag.code.${code}`)) {
    // An older server, or a check this page does not know yet: its own words, not a raw id.
    return { title: t('diag.topic.other'), message: c.message, fix: c.fix ?? null };
  }
  const p = c.params ?? {};
  const kind = typeof p.kind === 'string' ? p.kind : '';
  const vars: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(p)) if (typeof v === 'string' || typeof v === 'number') vars[k] = v;
  if (p.device !== undefined || kind) vars.device = deviceName(p.device, kind);
  if (kind) vars.kind = tOr(`device.${kind}`, kind);
  if (typeof p.outbound === 'string') vars.outbound = tOr(`admin.outbound.${p.outbound}`, p.outbound);
  if (Array.isArray(p.sources)) {
    vars.sources = (p.sources as { via?: string; address?: string; since?: string }[])
      .map((src) =>
        tOr(`diag.source.${src.via}`, t('diag.source.other', sourceVars(src)), sourceVars(src)),
      )
      .join(', ');
  }
  const topic = code.split('.')[0];
  const fixKey = [`diag.fix.${code}.${kind}`, `diag.fix.${code}`].find((k) => has(k));
  return {
    title: tOr(`diag.topic.${topic}`, t('diag.topic.other'), vars),
    message: tOr(`diag.code.${code}`, c.message, vars),
    fix: fixKey ? tOr(fixKey, '', vars) : null,
  };
}

function Row(props: { id: string; status: 'ok' | 'warn' | 'fail'; label: string; message: string; fix?: string | null }) {
  return (
    <li class={`check ${props.status}`} data-testid={`check-${props.id}`} data-status={props.status}>
      <span class="badge-status">{t(`diag.status.${props.status}`)}</span>
      <div>
        <strong>{props.label}</strong>
        <div>{props.message}</div>
        {props.fix && props.status !== 'ok' && <div class="fix">{props.fix}</div>}
      </div>
    </li>
  );
}

function useMicPermission(): PermissionState | 'unknown' {
  const [state, setState] = useState<PermissionState | 'unknown'>('unknown');
  useEffect(() => {
    let status: PermissionStatus | null = null;
    const update = () => status && setState(status.state);
    navigator.permissions
      ?.query({ name: 'microphone' as PermissionName })
      .then((s) => {
        status = s;
        update();
        s.addEventListener('change', update);
      })
      .catch(() => setState('unknown'));
    return () => status?.removeEventListener('change', update);
  }, []);
  return state;
}

function LevelMeter() {
  const [on, setOn] = useState(false);
  const [level, setLevel] = useState(0);
  const [err, setErr] = useState<string | null>(null);
  const stop = useRef<() => void>(() => undefined);
  useEffect(() => () => stop.current(), []);
  const start = async () => {
    setErr(null);
    try {
      const stream = await phone.getMic();
      const ctx = new AudioContext();
      const an = ctx.createAnalyser();
      an.fftSize = 1024;
      ctx.createMediaStreamSource(stream).connect(an);
      const buf = new Float32Array(an.fftSize);
      let raf = 0;
      const tick = () => {
        an.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const x of buf) sum += x * x;
        setLevel(Math.min(1, Math.sqrt(sum / buf.length) * 4));
        raf = requestAnimationFrame(tick);
      };
      tick();
      stop.current = () => {
        cancelAnimationFrame(raf);
        for (const tr of stream.getTracks()) tr.stop();
        void ctx.close();
        setOn(false);
        setLevel(0);
      };
      setOn(true);
    } catch (e) {
      setErr(e instanceof PhoneError ? e.id : 'microphone-failed');
    }
  };
  return (
    <div class="meter-wrap">
      <button class="btn" data-testid="mic-test" onClick={() => (on ? stop.current() : void start())}>
        {on ? t('diag.micStop') : t('diag.micTest')}
      </button>
      <div
        class="meter"
        role="meter"
        aria-label={t('diag.level')}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(level * 100)}
        data-testid="mic-level"
        data-level={level.toFixed(3)}
      >
        <div class="meter-bar" style={{ width: `${Math.round(level * 100)}%` }} />
      </div>
      {err && (
        <div class="error" role="alert" data-error={err}>
          <strong>{tOr(`err.${err}`, err)}</strong>
          <p>{tOr(`fix.${err}`, '')}</p>
        </div>
      )}
    </div>
  );
}

export function Diagnostics() {
  const loaded = useApi<{ checks: Check[] }>('/me/diagnostics');
  const ev = useStore(events.status);
  const ph = useStore(phone.status);
  const me = useStore(session).me;
  const p = useStore(prefs);
  const mic = useMicPermission();
  const { inputs, outputs } = useAudioDevices();
  const wp = webphoneDevice(me);
  const inName = inputs.find((d) => d.deviceId === p.inputDeviceId)?.label || t('settings.default');
  const outName = outputs.find((d) => d.deviceId === p.outputDeviceId)?.label || t('settings.default');
  const notif = 'Notification' in window ? Notification.permission : 'denied';
  const evStatus = ev.state === 'open' ? 'ok' : ev.state === 'idle' ? 'fail' : 'warn';
  const sipStatus = !wp ? 'warn' : ph.reg === 'registered' ? 'ok' : ph.reg === 'failed' ? 'fail' : 'warn';
  const micStatus = mic === 'granted' ? 'ok' : mic === 'denied' || ph.mic === 'denied' ? 'fail' : 'warn';
  return (
    <section class="page diagnostics">
      <div class="page-head">
        <h1>{t('diag.title')}</h1>
        <button class="btn" onClick={loaded.reload}>
          {t('diag.rerun')}
        </button>
      </div>
      <h2>{t('diag.browser')}</h2>
      <ul class="checks" data-testid="browser-checks">
        <Row id="events" status={evStatus} label={t('diag.events')} message={t(`status.events.${ev.state}`)} fix={t('fix.network')} />
        <Row
          id="sip"
          status={sipStatus}
          label={t('diag.sip')}
          message={wp ? t(`status.phone.${ph.reg}`) + (ph.error ? ` (${causeText(ph.error).text})` : '') : t('diag.noWebphone')}
          fix={wp ? t('fix.webphone-not-registered') : null}
        />
        <Row
          id="mic"
          status={micStatus}
          label={t('diag.mic')}
          message={t(`diag.mic.${mic}`)}
          fix={t('fix.microphone-blocked')}
        />
        <Row id="devices" status="ok" label={t('diag.devices')} message={`${t('settings.input')}: ${inName} · ${t('settings.output')}: ${outName}`} />
        <Row id="notifications" status={notif === 'granted' ? 'ok' : 'warn'} label={t('diag.notifications')} message={t(`settings.notify.${notif}`)} />
      </ul>
      <LevelMeter />
      <h2>{t('diag.server')}</h2>
      <LoadState loaded={loaded} feature={t('diag.server')} />
      {loaded.data && (
        <ul class="checks" data-testid="server-checks">
          {(loaded.data.checks ?? []).map((c) => {
            const w = checkText(c);
            return <Row key={c.id} id={`server-${c.id}`} status={c.status} label={w.title} message={w.message} fix={w.fix} />;
          })}
        </ul>
      )}
    </section>
  );
}
