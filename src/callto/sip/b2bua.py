"""The call logic of the switch: a back-to-back user agent driven by endpoint events, a clock passed in,
and media answers fed back.

Owns every call the switch carries: the fork (first 2xx wins, the other branches get CANCEL, or ACK+BYE
when two answer), the ring timeout (480), CANCEL from the caller, BYE from either side, the 2xx/ACK
handshake end to end, call records and call state events. Its parts, each a module of its own:
:mod:`~callto.sip.calls` (the data and the book of calls), :mod:`~callto.sip.call_states` (the transition
tables), :mod:`~callto.sip.routing` (authentication, routing, the fork), :mod:`~callto.sip.legs` (what is
sent on one leg), :mod:`~callto.sip.dialog_relay` (requests inside a call), :mod:`~callto.sip.ending`
(teardown and the record), :mod:`~callto.sip.answers` (what the answers on a leg mean for its call) and
:mod:`~callto.sip.media_effects` (media as effects).

Sans-IO in full: every entry point takes ``now``; nothing awaits, spawns or reads a clock. When a WebRTC
leg meets a plain RTP leg, the SDP must go through the media relay: the B2BUA queues an effect
(``MediaOfferNeeded`` / ``MediaAnswerNeeded`` / ``MediaReleaseNeeded``) which its driver takes with
:meth:`B2BUA.next_media_request` and answers with :meth:`B2BUA.media_ready` or :meth:`B2BUA.media_failed`
(``now`` passed in); :mod:`callto.sip.media_driver` does it with rtpengine on asyncio.

Controllers (features driving calls) use only the public interface below; a call they drive names them in
``Call.controller`` (a :class:`~callto.sip.calls.CallController`, whose hooks may take a leg's ringing,
answer or failure over) and out-of-dialog methods reach them through :meth:`B2BUA.handle_method`.
:mod:`callto.sip.origination` (third-party call control), :mod:`callto.sip.transfer` (blind transfer) and
:mod:`callto.sip.move` (moving a live call to another device of the same user) are three. The interface, by use:

- book: ``calls``, ``add_call(call)``, ``leg_for_dialog(call_id, tag)``, ``other_leg(leg)``,
  ``user_call_state(user_id)``;
- routing: ``authenticate(request, tx_id, now)``, ``user_for(extension)``, ``targets_for(bindings)``,
  ``route_dialed(call, account, dialed, display, now)``, ``ring_user(call, user_id, display, now)``,
  ``ring_targets(call, targets, from_uri, display, now)``, ``call_trunk(call, trunk, number, now)``;
- legs: ``send_invite(leg, now)``, ``ack(leg, body)``, ``bye(leg, now)``, ``hang_up_leg(leg, now)``,
  ``send_in_dialog(leg, request, now, on_final)`` (a re-INVITE, NOTIFY...: ``on_final(response|None, now)``),
  ``hand_over_leg(leg, to_call, role)`` (a leg changes call; the old call keeps an ended stand-in),
  ``contact(transport)``;
- media: ``media_can_relay()``, ``ask_media_offer(call_id, from_tag, sdp, source, target, then)``,
  ``ask_media_answer(call_id, from_tag, to_tag, sdp, source, target, then)``, ``release_media(call)``;
  ``then(sdp | None, reason, now)`` runs when the driver feeds the answer back;
- state: ``bridged(call, now, **event)`` then ``keep_answered(call)`` (the call is answered),
  ``end(call, now, status, reason, disposition, cause)``, ``finish(call, now, disposition, cause)``,
  ``discard(call, now)`` (a helper call that leaves no record), ``emit(kind, call, **data)``.

Moving a live call (:mod:`callto.sip.move`) needs exactly these: a helper call rings the new device (its
INVITE built from ``targets_for(location.bindings(device))``, then ``add_call`` + ``send_invite``, so it can
carry the vendor's auto-answer header) and names the move in ``Call.controller`` (``leg_answered`` takes the
new leg's answer; on failure ``before_end`` hangs up what is left with ``hang_up_leg``, ``discard``s the
helper call and returns True, the original call untouched); on the answer the other party gets a re-INVITE
with the new leg's SDP by ``send_in_dialog`` (through ``ask_media_offer`` / ``ask_media_answer`` when
``leg.profile`` differs from the other party's), ``ack`` completes the new leg, ``hand_over_leg`` moves it
into the original call in place of the old one, ``bye`` ends the old leg, and ``discard`` drops the helper
call, so history keeps one record: the original call's.

Auto-answer headers (``Call-Info: answer-after``, ``Alert-Info`` auto-answer variants, RFC 5373
``Answer-Mode``) arriving from outside are stripped from every INVITE the switch relays.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Protocol

from callto.sip.answers import ACK_TIMEOUT, LegAnswers
from callto.sip.auth import DigestServer
from callto.sip.call_states import (
    CallInput,
    CallState,
    IllegalTransition,
    LegState,
    move_call,
)
from callto.sip.calls import (
    Call,
    CallBook,
    CallController,
    CallRecord,
    Disposition,
    Leg,
    Target,
    looks_like_number,
)
from callto.sip.dialog import Dialog
from callto.sip.dialog_relay import InDialogRelay
from callto.sip.ending import CallEnding
from callto.sip.endpoint import (
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    SipEndpoint,
    TransactionTimedOut,
)
from callto.sip.errors import SipLocalError, SipMessageError
from callto.sip.legs import B2BUAConfig, LegSignalling
from callto.sip.media import MediaProfile, answer_flags, offer_flags
from callto.sip.media_effects import MediaContinuation, MediaEffect, MediaRelayStatus, MediaRequests
from callto.sip.message import Request, Response
from callto.sip.ports import ActiveCall, ActiveCallStore, Binding, Credentials, SipAccount
from callto.sip.recovery import snapshot
from callto.sip.routing import CLICK_HEADER, CallRouting, strip_auto_answer
from callto.sip.trunk import TrunkConfig, TrunkRouter

__all__ = [
    "ACK_TIMEOUT",
    "B2BUA",
    "CLICK_HEADER",
    "B2BUAConfig",
    "Call",
    "CallController",
    "CallRecord",
    "CallState",
    "Disposition",
    "IllegalTransition",
    "Leg",
    "LegState",
    "Target",
    "looks_like_number",
    "strip_auto_answer",
]

log = logging.getLogger(__name__)

DEFAULT_RING_TIMEOUT = 30.0

CallEventHandler = Callable[[str, dict[str, Any]], None]
CallRecordHandler = Callable[[CallRecord], None]
# told when a call is answered, with what its record needs (its history entry exists from then on)
CallAnsweredHandler = Callable[[ActiveCall], None]
MayCall = Callable[[SipAccount, str], bool]
# a feature's handler of an out-of-dialog method or of REFER (see B2BUA.handle_method)
MethodHandler = Callable[[RequestReceived, float], None]


class Location(Protocol):
    """The registrar's view of where devices are (``callto.sip.registrar.Registrar`` satisfies it)."""

    def bindings_for_user(self, user_id: str) -> list[Binding]: ...

    def bindings_for_extension(self, extension: str) -> list[Binding]: ...

    def bindings(self, device_id: str) -> list[Binding]: ...


class B2BUA:
    """One instance per switch; feed it every endpoint event that is not a REGISTER."""

    def __init__(
        self,
        config: B2BUAConfig,
        endpoint: SipEndpoint,
        credentials: Credentials,
        location: Location,
        digest: DigestServer,
        *,
        user_for_extension: Callable[[str], str | None] | None = None,
        may_call: MayCall | None = None,
        route_did: Callable[[str, str], str | None] | None = None,
        trunks: TrunkRouter | None = None,
        media: MediaRelayStatus | None = None,
        on_call_record: CallRecordHandler | None = None,
        on_call_event: CallEventHandler | None = None,
        active_calls: ActiveCallStore | None = None,
        node: str = "local",
        on_call_answered: CallAnsweredHandler | None = None,
    ) -> None:
        self.config = config
        self.on_call_answered = on_call_answered
        # Answered calls are kept there (with ``node``) until they end, so a restart can end them.
        self.active_calls = active_calls
        self.node = node
        self.kept: set[str] = set()
        self.endpoint = endpoint
        self.credentials = credentials
        self.location = location
        self.digest = digest
        self.user_for_extension = user_for_extension
        self.may_call = may_call
        self.route_did = route_did
        self.trunks = trunks or TrunkRouter()
        self.media = media
        self.media_requests = MediaRequests()
        self.on_call_record = on_call_record
        self.on_call_event = on_call_event
        self.records: int = 0
        self.book = CallBook()
        self.calls = self.book.calls
        self.legs = LegSignalling(config, endpoint, self.book)
        self.routing = CallRouting(self)
        self.relay = InDialogRelay(self)
        self.ending = CallEnding(self)
        self.answers = LegAnswers(self)
        self._methods: dict[str, MethodHandler] = {}
        self._dispatch: dict[type, Callable[[Any, float], bool]] = {
            RequestReceived: self._on_request,
            ResponseReceived: self.answers.response,
            CancelReceived: self._on_cancel,
            TransactionTimedOut: self.answers.timeout,
        }

    # =====================================================================================================
    # entry points (the driver's)
    # =====================================================================================================
    def handle_event(self, event: Event, now: float) -> bool:
        """Process one endpoint event; False when it is not ours (the caller may answer it)."""
        handler = self._dispatch.get(type(event))
        if handler is None:
            return False
        try:
            return handler(event, now)
        except (SipMessageError, SipLocalError) as exc:
            log.warning("b2bua could not handle %s: %s", type(event).__name__, exc)
            return True

    def handle_method(self, method: str, handler: MethodHandler) -> None:
        """``handler`` answers ``method`` (REFER in or out of a dialog, NOTIFY out of one)."""
        self._methods[method] = handler

    def get_timer(self) -> float | None:
        return self.book.next_deadline()

    def handle_timer(self, now: float) -> None:
        for call in self.book.due(now):
            if call.retransmit_at is not None and call.retransmit_at <= now:
                self.legs.retransmit_final(call, now)
            if call.ring_deadline is not None and call.ring_deadline <= now:
                call.ring_deadline = None
                if call.state in (CallState.ROUTING, CallState.RINGING):
                    self.end(call, now, 480, "Temporarily Unavailable (no answer)", Disposition.MISSED, "no-answer")
            if call.ack_deadline is not None and call.ack_deadline <= now:
                call.ack_deadline = None
                call.retransmit_at = None
                self.end(call, now, 0, "", Disposition.ANSWERED, "no-ack")

    def next_media_request(self) -> MediaEffect | None:
        """The next media effect for the driver to carry out, or None."""
        return self.media_requests.next()

    def media_ready(self, request_id: int, sdp: str, now: float) -> bool:
        """The media relay rewrote the SDP of ``request_id``; False when the request is unknown."""
        return self._resolve(request_id, sdp, "", now)

    def media_failed(self, request_id: int, reason: str, now: float) -> bool:
        """The media relay could not do ``request_id``; the call it was for fails as it must."""
        return self._resolve(request_id, None, reason, now)

    def _resolve(self, request_id: int, sdp: str | None, reason: str, now: float) -> bool:
        try:
            return self.media_requests.resolve(request_id, sdp, reason, now)
        except (SipMessageError, SipLocalError) as exc:
            log.warning("b2bua could not take media result %s: %s", request_id, exc)
            return True

    def connection_lost(self, conn_id: int, now: float) -> None:
        """A stream (TCP, WebSocket) closed: calls with a leg on it end, the other side gets BYE/CANCEL."""
        self.ending.connection_lost(conn_id, now)

    def hangup(self, call_id: str, now: float) -> bool:
        call = self.calls.get(call_id)
        if call is None or call.state is CallState.ENDED:
            return False
        disposition = Disposition.ANSWERED if call.state is CallState.ANSWERED else Disposition.CANCELLED
        self.end(call, now, 487, "Request Terminated", disposition, "hangup-requested")
        return True

    # =====================================================================================================
    # the public interface of controllers (see the module docstring)
    # =====================================================================================================
    def user_call_state(self, user_id: str) -> str:
        """``busy`` (talking, or placing a call), ``ringing`` (one of their devices rings) or ``idle``."""
        ringing = False
        for call in self.calls.values():
            if call.state is CallState.ENDED:
                continue
            if call.state is CallState.ANSWERED:
                if user_id in (call.caller_user_id, call.winner.user_id if call.winner else None):
                    return "busy"
                continue
            if call.caller_user_id == user_id:
                a = call.a
                if call.kind != "originate" or (a is not None and a.state is LegState.CONFIRMED):
                    return "busy"
                if a is not None and a.ringing:
                    ringing = True
            if any(leg.user_id == user_id and leg.state is not LegState.ENDED for leg in call.b):
                ringing = True
        return "ringing" if ringing else "idle"

    def add_call(self, call: Call) -> None:
        self.calls[call.id] = call

    def leg_for_dialog(self, call_id: str, tag: str) -> Leg | None:
        return self.book.dialogs.get((call_id, tag))

    def other_leg(self, leg: Leg) -> Leg | None:
        call = leg.call
        if leg is call.a:
            return call.winner
        if leg is call.winner:
            return call.a
        return None

    def authenticate(self, request: Request, tx_id: int, now: float) -> SipAccount | None:
        """The device that signed ``request``, or None after answering it (407 challenge, 400, 403)."""
        return self.routing.authenticate(request, tx_id, now)

    def user_for(self, extension: str) -> str | None:
        return self.routing.user_for(extension)

    def targets_for(self, bindings: list[Binding], skip_device: str | None = None) -> list[Target]:
        return self.routing.targets_for(bindings, skip_device)

    def route_dialed(self, call: Call, account: SipAccount, dialed: str, display: str | None, now: float) -> None:
        self.routing.route_dialed(call, account, dialed, display, now)

    def ring_user(self, call: Call, user_id: str, display: str | None, now: float) -> None:
        self.routing.ring_user(call, user_id, display, now)

    def ring_targets(self, call: Call, targets: list[Target], from_uri: str, display: str | None, now: float) -> None:
        self.routing.fork(call, targets, from_uri, display, now)

    def call_trunk(self, call: Call, trunk: TrunkConfig, number: str, now: float) -> None:
        self.routing.call_trunk(call, trunk, number, now)

    def send_invite(self, leg: Leg, now: float) -> bool:
        return self.legs.send_invite(leg, now)

    def ack(self, leg: Leg, body: bytes) -> None:
        self.legs.ack(leg, body)

    def bye(self, leg: Leg, now: float) -> None:
        self.legs.bye(leg, now)

    def hang_up_leg(self, leg: Leg, now: float) -> None:
        self.legs.hang_up(leg, now)

    def contact(self, transport: str) -> str:
        return self.legs.contact(transport)

    def send_in_dialog(
        self, leg: Leg, request: Request, now: float, on_final: Callable[[Response | None, float], None]
    ) -> bool:
        """Send ``request`` (built from ``leg.dialog``) to ``leg``; False when it cannot leave."""
        try:
            tx_id = self.endpoint.send_request(request, leg.dest, now)
        except SipLocalError as exc:
            log.debug("%s on %s not sent: %s", request.method, leg.call.id, exc)
            return False
        self.book.owned[tx_id] = on_final
        return True

    def send_ack(self, leg: Leg, dialog: Dialog, seq: int) -> None:
        """ACK a 2xx to a re-INVITE a controller sent on ``leg``."""
        self.endpoint.send_stateless(dialog.ack(seq), leg.dest)

    def hand_over_leg(self, leg: Leg, to_call: Call, role: str) -> None:
        """``leg`` (and its dialog) now belongs to ``to_call`` as its ``role`` leg; its old call keeps an
        ended stand-in (same device, for the record)."""
        old = leg.call
        stand_in = dataclasses.replace(leg, state=LegState.ENDED, dialog=None)
        if old.a is leg:
            old.a = stand_in
        if old.winner is leg:
            old.winner = stand_in
        old.b = [stand_in if b is leg else b for b in old.b]
        leg.call = to_call
        leg.role = role
        if role == "a":
            to_call.a = leg
        else:
            to_call.b.append(leg)
            to_call.winner = leg

    def media_can_relay(self) -> bool:
        return self.media is not None and self.media.available()

    def ask_media_offer(
        self,
        call_id: str,
        from_tag: str,
        sdp: bytes,
        source: MediaProfile,
        target: MediaProfile,
        then: MediaContinuation,
    ) -> int:
        return self.media_requests.offer(call_id, from_tag, sdp.decode(), offer_flags(source, target), then)

    def ask_media_answer(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str,
        sdp: bytes,
        source: MediaProfile,
        target: MediaProfile,
        then: MediaContinuation,
    ) -> int:
        flags = answer_flags(source, target)
        return self.media_requests.answer(call_id, from_tag, to_tag, sdp.decode(), flags, then)

    def release_media(self, call: Call) -> None:
        call.media_active = False
        if self.media is None:
            return
        self.media_requests.release(call.id, call.a.media_tag if call.a is not None else "a")

    def media_relay_failed(self, call: Call, reason: str, now: float) -> None:
        if call.state is CallState.ENDED:
            return
        self.end(
            call,
            now,
            488,
            "Not Acceptable Here (media relay failed)",
            Disposition.FAILED,
            "media-failed",
            warning=f"media relay failed: {reason}",
        )

    def bridged(self, call: Call, now: float, **event: Any) -> None:
        """``call`` is answered (its winner talks to its a leg); ``keep_answered`` follows once both legs'
        dialogs are confirmed."""
        move_call(call, CallInput.ANSWER)
        call.answered_at = now
        winner = call.winner
        self.emit("answered", call, device_id=winner.device_id if winner else None, **event)

    def end(
        self,
        call: Call,
        now: float,
        status: int,
        reason: str | None,
        disposition: Disposition,
        cause: str,
        *,
        warning: str | None = None,
    ) -> None:
        """Tear down every leg still alive, then record (a controller's ``before_end`` may keep it)."""
        self.ending.end(call, now, status, reason, disposition, cause, warning=warning)

    def finish(self, call: Call, now: float, disposition: Disposition, cause: str) -> None:
        self.ending.finish(call, now, disposition, cause)

    def discard(self, call: Call, now: float) -> None:
        """Forget a helper call whose legs went elsewhere, without a record or an event."""
        if call.state is not CallState.ENDED:
            move_call(call, CallInput.END)
        call.ring_deadline = call.ack_deadline = call.retransmit_at = None
        self.book.forget(call, now)

    def keep_answered(self, call: Call) -> None:
        """Keep an answered call outside the process (its dialogs, what its record needs) until it ends,
        and hand it to ``on_call_answered``."""
        if self.active_calls is None and self.on_call_answered is None:
            return
        active = snapshot(call, self.node)
        if active is None:
            return
        if self.active_calls is not None:
            self.active_calls.save(active)
            self.kept.add(call.id)
        if self.on_call_answered is not None:
            try:
                self.on_call_answered(active)
            except Exception:
                log.exception("on_call_answered failed")

    def emit(self, kind: str, call: Call, **extra: Any) -> None:
        if self.on_call_event is None:
            return
        data: dict[str, Any] = {
            "call_id": call.id,
            "direction": call.kind,
            "caller_user_id": call.caller_user_id,
            "caller_device_id": call.caller_device_id,
            "callee_user_id": call.callee_user_id,
            "from": call.from_number,
            "to": call.to_number,
            **extra,
        }
        if call.click_id:
            data["click_id"] = call.click_id
        try:
            self.on_call_event(kind, data)
        except Exception:
            log.exception("on_call_event failed")

    # =====================================================================================================
    # requests
    # =====================================================================================================
    def _on_request(self, event: RequestReceived, now: float) -> bool:
        request = event.request
        if request.method == "ACK":
            self._on_ack(request, now)
            return True
        if event.tx_id is None:
            return False
        method = request.method
        if method == "REFER" or (method == "NOTIFY" and request.to.tag is None):
            handler = self._methods.get(method)
            if handler is not None:
                handler(event, now)
                return True
        to_tag = request.to.tag
        if to_tag is not None:
            leg = self.book.dialogs.get((request.call_id, to_tag))
            if leg is None:
                self.endpoint.reply(event.tx_id, 481, now)
                return True
            self.relay.request(leg, request, event.tx_id, now)
            return True
        if method == "INVITE":
            self.routing.new_invite(request, event.source, event.tx_id, now)
            return True
        if method == "BYE":
            self.endpoint.reply(event.tx_id, 481, now)
            return True
        return False

    def _on_ack(self, request: Request, now: float) -> None:
        leg = self.book.dialogs.get((request.call_id, request.to.tag or ""))
        if leg is None:
            return
        call = leg.call
        if leg is call.a and not leg.uac:
            call.retransmit_at = None
            call.final_to_a = None
            call.ack_deadline = None
            winner = call.winner
            if winner is not None and winner.ack is None and winner.state is LegState.CONFIRMED:
                body = request.body if request.content_type == "application/sdp" else b""
                self.legs.ack(winner, body)

    def _on_cancel(self, event: CancelReceived, now: float) -> bool:
        leg = self.book.server.get(event.tx_id)
        if leg is None:
            return False
        self.end(leg.call, now, 487, None, Disposition.CANCELLED, "caller-cancelled")
        return True
