"""In-dialog relay: requests inside an answered call go from one leg's dialog to the other's.

Owns :class:`InDialogRelay`: BYE from either side (the call ends), re-INVITE (through the media relay
when the call's legs carry media differently: a :class:`~callto.sip.media_effects.MediaOfferNeeded` for
the offer, a :class:`~callto.sip.media_effects.MediaAnswerNeeded` for the answer), INFO / UPDATE without
SDP / OPTIONS / MESSAGE / NOTIFY relayed as they are, the final answer carried back, 491 on glare and
501 for the rest. Sans-IO: media answers come back through the B2BUA's ``media_ready`` with ``now``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callto.sip.call_states import CallState, LegInput, LegState, move_leg
from callto.sip.calls import Call, Disposition, Leg
from callto.sip.errors import SipLocalError
from callto.sip.media import MediaProfile, answer_flags, offer_flags
from callto.sip.message import Request, Response

if TYPE_CHECKING:
    from callto.sip.b2bua import B2BUA

log = logging.getLogger(__name__)


@dataclass
class Relay:
    """A request relayed from ``origin`` to ``target`` inside a call, waiting for its final answer."""

    call: Call
    origin: Leg
    target: Leg
    server_tx: int
    method: str
    request: Request


class InDialogRelay:
    def __init__(self, b2bua: B2BUA) -> None:
        self.b2bua = b2bua
        self.endpoint = b2bua.endpoint
        self.book = b2bua.book

    def request(self, leg: Leg, request: Request, tx_id: int, now: float) -> None:
        dialog = leg.dialog
        call = leg.call
        endpoint = self.endpoint
        assert dialog is not None
        if not dialog.accept_remote_seq(request):
            endpoint.reply(tx_id, 500, now, "Server Internal Error (CSeq out of order)")
            return
        method = request.method
        if method == "BYE":
            endpoint.reply(tx_id, 200, now)
            move_leg(leg, LegInput.ENDED)
            self.book.dialogs.pop(dialog.key, None)
            side = "caller" if leg is call.a else "callee"
            if call.kind == "originate":
                side = "device" if leg is call.a else "destination"
            self.b2bua.end(call, now, 0, None, Disposition.ANSWERED, f"{side}-hangup")
            return
        other = self.b2bua.other_leg(leg)
        if other is None or other.dialog is None or other.state is not LegState.CONFIRMED:
            if method == "INVITE" and call.state is not CallState.ANSWERED:
                endpoint.reply(tx_id, 491, now)
            else:
                endpoint.reply(tx_id, 481 if other is None else 491, now)
            return
        if method == "INVITE":
            dialog.refresh_target(request)
            if any(r.origin is leg or r.target is leg for r in self.book.relays.values() if r.method == "INVITE"):
                endpoint.reply(tx_id, 491, now)
                return
            body = request.body if request.content_type == "application/sdp" else b""
            if body and call.media_active:
                origin_profile = leg.profile or MediaProfile.PLAIN
                target_profile = other.profile or MediaProfile.PLAIN

                def reoffered(sdp: str | None, why: str, now: float) -> None:
                    if sdp is None:
                        endpoint.reply(tx_id, 488, now, f"Not Acceptable Here (media relay: {why})")
                        return
                    self.relay(call, leg, other, tx_id, request, sdp.encode(), now)

                self.b2bua.media_requests.offer(
                    call.id, leg.media_tag, body.decode(), offer_flags(origin_profile, target_profile), reoffered
                )
                return
            self.relay(call, leg, other, tx_id, request, body, now)
            return
        if method in ("INFO", "UPDATE", "OPTIONS", "MESSAGE", "NOTIFY"):
            if method == "UPDATE" and request.body:
                # an SDP in UPDATE would need the media relay and the offer/answer state: not supported
                endpoint.reply(tx_id, 488, now, "Not Acceptable Here (UPDATE with SDP)")
                return
            self.relay(call, leg, other, tx_id, request, request.body, now)
            return
        endpoint.reply(tx_id, 501, now)

    def relay(
        self, call: Call, origin: Leg, target: Leg, server_tx: int, request: Request, body: bytes, now: float
    ) -> None:
        assert target.dialog is not None
        ctype = request.headers.get("content-type") if body else None
        outgoing = target.dialog.request(request.method, body=body, content_type=ctype)
        if request.method == "INVITE":
            outgoing.headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE")
        try:
            tx_id = self.endpoint.send_request(outgoing, target.dest, now)
        except SipLocalError:
            self.endpoint.reply(server_tx, 500, now)
            return
        self.book.relays[tx_id] = Relay(call, origin, target, server_tx, request.method, outgoing)

    def final(self, relay: Relay, response: Response, now: float) -> None:
        call = relay.call
        status = response.status
        body = response.body if response.content_type == "application/sdp" or relay.method != "INVITE" else b""
        if relay.method == "INVITE" and 200 <= status < 300:
            target = relay.target
            assert target.dialog is not None
            target.dialog.refresh_target(response)
            self.endpoint.send_stateless(target.dialog.ack(relay.request.cseq.seq), target.dest)
            if body and call.media_active:
                origin_profile = relay.origin.profile or MediaProfile.PLAIN
                target_profile = target.profile or MediaProfile.PLAIN

                def reanswered(sdp: str | None, why: str, now: float) -> None:
                    if sdp is None:
                        self.endpoint.reply(relay.server_tx, 500, now, f"Server Internal Error ({why})")
                        return
                    self._answer(relay, status, sdp.encode(), response, now)

                self.b2bua.media_requests.answer(
                    call.id,
                    relay.origin.media_tag,
                    target.media_tag,
                    body.decode(),
                    answer_flags(target_profile, origin_profile),
                    reanswered,
                )
                return
        self._answer(relay, status, body, response, now)

    def timed_out(self, relay: Relay, now: float) -> None:
        with contextlib.suppress(SipLocalError):
            self.endpoint.reply(relay.server_tx, 408, now)

    def _answer(self, relay: Relay, status: int, body: bytes, response: Response, now: float) -> None:
        headers: list[tuple[str, str]] = []
        if body:
            headers.append(("Content-Type", response.headers.get("content-type") or "application/sdp"))
        if relay.method == "INVITE" and 200 <= status < 300:
            headers.append(("Contact", self.b2bua.contact(relay.origin.dest.transport)))
        try:
            self.endpoint.reply(relay.server_tx, status, now, response.reason, headers=headers, body=body)
        except SipLocalError as exc:
            log.debug("relayed %s answer not deliverable: %s", relay.method, exc)
