"""Moving a live call between a user's own devices (web phone -> desk phone, desk phone -> browser or Link).

Owns what the switch does when a user asks to move their answered call to another of their devices:

- The call must be an answered two-party call with one confirmed leg on one of the user's devices (the
  *old* leg); the other party (the *peer*) never changes. The target device must be the user's, another
  device than the old one and registered (its most recent, highest-q contact is rung).
- The target rings with an INVITE without SDP (delayed offer, like a blind transfer's target), showing the
  peer's number, with the vendor's auto-answer header when one is given. While it rings, the user still
  talks on the old device.
- When the target answers, its offer goes to the peer in a re-INVITE (rewritten by rtpengine when the
  target and the peer do not share a media profile, WebRTC against plain RTP); the peer's answer rides on
  the ACK to the target. Only then does the old device get a BYE; the call keeps its id and its one record
  (its answered device becomes the target when the callee's side moved). The peer hears a short gap.
- If the target does not answer (timeout, busy, declined, unreachable) or the peer refuses the re-INVITE,
  the target's leg ends and the call stays where it was; ``on_result(False, reason)`` says why (a stable
  reason id: ``no-answer``, ``busy``, ``declined``, ``unreachable``, ``peer-refused``, ``media-failed``,
  ``call-ended``).

A controller over the B2BUA's public interface only (the third, after origination and transfer): a helper
call rings the target (``targets_for`` + ``add_call`` + ``send_invite``, so the INVITE can carry the
auto-answer header) and names the :class:`Move` as its ``controller``; the peer gets the target's offer by
``send_in_dialog`` (through ``ask_media_offer`` / ``ask_media_answer`` when the profiles differ, the answers
fed back by the media driver); ``ack`` completes the target, ``hand_over_leg`` puts it in the old leg's
place, ``bye`` ends the old leg and ``discard`` drops the helper call, so history keeps one record. Sans-IO
like the B2BUA: every entry takes ``now``; nothing awaits or reads a clock.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from callto.sip.b2bua import B2BUA
from callto.sip.call_states import CallState, LegState
from callto.sip.calls import Call, CallController, Leg, Target
from callto.sip.dialog import Dialog
from callto.sip.grammar import quote
from callto.sip.media import MediaProfile
from callto.sip.message import Headers, Request, Response
from callto.sip.origination import Origination
from callto.sip.sdp import reject_all

log = logging.getLogger(__name__)

MOVE_RING_TIMEOUT = 20.0  # how long the target rings before the call stays where it was

OnResult = Callable[[bool, str], None]


class Phase(enum.Enum):
    RINGING = "ringing"  # the target rings; the user still talks on the old device
    SWITCHING = "switching"  # the target answered; the peer is being re-INVITEd with its offer
    DONE = "done"


class MoveRefused(Exception):
    """The move cannot start; ``reason`` is a stable id (``no-call``, ``same-device``, ``not-registered``,
    ``not-your-device``, ``move-running``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def live_leg(b2bua: B2BUA, user_id: str, call_id: str | None = None) -> Leg | None:
    """The confirmed leg, on one of ``user_id``'s devices, of an answered two-party call of theirs
    (``call_id``, or their only such call); None when there is none, or it is someone else's."""
    calls = list(b2bua.calls.values()) if call_id is None else [c for c in (b2bua.calls.get(call_id),) if c]
    for call in calls:
        if call.state is not CallState.ANSWERED:
            continue
        for leg in (call.a, call.winner):
            other = b2bua.other_leg(leg) if leg is not None else None
            if (
                leg is not None
                and leg.user_id == user_id
                and leg.device_id is not None
                and leg.state is LegState.CONFIRMED
                and other is not None
                and other.state is LegState.CONFIRMED
            ):
                return leg
    return None


def start_move(
    b2bua: B2BUA,
    user_id: str,
    device_id: str,
    now: float,
    on_result: OnResult,
    *,
    call_id: str | None = None,
    auto_answer: tuple[str, str] | None = None,
    ring_timeout: float = MOVE_RING_TIMEOUT,
) -> Move:
    """Ring ``device_id`` to take over ``user_id``'s call; raises :class:`MoveRefused` when it cannot start."""
    old = live_leg(b2bua, user_id, call_id)
    if old is None:
        raise MoveRefused("no-call")
    if old.device_id == device_id:
        raise MoveRefused("same-device")
    call = old.call
    previous = call.controller
    # a move or a transfer is running; an origination still waiting to report its click steps aside
    if previous is not None and not isinstance(previous, Origination):
        raise MoveRefused("move-running")
    bindings = b2bua.location.bindings(device_id)
    if bindings and any(b.user_id != user_id for b in bindings):
        raise MoveRefused("not-your-device")
    if not bindings:
        raise MoveRefused("not-registered")
    binding = max(bindings, key=lambda b: (b.q or 0.0, b.registered_at))
    [target] = b2bua.targets_for([binding])
    peer = b2bua.other_leg(old)
    assert peer is not None  # live_leg answers only two-party calls
    move = Move(b2bua, call, old, peer, device_id, on_result, previous)
    call.controller = move
    move.start(target, auto_answer, ring_timeout, now)
    return move


def _peer_number(call: Call, peer: Leg) -> str:
    """The peer's number as the target will show it."""
    if peer is call.a:
        return call.from_number
    return call.to_number


@dataclass(eq=False)
class Move(CallController):
    """One running move of ``call`` from the ``old`` leg to ``target_device``; ``helper`` rings the target.
    The controller of both calls while it runs (``previous``, the call's own controller, comes back)."""

    b2bua: B2BUA
    call: Call
    old: Leg
    peer: Leg
    target_device: str
    on_result: OnResult | None
    previous: CallController | None = None
    helper: Call | None = None
    phase: Phase = Phase.RINGING
    offer: bytes = b""  # the target's offer (from its 2xx)
    relayed: bool = False  # the target's media goes through rtpengine
    reinvite: Request | None = None
    events: list[str] = field(default_factory=list)

    def start(self, target: Target, auto_answer: tuple[str, str] | None, ring_timeout: float, now: float) -> None:
        b2bua = self.b2bua
        number = _peer_number(self.call, self.peer) or "anonymous"
        self._event("moving")
        helper = Call(
            id=uuid.uuid4().hex,
            kind="internal",
            started_at=now,
            from_number=number,
            to_number="",
            callee_user_id=target.user_id,
            controller=self,
        )
        leg = Leg(helper, "b", True, target.dest, device_id=target.device_id, user_id=target.user_id,
                  profile=target.profile)
        headers = Headers()
        for hop in target.route:
            headers.add("Route", hop)
        headers.add("From", f"{quote(number)} <sip:{number}@{b2bua.config.domain}>;tag={leg.local_tag}")
        headers.add("To", target.to)
        headers.add("Call-ID", f"{uuid.uuid4().hex}@callto")
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", b2bua.contact(target.dest.transport))
        headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE")
        if auto_answer is not None:
            headers.add(*auto_answer)
        leg.invite = Request("INVITE", target.ruri, headers)
        helper.b.append(leg)
        helper.ring_deadline = now + ring_timeout
        self.helper = helper
        b2bua.add_call(helper)
        if not b2bua.send_invite(leg, now):  # could not even be sent
            self._fail(now, "unreachable")

    # --- hooks the B2BUA calls (Call.controller of the helper call and of the moved call) ------------
    def leg_answered(self, leg: Leg, response: Response, now: float) -> bool:
        """The target answered with its offer: send it to the peer (through the media relay when needed)."""
        if leg.call is not self.helper:
            return self.previous is not None and self.previous.leg_answered(leg, response, now)
        b2bua = self.b2bua
        self.offer = response.body if response.content_type == "application/sdp" else b""
        if not self.offer:
            self._fail(now, "no-offer")
            return True
        if self.call.state is not CallState.ANSWERED or self.peer.state is not LegState.CONFIRMED:
            self._fail(now, "call-ended")
            return True
        self.phase = Phase.SWITCHING
        source, toward = leg.profile or MediaProfile.PLAIN, self.peer.profile or MediaProfile.PLAIN
        if source is toward:
            self._reinvite(self.offer, now)
            return True
        if not b2bua.media_can_relay():
            self._fail(now, "media-failed")
            return True
        self.relayed = True
        if self.call.media_active:
            b2bua.release_media(self.call)  # the old device's session goes; the target's is the call's own
        b2bua.ask_media_offer(self.call.id, leg.media_tag, self.offer, source, toward, self._offer_rewritten)
        return True

    def before_end(self, call: Call, status: int, reason: str | None, cause: str, now: float) -> bool:
        """The helper call or the moved call is ending before the switch-over: the move failed."""
        if call is self.call:
            previous = self.previous
            if self.phase is not Phase.DONE:  # a party hung up while the target rang: drop the target too
                self._done()
                self._drop_helper(now)
                self._result(False, "call-ended")
            return previous is not None and previous.before_end(call, status, reason, cause, now)
        if self.phase is not Phase.DONE:
            self._done()
            self._drop_helper(now)
            self._result(False, _reason_of(status, cause))
        else:
            self._drop_helper(now)
        return True  # the helper call leaves no record

    # --- switching the peer over ---------------------------------------------------------------------
    def _offer_rewritten(self, sdp: str | None, why: str, now: float) -> None:
        if self.phase is not Phase.SWITCHING:
            return
        if sdp is None:
            log.warning("media relay offer for the move of %s failed: %s", self.call.id, why)
            self._fail(now, "media-failed")
            return
        self.call.media_active = True
        self._reinvite(sdp.encode(), now)

    def _reinvite(self, offer: bytes, now: float) -> None:
        peer = self.peer
        if peer.state is not LegState.CONFIRMED or peer.dialog is None:
            self._fail(now, "peer-refused")
            return
        request = peer.dialog.request("INVITE", body=offer, content_type="application/sdp")
        request.headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE")
        request.headers.add("Contact", self.b2bua.contact(peer.dest.transport))
        self.reinvite = request
        if not self.b2bua.send_in_dialog(peer, request, now, self._peer_answered):
            self._fail(now, "peer-refused")

    def _peer_answered(self, response: Response | None, now: float) -> None:
        b2bua, helper, peer, request = self.b2bua, self.helper, self.peer, self.reinvite
        assert helper is not None and request is not None
        dialog: Dialog | None = peer.dialog
        if response is not None and response.status < 300 and dialog is not None:
            dialog.refresh_target(response)
            b2bua.send_ack(peer, dialog, request.cseq.seq)  # also when the move was abandoned meanwhile
        if self.phase is not Phase.SWITCHING:
            return  # the call's own end sends the BYEs
        if response is None or response.status >= 300:
            self._fail(now, "peer-refused")
            return
        answer = response.body if response.content_type == "application/sdp" else b""
        target = helper.winner
        assert target is not None
        if not self.relayed:
            self._complete(answer, now)
            return
        b2bua.ask_media_answer(
            self.call.id,
            target.media_tag,
            peer.media_tag,
            answer,
            peer.profile or MediaProfile.PLAIN,
            target.profile or MediaProfile.PLAIN,
            self._answer_rewritten,
        )

    def _answer_rewritten(self, sdp: str | None, why: str, now: float) -> None:
        if self.phase is not Phase.SWITCHING:
            return
        if sdp is None:
            log.warning("media relay answer for the move of %s failed: %s", self.call.id, why)
            self._fail(now, "media-failed")
            return
        self._complete(sdp.encode(), now)

    def _complete(self, answer: bytes, now: float) -> None:
        """The peer talks to the target: the target's leg takes the old one's place, the old one gets a BYE."""
        b2bua, helper, call, old = self.b2bua, self.helper, self.call, self.old
        assert helper is not None and helper.winner is not None
        target = helper.winner
        b2bua.ack(target, answer)
        if not self.relayed and call.media_active:
            b2bua.release_media(call)  # the old device needed the media relay, the target does not
        self._done()
        b2bua.hand_over_leg(target, call, "a" if call.a is old else "b")
        if call.a is not old:
            call.b = [b for b in call.b if b is not old]
        if target.device_id and target.device_id not in call.devices_rung:
            call.devices_rung.append(target.device_id)
        b2bua.bye(old, now)
        b2bua.discard(helper, now)
        b2bua.keep_answered(call)
        self._event("moved", from_device_id=old.device_id)
        self._result(True, "moved")

    # --- helpers --------------------------------------------------------------------------------------
    def _fail(self, now: float, cause: str) -> None:
        """The move failed before the switch-over: the target's leg ends, the call stays where it was."""
        if self.phase is Phase.DONE:
            return
        self._done()
        self._drop_helper(now)
        self._result(False, cause)

    def _drop_helper(self, now: float) -> None:
        """End what is left of the helper call (a target that answered still needs an answer to its offer
        before its BYE) and forget it without a record."""
        helper, b2bua = self.helper, self.b2bua
        if helper is None or helper.id not in b2bua.calls:
            return
        for leg in helper.b:
            if leg.state is LegState.CONFIRMED and leg.ack is None and self.offer:
                b2bua.ack(leg, reject_all(self.offer))
            b2bua.hang_up_leg(leg, now)
        b2bua.discard(helper, now)

    def _event(self, kind: str, **extra: str | None) -> None:
        self.events.append(kind)
        self.b2bua.emit(
            kind, self.call, device_id=self.target_device, user_id=self.old.user_id,
            **({"from_device_id": self.old.device_id} | extra),
        )

    def _result(self, ok: bool, reason: str) -> None:
        if not ok:
            self._event("move_failed", reason=reason)
        on_result, self.on_result = self.on_result, None
        if on_result is not None:
            on_result(ok, reason)

    def _done(self) -> None:
        self.phase = Phase.DONE
        if self.call.controller is self:
            self.call.controller = self.previous


def _reason_of(status: int, cause: str) -> str:
    """A stable reason id for why the target did not take the call."""
    if cause in ("no-answer", "media-failed", "peer-refused", "unreachable", "no-offer", "call-ended"):
        return cause
    if status in (486, 600):
        return "busy"
    if status in (603, 403):
        return "declined"
    if status in (408, 480, 487):
        return "no-answer"
    if status == 503:
        return "unreachable"
    return "failed"
