"""Ending and finishing calls: every leg still alive is torn down as its state needs, then the record.

Owns :class:`CallEnding`: ``end`` (the caller gets its final answer or a BYE, ringing branches a CANCEL,
answered ones ACK and BYE; a controller may keep the call), ``finish`` (the call leaves the book, its
media relay session is released as a :class:`~callto.sip.media_effects.MediaReleaseNeeded`, the
:class:`~callto.sip.calls.CallRecord` is written and the ``ended`` event goes out), a lost connection and
a hang-up asked for from outside.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from callto.sip.call_states import CallInput, CallState, LegInput, LegState, move_call, move_leg
from callto.sip.calls import Call, CallRecord, Disposition
from callto.sip.sdp import reject_all

if TYPE_CHECKING:
    from callto.sip.b2bua import B2BUA

log = logging.getLogger(__name__)


class CallEnding:
    def __init__(self, b2bua: B2BUA) -> None:
        self.b2bua = b2bua
        self.legs = b2bua.legs

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
        """Tear down every leg still alive: answer/CANCEL/BYE as each one's state needs, then record."""
        if call.state is CallState.ENDED:
            return
        if call.controller is not None and call.controller.before_end(call, status, reason, cause, now):
            return
        legs = self.legs
        answered = call.state is CallState.ANSWERED
        move_call(call, CallInput.END)
        call.ring_deadline = call.ack_deadline = call.retransmit_at = None
        a = call.a
        if a is not None and a.state is not LegState.ENDED:
            if a.uac:
                if a.state is LegState.CONFIRMED:
                    if a.ack is None and a.invite is not None and call.offer:
                        legs.ack(a, reject_all(call.offer))  # it offered in its 2xx: refuse, then hang up
                    elif a.ack is None:
                        legs.ack(a, b"")
                    legs.bye(a, now)
                else:
                    legs.cancel(a, now)
            elif a.state is LegState.CONFIRMED:
                legs.bye(a, now)
            else:
                headers = [("Warning", f'399 callto "{warning}"')] if warning else None
                legs.respond_a(call, status or 480, now, reason=reason, headers=headers)
        for leg in call.b:
            legs.hang_up(leg, now)
        if not answered and disposition is Disposition.ANSWERED:
            disposition = Disposition.CANCELLED
        self.finish(call, now, disposition, cause, reason=reason or cause)

    def finish(
        self, call: Call, now: float, disposition: Disposition, cause: str, *, reason: str | None = None
    ) -> None:
        b2bua = self.b2bua
        if call.state is not CallState.ENDED:
            move_call(call, CallInput.END)
            for leg in call.legs():
                if leg.state in (LegState.CALLING, LegState.EARLY):
                    self.legs.cancel(leg, now)
                elif leg.state is LegState.CONFIRMED:
                    self.legs.bye(leg, now)
        call.ring_deadline = call.ack_deadline = call.retransmit_at = None
        if call.media_active:
            b2bua.release_media(call)
        b2bua.book.forget(call, now)
        if call.id in b2bua.kept and b2bua.active_calls is not None:
            b2bua.kept.discard(call.id)
            b2bua.active_calls.drop(call.id)
        if call.answered_at is None and disposition is Disposition.ANSWERED:
            disposition = Disposition.CANCELLED
        record = CallRecord(
            call_id=call.id,
            direction=call.kind,
            caller_user_id=call.caller_user_id,
            caller_device_id=call.caller_device_id,
            callee_user_id=call.callee_user_id,
            devices_rung=list(call.devices_rung),
            from_number=call.from_number,
            to_number=call.to_number,
            started_at=call.started_at,
            answered_at=call.answered_at,
            ended_at=now,
            disposition=disposition,
            hangup_cause=cause,
            answered_device_id=call.winner.device_id if call.winner else None,
            trunk_id=call.trunk_id,
            click_id=call.click_id,
        )
        call.ended_reason = cause
        b2bua.records += 1
        if call.controller is not None:
            call.controller.call_ended(call, reason or cause, now)
        b2bua.emit("ended", call, disposition=disposition.value, cause=cause)
        if b2bua.on_call_record is not None:
            try:
                b2bua.on_call_record(record)
            except Exception:
                log.exception("on_call_record failed")

    def connection_lost(self, conn_id: int, now: float) -> None:
        """A stream (TCP, WebSocket) closed: calls with a leg on it end, the other side gets BYE/CANCEL."""
        for call in list(self.b2bua.book.calls.values()):
            gone = [leg for leg in call.legs() if leg.dest.conn_id == conn_id and leg.state is not LegState.ENDED]
            if not gone:
                continue
            for leg in gone:
                move_leg(leg, LegInput.ENDED)
                if leg.dialog is not None:
                    self.b2bua.book.dialogs.pop(leg.dialog.key, None)
            if call.winner is None and any(b.state is not LegState.ENDED for b in call.b) and call.a not in gone:
                continue  # one ringing device went away; the others still ring
            disposition = Disposition.ANSWERED if call.state is CallState.ANSWERED else Disposition.FAILED
            self.end(call, now, 0, None, disposition, "connection-lost")
