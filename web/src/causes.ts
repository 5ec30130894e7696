// Why a call ended, in one vocabulary: the switch's causes (`media-unavailable`, `no-route`...), the
// originate strategy's "device answered 486 Busy Here" and JsSIP's causes ("Incompatible SDP") all become
// one cause id; the screens show `cause.<id>` and, for a failure, `causefix.<id>` (what to do about it).
import { t } from './i18n';

/** Ends that are nobody's failure: someone hung up or gave up. */
const NORMAL = new Set(['hangup', 'caller-cancelled', 'hangup-requested', 'a-hangup', 'b-hangup', 'ended', 'answered']);

export const CAUSES = [
  'hangup',
  'caller-cancelled',
  'media-unavailable',
  'media-failed',
  'no-route',
  'offline',
  'not-permitted',
  'no-answer',
  'busy',
  'rejected',
  'connection-lost',
  'no-ack',
  'call-failed',
] as const;

/** A hang-up cause id: each has words in `cause.*` (and a failure's fix in `causefix.*`). */
export type Cause = (typeof CAUSES)[number];

// JsSIP's `cause` strings (JsSIP.C.causes) as they arrive in the browser.
const JSSIP: Record<string, Cause> = {
  'Incompatible SDP': 'media-unavailable',
  'Bad Media Description': 'media-unavailable',
  'Missing SDP': 'media-unavailable',
  'WebRTC Error': 'media-failed',
  'RTP Timeout': 'media-failed',
  Busy: 'busy',
  Rejected: 'rejected',
  'Not Found': 'no-route',
  'Address Incomplete': 'no-route',
  Unavailable: 'offline',
  'No Answer': 'no-answer',
  Expires: 'no-answer',
  Canceled: 'caller-cancelled',
  Bye: 'hangup',
  Terminated: 'hangup',
  'Connection Error': 'connection-lost',
  'Request Timeout': 'connection-lost',
  'Dialog Error': 'connection-lost',
  'Authentication Error': 'rejected',
  'User Denied Media Access': 'media-failed',
};

/** The cause id for whatever the server or the browser said. */
export function causeOf(reason: string | null | undefined): Cause {
  const r = (reason ?? '').trim();
  if (!r) return 'hangup';
  if (NORMAL.has(r)) return r === 'caller-cancelled' ? r : 'hangup';
  const known = CAUSES.find((c) => c === r);
  if (known) return known;
  if (r in JSSIP) return JSSIP[r];
  if (/-hangup$/.test(r)) return 'hangup';
  // The originate strategy: "device answered 486 Busy Here".
  if (/\b(486|600)\b|busy/i.test(r)) return 'busy';
  if (/\b(603|403)\b|declin|forbidden/i.test(r)) return 'rejected';
  if (/\b480\b|unavailable/i.test(r)) return 'offline';
  if (/\b(404|484)\b|not found/i.test(r)) return 'no-route';
  if (/\b(408|487)\b|no answer|timeout/i.test(r)) return 'no-answer';
  if (/\b488\b|sdp|media/i.test(r)) return 'media-unavailable';
  return 'call-failed';
}

export function isFailure(cause: string): boolean {
  return cause !== 'hangup' && cause !== 'caller-cancelled';
}

/** Plain words for a cause, and for a failure what to do about it. */
export function causeText(reason: string | null | undefined): { cause: Cause; text: string; fix: string | null } {
  const cause = causeOf(reason);
  return { cause, text: t(`cause.${cause}`), fix: isFailure(cause) ? t(`causefix.${cause}`) : null };
}
