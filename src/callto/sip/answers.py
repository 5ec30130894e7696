"""What the answers on a call's legs mean for the call: provisional, 2xx, failure, time-out.

Owns :class:`LegAnswers`: routing a response to the leg, relay or controller transaction it answers, a
branch that rings (180, or 183 with early media on a single branch, towards the caller), the first 2xx
of the fork winning (the others CANCELled, a late one ACKed and BYEd), the answer carried to the caller
(through the media relay when the branch got the relay's offer: a
:class:`~callto.sip.media_effects.MediaAnswerNeeded`), and the best failure (RFC 3261 16.7) once every
branch failed. A controller's hooks (``Call.controller``) may take each of these over first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callto.sip.call_states import CallState, LegInput, LegState, move_leg
from callto.sip.calls import Call, Disposition, Leg, best_failure
from callto.sip.dialog import uac_dialog
from callto.sip.endpoint import ResponseReceived, TransactionTimedOut
from callto.sip.media import MediaProfile
from callto.sip.message import Response, make_response

if TYPE_CHECKING:
    from callto.sip.b2bua import B2BUA

ACK_TIMEOUT = 32.0  # 64*T1: how long a 2xx waits for its ACK (RFC 3261 13.3.1.4)


class LegAnswers:
    def __init__(self, b2bua: B2BUA) -> None:
        self.b2bua = b2bua
        self.book = b2bua.book
        self.legs = b2bua.legs

    def response(self, event: ResponseReceived, now: float) -> bool:
        response = event.response
        tx_id = event.tx_id
        book = self.book
        if tx_id is None:
            # a 2xx retransmission after the transaction ended: ACK it again from the dialog
            leg = book.dialogs.get((response.call_id, response.from_.tag or ""))
            if leg is not None and leg.ack is not None and response.cseq.method == "INVITE":
                self.legs.reack(leg)
                return True
            return leg is not None
        leg = book.client.get(tx_id)
        if leg is not None and response.cseq.method == "INVITE":
            self._invite_response(leg, tx_id, response, now)
            return True
        relay = book.relays.get(tx_id)
        if relay is not None:
            if response.status >= 200:
                del book.relays[tx_id]
                self.b2bua.relay.final(relay, response, now)
            return True
        owner = book.owned.get(tx_id)
        if owner is not None:
            if response.status >= 200:
                del book.owned[tx_id]
                owner(response, now)
            return True
        if tx_id in book.byes:
            if response.status >= 200:
                book.byes.discard(tx_id)
            return True
        return False

    def timeout(self, event: TransactionTimedOut, now: float) -> bool:
        book = self.book
        leg = book.client.pop(event.tx_id, None)
        if leg is not None:
            move_leg(leg, LegInput.ENDED)
            leg.final = 408
            self._failed(leg, make_response(event.request, 408), now)
            return True
        relay = book.relays.pop(event.tx_id, None)
        if relay is not None:
            self.b2bua.relay.timed_out(relay, now)
            return True
        if event.tx_id in book.byes:
            book.byes.discard(event.tx_id)
            return True
        owner = book.owned.pop(event.tx_id, None)
        if owner is not None:
            owner(None, now)
            return True
        return False

    def _invite_response(self, leg: Leg, tx_id: int, response: Response, now: float) -> None:
        status = response.status
        call = leg.call
        if status < 200:
            if status == 100:
                return
            if leg.state is LegState.CALLING:
                move_leg(leg, LegInput.PROVISIONAL)
            if not leg.ringing:
                leg.ringing = True
                self._ringing(leg, response, now)
            return
        if status < 300:
            if leg.dialog is None or leg.state is not LegState.CONFIRMED:
                assert leg.invite is not None
                leg.dialog = uac_dialog(leg.invite, response, leg.dest)
                leg.dialog.confirmed = True
                move_leg(leg, LegInput.CONFIRMED)
                self.book.dialogs[leg.dialog.key] = leg
                self._answered(leg, response, now)
            else:
                self.legs.reack(leg)
            return
        self.book.client.pop(tx_id, None)
        retry = status in (401, 407) and leg.trunk is not None and leg.auth_tries < 1
        if retry and call.state is not CallState.ENDED and self.legs.retry_with_auth(leg, response, now):
            return
        move_leg(leg, LegInput.ENDED)
        # the provider refused our trunk credentials: the device must not be asked for them
        leg.final = 503 if status in (401, 407) else status
        self._failed(leg, response, now)

    def _ringing(self, leg: Leg, response: Response, now: float) -> None:
        call = leg.call
        if call.controller is not None and call.controller.leg_ringing(leg, response, now):
            return
        if leg.role == "a" or call.state is not CallState.RINGING:
            return
        a = call.a
        if a is None or a.tx_id is None or call.sent_ringing:
            return
        call.sent_ringing = True
        self.b2bua.emit("ringing", call, device_id=leg.device_id)
        status, body = 180, b""
        if len(call.b) == 1 and response.body and not leg.relayed_media and response.status == 183:
            status, body = 183, response.body  # early media (a provider's ringback) on a single branch
        self.legs.respond_a(call, status, now, body=body)

    def _answered(self, leg: Leg, response: Response, now: float) -> None:
        call = leg.call
        b2bua = self.b2bua
        if leg.role == "b" and (call.winner is not None or call.state is CallState.ENDED):
            # a second branch answered too late (or after the call ended): take and drop it (16.7 / 13.2.2.4)
            self.legs.ack(leg, b"")
            self.legs.bye(leg, now)
            return
        if leg.role == "b":
            call.winner = leg
            call.ring_deadline = None
            for other in call.b:
                if other is not leg and other.state in (LegState.CALLING, LegState.EARLY):
                    self.legs.cancel(other, now)
        if call.controller is not None and call.controller.leg_answered(leg, response, now):
            return
        if leg.role == "a":
            return
        body = response.body
        if leg.relayed_media and call.relay_profile is not None and body:
            a_profile = call.offer_profile or MediaProfile.PLAIN
            a_tag = call.a.media_tag if call.a is not None else "a"

            def answered(sdp: str | None, why: str, now: float) -> None:
                if sdp is None:
                    self.legs.ack(leg, b"")
                    b2bua.media_relay_failed(call, why, now)
                    return
                self._deliver(call, leg, sdp.encode(), now)

            profile = leg.profile or MediaProfile.PLAIN
            b2bua.ask_media_answer(call.id, a_tag, leg.media_tag, body, profile, a_profile, answered)
            return
        if call.media_active:
            b2bua.release_media(call)
        self._deliver(call, leg, body, now)

    def _deliver(self, call: Call, leg: Leg, body: bytes, now: float) -> None:
        b2bua = self.b2bua
        if call.state is CallState.ENDED:
            self.legs.ack(leg, b"")
            self.legs.bye(leg, now)
            return
        a = call.a
        assert a is not None
        if a.uac:
            # origination: the device offered in its 2xx, the destination answered: both ACKs now
            b2bua.bridged(call, now, stage="destination")
            self.legs.ack(leg, b"")
            self.legs.ack(a, body)
            b2bua.keep_answered(call)
            return
        b2bua.bridged(call, now)
        # the callee's ACK waits for the caller's (end to end: a delayed offer's answer rides on it)
        self.legs.respond_a(call, 200, now, body=body)
        call.ack_deadline = now + ACK_TIMEOUT
        b2bua.keep_answered(call)

    def _failed(self, leg: Leg, response: Response, now: float) -> None:
        call = leg.call
        if call.controller is not None and call.controller.leg_failed(leg, response, now):
            return
        if leg.role == "a" or call.state is CallState.ENDED or call.winner is not None:
            return
        if any(b.state is not LegState.ENDED for b in call.b):
            return
        status, reason = best_failure([b.final or 500 for b in call.b], response)
        disposition = (
            Disposition.BUSY
            if status in (486, 600)
            else (Disposition.MISSED if status in (480, 408, 487, 603) else Disposition.FAILED)
        )
        self.b2bua.end(call, now, status, reason, disposition, f"{status}")
