// The web phone on screen: the incoming call alert, in-call controls (hang up, mute, hold, keypad,
// blind transfer, timer, the other party's name), call waiting (a second call ringing, answered by
// putting the first on hold, and switching between the two) and the click-to-call progress toast.
import { useEffect, useState } from 'preact/hooks';
import { causeText } from '../causes';
import { errorText, numberErrorDetail, t, tOr } from '../i18n';
import { PhoneError, phone } from '../phone';
import { dismissProgress, liveCall, moveCall, moving, phoneDevice, progress, session } from '../session';
import { prefs } from '../settings';
import { useStore } from '../store';
import { deviceName, formatDuration } from '../ui';

/** The device the click went to, in the screen's language (the server's default labels are English). */
function clickDevice(label: string | null, kind: string | null): string {
  if (!label) return '…';
  if (label === 'mobile') return t('call.mobile');
  return deviceName(label, kind);
}

export function CallProgressToast() {
  const p = useStore(progress);
  const webCall = useStore(phone.call);
  if (!p) return null;
  // Once this tab's web phone carries the call, its panel tells the story; errors and failures still show here.
  if (webCall && p.state !== 'error' && !p.failed) return null;
  let text: string;
  if (p.state === 'error') {
    const e = errorText(p.error ?? 'unknown', p.errorMessage);
    const detail = p.error === 'invalid-number' ? numberErrorDetail(p.errorDetails) : null;
    return (
      <div class="toast error" role="alert" data-testid="call-progress" data-state="error" data-error={p.error}>
        <div>
          <strong>{e.text}</strong>
          {detail && <p data-testid="error-detail">{detail}</p>}
          {e.fix && <p class="fix">{e.fix}</p>}
        </div>
        <button class="link-btn" onClick={dismissProgress}>
          {t('common.close')}
        </button>
      </div>
    );
  }
  if (p.state === 'ended' && p.failed) {
    const c = causeText(p.reason);
    return (
      <div class="toast error" role="alert" data-testid="call-progress" data-state="ended" data-failed="true" data-cause={c.cause}>
        <div>
          <strong>{t('call.failedBecause', { number: p.to, reason: c.text })}</strong>
          {c.fix && <p class="fix">{c.fix}</p>}
        </div>
        <button class="link-btn" onClick={dismissProgress}>
          {t('common.close')}
        </button>
      </div>
    );
  }
  const device = clickDevice(p.deviceLabel, p.deviceKind);
  if (p.state === 'requesting') text = t('call.requesting', { number: p.to });
  else if (p.state === 'dialing') text = t('call.dialing', { device });
  else if (p.state === 'ringing') text = t('call.ringing', { number: p.to });
  else if (p.state === 'answered') text = t('call.answered', { number: p.to });
  else text = t('call.ended');
  return (
    <div class="toast" role="status" data-testid="call-progress" data-state={p.state}>
      <div>
        <strong>{text}</strong>
        {p.deviceLabel && (
          <p class="muted">
            {t('call.via', { device, strategy: p.strategy ? tOr(`strategy.${p.strategy}`, p.strategy) : '' })}
          </p>
        )}
        {p.deviceKind === 'deskphone' && (p.state === 'dialing' || p.state === 'ringing') && (
          <p class="muted">{t('call.deskphoneHint')}</p>
        )}
      </div>
      <button class="link-btn" onClick={dismissProgress}>
        {t('common.close')}
      </button>
    </div>
  );
}

function Timer(props: { since: number | null }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = window.setInterval(() => setNow(Date.now()), 500);
    return () => window.clearInterval(id);
  }, []);
  if (!props.since) return null;
  return (
    <span class="timer" data-testid="call-timer">
      {formatDuration((now - props.since) / 1000)}
    </span>
  );
}

const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];

/** The call in the background: a second call ringing (call waiting), or the call on hold. */
function OtherCall(props: { fail: (e: unknown) => void }) {
  const other = useStore(phone.other);
  const front = useStore(phone.call);
  if (!other || other.state === 'ended') return null;
  const who = other.name || other.number;
  if (other.direction === 'in' && other.state === 'ringing') {
    return (
      <div class="waiting ringing" role="alert" aria-live="assertive" data-testid="call-waiting">
        <div class="phone-title">{t('phone.waiting')}</div>
        <div class="phone-who" data-testid="waiting-who">
          {who}
        </div>
        {other.name && other.name !== other.number && <div class="muted">{other.number}</div>}
        <div class="phone-actions">
          <button class="btn answer" data-testid="answer-waiting" onClick={() => phone.answerWaiting().catch(props.fail)}>
            {front?.state === 'established' ? t('phone.holdAndAnswer') : t('phone.answer')}
          </button>
          <button class="btn reject" data-testid="reject-waiting" onClick={() => phone.rejectWaiting()}>
            {t('phone.reject')}
          </button>
        </div>
      </div>
    );
  }
  return (
    <div class="waiting other-call" data-testid="held-call" data-state={other.state}>
      <div>
        <span class="muted">{other.held ? t('phone.onHold') : t(`phone.${other.state === 'ringing' ? 'calling' : other.state}`)}: </span>
        <strong data-testid="held-who">{who}</strong>
      </div>
      <button
        class="btn"
        data-testid="swap"
        disabled={other.state !== 'established' || front?.state !== 'established'}
        onClick={() => phone.swap()}
      >
        {t('phone.swap')}
      </button>
    </div>
  );
}

/** Why a move did not happen, in the screen's language. */
function MoveNotice() {
  const m = useStore(moving);
  const me = useStore(session).me;
  if (!m) return null;
  const dev = me?.devices.find((d) => d.id === m.deviceId);
  const device = dev ? deviceName(dev.label, dev.kind) : '…';
  if (m.state === 'ringing') {
    return (
      <div class="muted" role="status" data-testid="move-state" data-state="ringing">
        {t('phone.moving', { device })}
      </div>
    );
  }
  const text =
    m.error === 'move-failed'
      ? t('phone.moveFailed', { reason: tOr(`move.${m.reason ?? 'failed'}`, t('move.failed')) })
      : errorText(m.error ?? 'unknown').text;
  return (
    <div class="error" role="alert" data-testid="move-state" data-state="failed" data-error={m.error} data-reason={m.reason ?? ''}>
      <strong>{text}</strong>
      <button class="link-btn" onClick={() => moving.set(null)}>
        {t('common.close')}
      </button>
    </div>
  );
}

/** The user's other devices, to move this page's call onto one of them. */
function MoveList() {
  const me = useStore(session).me;
  const here = phoneDevice(me);
  const others = (me?.devices ?? []).filter((d) => d.id !== here?.id);
  if (!others.length) return <div class="muted">{t('phone.moveNoDevice')}</div>;
  return (
    <div class="move-list" data-testid="move-list" aria-label={t('phone.moveTitle')}>
      {others.map((d) => (
        <button key={d.id} class="btn" data-testid="move-to" data-device-id={d.id} onClick={() => void moveCall(d.id)}>
          {t('phone.moveTo', { device: deviceName(d.label, d.kind) })}
        </button>
      ))}
    </div>
  );
}

/** A call of the user's on another device (a desk phone): offer to take it onto this page. */
function CallElsewhere() {
  const live = useStore(liveCall);
  const me = useStore(session).me;
  const m = useStore(moving);
  const here = phoneDevice(me);
  if (!here) return null;
  if (!live) return m?.state === 'failed' ? <MoveNotice /> : null;
  return (
    <div class="phone elsewhere" data-testid="call-elsewhere">
      <div class="muted">{t('phone.elsewhere')}</div>
      {live.number && <div class="phone-who">{live.number}</div>}
      <MoveNotice />
      <div class="phone-actions">
        <button
          class="btn answer"
          data-testid="pull-call"
          disabled={m?.state === 'ringing'}
          onClick={() => void moveCall(here.id, live.callId)}
        >
          {t('phone.pull')}
        </button>
      </div>
    </div>
  );
}

export function PhonePanel() {
  const call = useStore(phone.call);
  const p = useStore(prefs);
  const [keypad, setKeypad] = useState(false);
  const [transfer, setTransfer] = useState(false);
  const [move, setMove] = useState(false);
  const elsewhere = useStore(liveCall);
  const [target, setTarget] = useState('');
  const [sent, setSent] = useState('');
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    setKeypad(false);
    setTransfer(false);
    setMove(false);
    setTarget('');
    setSent('');
    setErr(null);
  }, [call?.id]);
  if (!call || (call.state === 'ended' && elsewhere)) return <CallElsewhere />;
  const who = call.name || call.number;
  const fail = (e: unknown) => setErr(e instanceof PhoneError ? e.id : 'call-failed');
  if (call.direction === 'in' && call.state === 'ringing') {
    // Turned off in Settings by users who answer on their desk phone: the call rings there, not here.
    if (!p.incomingPopup) return null;
    return (
      <div class="phone incoming" role="alertdialog" aria-live="assertive" data-testid="incoming-call">
        <div class="ringing-icon" aria-hidden="true">
          ☎
        </div>
        <div class="phone-title">{t('phone.incoming')}</div>
        <div class="phone-who" data-testid="call-who">
          {who}
        </div>
        {call.name && call.name !== call.number && <div class="muted">{call.number}</div>}
        {err && <ErrLine id={err} />}
        <OtherCall fail={fail} />
        <div class="phone-actions">
          <button class="btn answer" data-testid="answer" onClick={() => phone.answer().catch(fail)}>
            {t('phone.answer')}
          </button>
          <button class="btn reject" data-testid="reject" onClick={() => phone.reject()}>
            {t('phone.reject')}
          </button>
        </div>
      </div>
    );
  }
  const stateText =
    call.state === 'ended'
      ? `${t('phone.ended')} · ${causeText(call.endedCause).text}`
      : call.held
        ? t('phone.onHold')
        : t(`phone.${call.state === 'ringing' ? 'calling' : call.state}`);
  const live = call.state === 'established';
  return (
    <div class="phone incall" data-testid="web-call" data-state={call.state}>
      <div class="phone-head">
        <div>
          <div class="phone-who" data-testid="call-who">
            {who}
          </div>
          {call.name && call.name !== call.number && <div class="muted">{call.number}</div>}
          <div class="muted" data-testid="call-state">
            {stateText}
            {call.muted ? ` · ${t('phone.muted')}` : ''}
          </div>
        </div>
        {live && <Timer since={call.startedAt} />}
      </div>
      {err && <ErrLine id={err} />}
      <OtherCall fail={fail} />
      {call.state !== 'ended' && (
        <div class="phone-actions">
          <button class="btn" data-testid="mute" disabled={!live} onClick={() => phone.toggleMute()}>
            {call.muted ? t('phone.unmute') : t('phone.mute')}
          </button>
          <button class="btn" data-testid="hold" disabled={!live} onClick={() => phone.toggleHold()}>
            {call.held ? t('phone.resume') : t('phone.hold')}
          </button>
          <button class="btn" data-testid="keypad" disabled={!live} onClick={() => setKeypad(!keypad)}>
            {t('phone.keypad')}
          </button>
          <button class="btn" data-testid="transfer" disabled={!live} onClick={() => setTransfer(!transfer)}>
            {t('phone.transfer')}
          </button>
          <button class="btn" data-testid="move" disabled={!live} title={t('phone.moveTitle')} onClick={() => setMove(!move)}>
            {t('phone.move')}
          </button>
          <button class="btn reject" data-testid="hangup" onClick={() => phone.hangup()}>
            {t('phone.hangup')}
          </button>
        </div>
      )}
      {move && live && <MoveList />}
      {live && <MoveNotice />}
      {keypad && live && (
        <div class="keypad" data-testid="dtmf-pad">
          <div class="dtmf-sent">{sent || '\u00a0'}</div>
          {KEYS.map((k) => (
            <button
              key={k}
              class="btn key"
              onClick={() => {
                phone.dtmf(k);
                setSent(sent + k);
              }}
            >
              {k}
            </button>
          ))}
        </div>
      )}
      {transfer && live && (
        <form
          class="transfer"
          onSubmit={(e) => {
            e.preventDefault();
            try {
              phone.transfer(target);
              setTransfer(false);
            } catch (x) {
              fail(x);
            }
          }}
        >
          <input
            data-testid="transfer-target"
            inputMode="tel"
            placeholder={t('phone.transferTo')}
            value={target}
            onInput={(e) => setTarget((e.target as HTMLInputElement).value)}
          />
          <button class="btn" type="submit">
            {t('phone.transferGo')}
          </button>
        </form>
      )}
    </div>
  );
}

function ErrLine(props: { id: string }) {
  const e = errorText(props.id);
  return (
    <div class="error" role="alert" data-error={props.id}>
      <strong>{e.text}</strong>
      {e.fix && <p>{e.fix}</p>}
    </div>
  );
}
