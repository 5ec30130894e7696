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

Uses the B2BUA only through its public controller interface (``live_leg``, ``ring_device``, ``reoffer``,
``ack_leg``, ``adopt_leg``, ``end_call``, ``media_*``, ``call_event``). Sans-IO: every entry takes ``now``;
media answers come back through the B2BUA's ``then`` callbacks.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callto.sip.b2bua import Call, CallState, Leg, LegState
from callto.sip.message import Response
from callto.sip.ports import Binding
from callto.sip.sdp import reject_all

if TYPE_CHECKING:
    from callto.sip.b2bua import B2BUA

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
    old = b2bua.live_leg(user_id, call_id)
    if old is None:
        raise MoveRefused("no-call")
    if old.device_id == device_id:
        raise MoveRefused("same-device")
    call = old.call
    if call.controller is not None:  # a move or a transfer is running
        raise MoveRefused("move-running")
    bindings = b2bua.location.bindings(device_id)
    if bindings and any(b.user_id != user_id for b in bindings):
        raise MoveRefused("not-your-device")
    if not bindings:
        raise MoveRefused("not-registered")
    binding = max(bindings, key=lambda b: (b.q or 0.0, b.registered_at))
    peer = b2bua.other_leg(old)
    assert peer is not None  # live_leg answers only two-party calls
    move = Move(b2bua, call, old, peer, device_id, on_result)
    call.controller = move
    move.start(binding, auto_answer, ring_timeout, now)
    return move


def _peer_number(call: Call, peer: Leg) -> str:
    """The peer's number as the target will show it."""
    if peer is call.a:
        return call.from_number
    return call.destination or call.to_number


@dataclass(eq=False)
class Move:
    """One running move of ``call`` from the ``old`` leg to ``target_device``; ``helper`` rings the target."""

    b2bua: B2BUA
    call: Call
    old: Leg
    peer: Leg
    target_device: str
    on_result: OnResult | None
    helper: Call | None = None
    phase: Phase = Phase.RINGING
    offer: bytes = b""  # the target's offer (from its 2xx)
    relayed: bool = False  # the target's media goes through rtpengine
    events: list[str] = field(default_factory=list)

    def start(self, binding: Binding, auto_answer: tuple[str, str] | None, ring_timeout: float, now: float) -> None:
        b2bua = self.b2bua
        number = _peer_number(self.call, self.peer) or "anonymous"
        headers = [auto_answer] if auto_answer is not None else []
        self._event("moving")
        self.helper = b2bua.ring_device(
            self, binding, f"sip:{number}@{b2bua.config.domain}", number, headers, ring_timeout, now
        )
        leg = self.helper.b[0]
        if leg.state is LegState.ENDED:  # could not even be sent
            b2bua.end_call(self.helper, now, 503, "Service Unavailable", "unreachable")

    # --- hooks the B2BUA calls (Call.controller) ------------------------------------------------------
    def ringing(self, leg: Leg, response: Response, now: float) -> None:
        """The target rings: nothing changes for the call yet."""

    def answered(self, leg: Leg, response: Response, now: float) -> None:
        """The target answered with its offer: send it to the peer (through rtpengine when needed)."""
        b2bua = self.b2bua
        assert self.helper is not None
        self.offer = response.body if response.content_type == "application/sdp" else b""
        if not self.offer:
            b2bua.end_call(self.helper, now, 488, "Not Acceptable Here (no offer)", "no-offer")
            return
        if self.call.state is not CallState.ANSWERED or self.peer.state is not LegState.CONFIRMED:
            b2bua.end_call(self.helper, now, 487, "Request Terminated", "call-ended")
            return
        self.phase = Phase.SWITCHING
        if not b2bua.media_needed(leg, self.peer):
            self._reinvite(self.offer, now)
            return
        if not b2bua.media_ready():
            b2bua.end_call(self.helper, now, 488, "Not Acceptable Here (media relay unavailable)", "media-failed")
            return
        self.relayed = True
        b2bua.media_offer(self.call, leg, self.peer, self.offer, self._offer_rewritten)

    def before_end(self, call: Call, status: int, reason: str | None, cause: str, now: float) -> bool:
        """The helper call or the moved call is ending before the switch-over: the move failed."""
        if self.phase is Phase.DONE:
            return False
        helper = self.helper
        self._done()
        if call is self.call:  # a party hung up while the target rang: drop the target too
            if helper is not None and helper.state is not CallState.ENDED:
                self._ack_refusing(helper)
                self.b2bua.end_call(helper, now, 487, "Request Terminated", "call-ended")
            self._result(False, "call-ended")
            return False
        self._ack_refusing(call)
        self._result(False, _reason_of(status, cause))
        return False

    # --- switching the peer over ---------------------------------------------------------------------
    def _offer_rewritten(self, sdp: bytes | None, now: float) -> None:
        if self.phase is not Phase.SWITCHING or self.helper is None:
            return
        if sdp is None:
            self.b2bua.end_call(self.helper, now, 488, "Not Acceptable Here (media relay failed)", "media-failed")
            return
        self._reinvite(sdp, now)

    def _reinvite(self, offer: bytes, now: float) -> None:
        assert self.helper is not None
        if not self.b2bua.reoffer(self.peer, offer, now, self._peer_answered):
            self.b2bua.end_call(self.helper, now, 503, "Service Unavailable", "peer-refused")

    def _peer_answered(self, response: Response | None, now: float) -> None:
        b2bua, helper = self.b2bua, self.helper
        assert helper is not None
        if self.phase is not Phase.SWITCHING:
            return  # the move was abandoned meanwhile; the call's own end sends the BYEs
        if response is None or response.status >= 300:
            b2bua.end_call(helper, now, 0, None, "peer-refused")
            return
        answer = response.body if response.content_type == "application/sdp" else b""
        target = helper.winner
        assert target is not None
        if not self.relayed:
            self._complete(answer, now)
            return
        b2bua.media_answer(self.call, self.peer, target, answer, self._answer_rewritten)

    def _answer_rewritten(self, sdp: bytes | None, now: float) -> None:
        if self.phase is not Phase.SWITCHING or self.helper is None:
            return
        if sdp is None:
            self.b2bua.end_call(self.helper, now, 488, "Not Acceptable Here (media relay failed)", "media-failed")
            return
        self._complete(sdp, now)

    def _complete(self, answer: bytes, now: float) -> None:
        """The peer talks to the target: the target's leg takes the old one's place, the old one gets a BYE."""
        b2bua, helper, call = self.b2bua, self.helper, self.call
        assert helper is not None and helper.winner is not None
        target = helper.winner
        b2bua.ack_leg(target, answer)
        if not self.relayed:
            b2bua.release_media(call)  # the old device needed rtpengine, the target does not
        self._done()
        old_device = self.old.device_id
        b2bua.adopt_leg(call, target, self.old, now)
        self._event("moved", from_device_id=old_device)
        self._result(True, "moved")

    # --- helpers --------------------------------------------------------------------------------------
    def _ack_refusing(self, helper: Call) -> None:
        """A target that answered still needs an answer to its offer before the BYE that ends it."""
        winner = helper.winner
        if winner is not None and self.offer:
            self.b2bua.ack_leg(winner, reject_all(self.offer))

    def _event(self, kind: str, **extra: str | None) -> None:
        self.events.append(kind)
        self.b2bua.call_event(
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
            self.call.controller = None


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
