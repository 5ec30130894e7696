"""Blind transfer: an in-dialog REFER (RFC 3515) on either leg of a bridged call, as in RFC 5589 section 6.

Owns what the switch does when a party of an answered call (the *transferor*, on its own dialog with the
switch) REFERs the other party (the *transferee*) to a target:

- The REFER is authenticated like an INVITE (digest 407 with the registrar's nonces) and must come from
  the very device of that dialog; a trunk leg may not transfer. ``Refer-To`` must be exactly one ``sip:``
  URI of this switch or a ``tel:`` URI (else 400/403); ``Replaces`` (attended transfer) gets 501; a
  second REFER while one runs gets 491. Out of a dialog REFER is refused with 403 (the switch is no
  click-to-call-by-REFER service) and an unknown dialog gets 481.
- The target is routed as a call *from the transferor* would be (extension -> every device of its user;
  a number -> the trunk, only when the transferor's outbound class allows it), then the REFER gets 202
  and the transferor's dialog receives NOTIFYs (``Event: refer;id=<REFER CSeq>``, ``message/sipfrag``):
  ``100 Trying``, ``180 Ringing`` when the target rings, then the final status of the new call.
- The switch calls the target *for the transferee* as a new call (its record: the transferee is the
  caller, the target the callee), with an INVITE without SDP (delayed offer). While the target rings the
  transferee still talks to the transferor. When the target answers, its offer goes to the transferee in
  a re-INVITE (through rtpengine when the two media profiles differ); the transferee's answer rides on the
  ACK to the target. Only then does the transferor get ``NOTIFY 200 OK`` and a BYE, and the original call
  ends with the cause ``transferred``.
- If the target fails (busy, no answer, not found, not permitted, refused re-INVITE) the transferor gets
  the failure in the NOTIFY and, when it is still in the call, keeps the transferee (whose media never
  moved). When the transferor already hung up, the transferee gets a BYE (cause ``transfer-failed``): no
  one is left in silence. If the transferee hangs up first, the new call is cancelled.

A controller over the B2BUA's public interface, sans-IO like it: every entry point takes ``now``; the
B2BUA calls in through the hooks of :class:`~callto.sip.calls.CallController` (``Call.controller``), the
final answers of the re-INVITE and NOTIFYs sent here (``B2BUA.send_in_dialog``) and the media relay's
answers (``B2BUA.ask_media_offer`` / ``ask_media_answer``). :func:`install` has the B2BUA hand REFER
and out-of-dialog NOTIFY here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import uuid

from callto.sip.b2bua import B2BUA
from callto.sip.call_states import CallState, LegState
from callto.sip.calls import Call, CallController, Disposition, Leg, looks_like_number
from callto.sip.endpoint import EndpointConfig, RequestReceived
from callto.sip.errors import SipMessageError
from callto.sip.grammar import SipURI, TelURI, parse_name_addr
from callto.sip.media import MediaProfile
from callto.sip.message import REASONS, Request, Response
from callto.sip.ports import SipAccount
from callto.sip.sdp import reject_all

log = logging.getLogger(__name__)

REFER_EXPIRES = 60  # what the implicit subscription's NOTIFYs announce while the transfer runs
SIPFRAG = "message/sipfrag;version=2.0"
TRANSFER_METHODS = ("REFER", "NOTIFY")  # the endpoint must allow these for transfer to reach the B2BUA


class Phase(enum.Enum):
    RINGING = "ringing"  # the target's call is being set up; the transferee still talks to the transferor
    SWITCHING = "switching"  # the target answered; the transferee is being re-INVITEd with its offer
    DONE = "done"


def with_transfer(config: EndpointConfig) -> EndpointConfig:
    """``config`` with REFER and NOTIFY allowed, so they reach the B2BUA instead of a 405."""
    missing = tuple(m for m in TRANSFER_METHODS if m not in config.allow)
    return dataclasses.replace(config, allow=(*config.allow, *missing)) if missing else config


def install(b2bua: B2BUA) -> None:
    """Have ``b2bua`` hand REFER (and NOTIFY outside a dialog) to :func:`handle_request`."""

    def handle(event: RequestReceived, now: float) -> None:
        handle_request(b2bua, event, now)

    b2bua.handle_method("REFER", handle)
    b2bua.handle_method("NOTIFY", handle)


def handle_request(b2bua: B2BUA, event: RequestReceived, now: float) -> None:
    """A REFER (in or out of a dialog) or an out-of-dialog NOTIFY; always answers it."""
    request = event.request
    tx_id = event.tx_id
    assert tx_id is not None
    endpoint = b2bua.endpoint
    if request.method == "NOTIFY":
        endpoint.reply(tx_id, 481, now, "Subscription Does Not Exist")
        return
    to_tag = request.to.tag
    if to_tag is None:
        endpoint.reply(tx_id, 403, now, "Forbidden (REFER outside a dialog is not supported)")
        return
    leg = b2bua.leg_for_dialog(request.call_id, to_tag)
    if leg is None or leg.dialog is None:
        endpoint.reply(tx_id, 481, now)
        return
    if not leg.dialog.accept_remote_seq(request):
        endpoint.reply(tx_id, 500, now, "Server Internal Error (CSeq out of order)")
        return
    call = leg.call
    if leg.user_id is None or leg.device_id is None:
        endpoint.reply(tx_id, 403, now, "Forbidden (only a registered device may transfer)")
        return
    other = b2bua.other_leg(leg)
    if call.state is not CallState.ANSWERED or other is None or other.state is not LegState.CONFIRMED:
        endpoint.reply(tx_id, 403, now, "Forbidden (no answered call to transfer)")
        return
    if call.controller is not None:
        endpoint.reply(tx_id, 491, now, "Request Pending (a transfer is already running)")
        return
    target, problem = _refer_target(b2bua, request)
    if target is None:
        status, reason = problem
        endpoint.reply(tx_id, status, now, reason)
        return
    account = b2bua.authenticate(request, tx_id, now)
    if account is None:
        return  # challenged (407) or refused
    if account.device_id != leg.device_id:
        endpoint.reply(tx_id, 403, now, "Forbidden (the credentials are not this dialog's device)")
        return
    endpoint.reply(tx_id, 202, now, "Accepted", headers=[("Contact", b2bua.contact(leg.dest.transport))])
    transfer = Transfer(b2bua, call, leg, other, request.cseq.seq, target)
    call.controller = transfer
    b2bua.emit("transferring", call, target=target, transferor_device_id=leg.device_id)
    transfer.notify(100, now)
    transfer.start(account, now)


def _refer_target(b2bua: B2BUA, request: Request) -> tuple[str | None, tuple[int, str]]:
    """The dialed string of the REFER's Refer-To, or None and the error answer."""
    values = request.headers.get_list("refer-to")
    if len(values) != 1:
        what = "missing" if not values else "more than one"
        return None, (400, f"Bad Request ({what} Refer-To)")
    try:
        addr = parse_name_addr(values[0], "Refer-To")
    except SipMessageError as exc:
        return None, (400, f"Bad Request (malformed Refer-To: {exc.reason})")
    uri = addr.uri
    if isinstance(uri, TelURI):
        return (uri.number or None), (400, "Bad Request (no number in Refer-To)")
    if not isinstance(uri, SipURI):
        return None, (400, "Bad Request (Refer-To must be a sip: or tel: URI)")
    if uri.headers and "replaces=" in uri.headers.lower():
        return None, (501, "Not Implemented (attended transfer with Replaces)")
    if not b2bua.endpoint.config.is_local(uri.host):
        return None, (403, "Forbidden (Refer-To is not an address of this switch)")
    if not uri.user:
        return None, (400, "Bad Request (no extension or number in Refer-To)")
    return uri.user, (0, "")


@dataclasses.dataclass(eq=False)
class Transfer(CallController):
    """One running blind transfer; ``original`` is the call REFERred, ``new`` the call to the target."""

    b2bua: B2BUA
    original: Call
    referrer: Leg
    transferee: Leg
    refer_seq: int
    target: str
    new: Call | None = None
    phase: Phase = Phase.RINGING
    offer: bytes = b""  # the target's offer (from its 2xx)
    reinvite: Request | None = None

    # --- NOTIFY to the transferor ---------------------------------------------------------------------
    def notify(self, status: int, now: float, reason: str | None = None, *, final: bool = False) -> None:
        leg = self.referrer
        if leg.state is not LegState.CONFIRMED or leg.dialog is None:
            return  # the transferor hung up: nobody to tell
        text = reason or REASONS.get(status, "Unknown")
        request = leg.dialog.request("NOTIFY", body=f"SIP/2.0 {status} {text}\r\n".encode(), content_type=SIPFRAG)
        request.headers.add("Event", f"refer;id={self.refer_seq}")
        state = "terminated;reason=noresource" if final else f"active;expires={REFER_EXPIRES}"
        request.headers.add("Subscription-State", state)
        request.headers.add("Contact", self.b2bua.contact(leg.dest.transport))
        self.b2bua.send_in_dialog(leg, request, now, _ignore)

    # --- the call to the target -----------------------------------------------------------------------
    def start(self, account: SipAccount, now: float) -> None:
        """Route the target as a call from the transferor would be, placed for the transferee."""
        b2bua = self.b2bua
        original, transferee = self.original, self.transferee
        number = _number_of(b2bua, original, transferee)
        new = Call(
            id=uuid.uuid4().hex,
            kind="internal" if transferee.user_id is not None else "inbound",
            started_at=now,
            from_number=number,
            to_number=self.target,
            caller_user_id=transferee.user_id,
            caller_device_id=transferee.device_id,
        )
        if transferee.user_id is None:
            new.trunk_id = original.trunk_id
        new.controller = self
        self.new = new
        b2bua.add_call(new)
        dialed = self.target
        user_id = b2bua.user_for(dialed)
        if user_id is not None:
            b2bua.ring_user(new, user_id, number or None, now)
            return
        trunk = b2bua.trunks.outbound()
        if trunk is None or not looks_like_number(dialed):
            b2bua.end(new, now, 404, "Not Found", Disposition.FAILED, "no-route")
            return
        may_call = b2bua.may_call
        if may_call is not None and not may_call(account, dialed):
            b2bua.end(new, now, 403, "Forbidden", Disposition.FAILED, "not-permitted")
            return
        new.kind = "outbound"
        b2bua.call_trunk(new, trunk, dialed, now)

    # --- hooks the B2BUA calls (Call.controller) ------------------------------------------------------
    def leg_ringing(self, leg: Leg, response: Response, now: float) -> bool:
        new = self.new
        if new is None or leg.call is not new:
            return False
        if new.state is not CallState.RINGING or new.sent_ringing:
            return True
        new.sent_ringing = True
        self.b2bua.emit("ringing", new, device_id=leg.device_id, transfer_of=self.original.id)
        self.notify(180, now)
        return True

    def leg_answered(self, leg: Leg, response: Response, now: float) -> bool:
        if leg.call is not self.new:
            return False
        self._target_answered(leg, response, now)
        return True

    def _target_answered(self, leg: Leg, response: Response, now: float) -> None:
        """The target answered (it is ``new.winner``): move the transferee's media to it."""
        new = self.new
        assert new is not None
        b2bua = self.b2bua
        transferee = self.transferee
        self.offer = response.body if response.content_type == "application/sdp" else b""
        if not self.offer:
            b2bua.end(new, now, 488, "Not Acceptable Here (the target made no offer)", Disposition.FAILED, "no-offer")
            return
        if transferee.state is not LegState.CONFIRMED or transferee.dialog is None:
            b2bua.end(new, now, 487, "Request Terminated", Disposition.CANCELLED, "transferee-gone")
            return
        self.phase = Phase.SWITCHING
        target_profile = leg.profile or MediaProfile.PLAIN
        transferee_profile = transferee.profile or MediaProfile.PLAIN
        if target_profile is transferee_profile:
            self._reinvite(self.offer, now)
            return
        if not b2bua.media_can_relay():
            b2bua.end(
                new, now, 488, "Not Acceptable Here (media relay unavailable)", Disposition.FAILED, "media-unavailable"
            )
            return
        def offered(sdp: str | None, why: str, now: float) -> None:
            if sdp is None:
                self._media_failed(why, now)
                return
            if self.phase is Phase.SWITCHING:
                new.media_active = True
                self._reinvite(sdp.encode(), now)

        b2bua.ask_media_offer(new.id, leg.media_tag, self.offer, target_profile, transferee_profile, offered)

    def before_end(self, call: Call, status: int, reason: str | None, cause: str, now: float) -> bool:
        """``call`` is about to end; True keeps it (the transferor left while the transferee waits)."""
        if self.phase is Phase.DONE:
            return False
        b2bua = self.b2bua
        new = self.new
        if call is self.original:
            if (
                self.referrer.state is LegState.ENDED
                and self.transferee.state is not LegState.ENDED
                and cause != "hangup-requested"
            ):
                return True
            self._done()
            self.notify(487, now, "Request Terminated", final=True)
            if new is not None and new.state is not CallState.ENDED:
                b2bua.end(new, now, 487, "Request Terminated", Disposition.CANCELLED, "transfer-abandoned")
            return False
        # the call to the target failed before the switch-over
        self._done()
        if new is not None and new.winner is not None and self.offer:
            b2bua.ack(new.winner, reject_all(self.offer))  # its offer still needs an answer before the BYE
        self.notify(status or 480, now, reason if status else "Temporarily Unavailable", final=True)
        original = self.original
        if original.state is not CallState.ENDED and (
            self.referrer.state is not LegState.CONFIRMED or self.transferee.state is not LegState.CONFIRMED
        ):
            b2bua.end(original, now, 0, None, Disposition.ANSWERED, "transfer-failed")
        return False

    # --- switching the transferee over ---------------------------------------------------------------
    def _reinvite(self, offer: bytes, now: float) -> None:
        b2bua, transferee = self.b2bua, self.transferee
        new = self.new
        assert new is not None and transferee.dialog is not None
        if transferee.state is not LegState.CONFIRMED:
            b2bua.end(new, now, 487, "Request Terminated", Disposition.CANCELLED, "transferee-gone")
            return
        request = transferee.dialog.request("INVITE", body=offer, content_type="application/sdp")
        request.headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY")
        self.reinvite = request
        if not b2bua.send_in_dialog(transferee, request, now, self._reinvite_answered):
            b2bua.end(new, now, 503, "Service Unavailable", Disposition.FAILED, "transferee-unreachable")

    def _reinvite_answered(self, response: Response | None, now: float) -> None:
        b2bua, transferee = self.b2bua, self.transferee
        new = self.new
        assert new is not None and self.reinvite is not None and transferee.dialog is not None
        if self.phase is not Phase.SWITCHING:
            if response is not None and response.status < 300:
                # the transfer was abandoned meanwhile: complete the transaction, the BYE follows elsewhere
                b2bua.send_ack(transferee, transferee.dialog, self.reinvite.cseq.seq)
            return
        if response is None or response.status >= 300:
            status = 408 if response is None else response.status
            reason = None if response is None else response.reason
            b2bua.end(new, now, status, reason, Disposition.FAILED, "transferee-refused")
            return
        transferee.dialog.refresh_target(response)
        b2bua.send_ack(transferee, transferee.dialog, self.reinvite.cseq.seq)
        answer = response.body if response.content_type == "application/sdp" else b""
        target = new.winner
        assert target is not None
        if not new.media_active:
            self._complete(answer, now)
            return
        target_profile = target.profile or MediaProfile.PLAIN
        transferee_profile = transferee.profile or MediaProfile.PLAIN

        def answered(sdp: str | None, why: str, now: float) -> None:
            if sdp is None:
                self._media_failed(why, now)
                return
            if self.phase is Phase.SWITCHING:
                self._complete(sdp.encode(), now)

        b2bua.ask_media_answer(
            new.id, target.media_tag, transferee.media_tag, answer, transferee_profile, target_profile, answered
        )

    def _complete(self, answer: bytes, now: float) -> None:
        """The transferee talks to the target: hand its leg to the new call, end the original one."""
        b2bua, transferee, original = self.b2bua, self.transferee, self.original
        new = self.new
        assert new is not None and new.winner is not None
        b2bua.ack(new.winner, answer)
        self._done()
        self.notify(200, now, final=True)
        # the original call keeps an ended stand-in (same device, for its record) and forgets the dialog,
        # which now belongs to the new call
        b2bua.hand_over_leg(transferee, new, "a")
        b2bua.bridged(new, now, transfer_of=original.id)
        b2bua.keep_answered(new)
        b2bua.emit("transferred", original, new_call_id=new.id, target=self.target)
        b2bua.end(original, now, 0, None, Disposition.ANSWERED, "transferred")

    def _media_failed(self, reason: str, now: float) -> None:
        new = self.new
        assert new is not None
        log.warning("rtpengine for transfer %s failed: %s", new.id, reason)
        self.b2bua.end(new, now, 488, "Not Acceptable Here (media relay failed)", Disposition.FAILED, "media-failed")

    def _done(self) -> None:
        self.phase = Phase.DONE
        self.original.controller = None
        if self.new is not None:
            self.new.controller = None


def _ignore(response: Response | None, now: float) -> None:
    """NOTIFY answers: a transferor that refuses them (481 after its BYE) changes nothing."""


def _number_of(b2bua: B2BUA, call: Call, leg: Leg) -> str:
    """The transferee's number as the target will see it: its extension, or the outside number."""
    if leg is call.a and call.kind != "originate":
        return call.from_number
    if leg.device_id is not None:
        with contextlib.suppress(Exception):
            for binding in b2bua.location.bindings(leg.device_id):
                return binding.extension
    if leg is call.a:
        return call.from_number
    return call.to_number
