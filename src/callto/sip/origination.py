"""Click-to-call origination: third-party call control (RFC 3725) on top of the B2BUA.

Owns the flow the dialer's ``originate`` strategy runs: the switch INVITEs the user's device first,
without SDP, showing the destination (From display name and P-Asserted-Identity carry the number, so the
phone's screen says whom it is about to call), with the vendor's auto-answer header only when asked.
When the device answers, its 2xx carries the SDP offer (RFC 3725 flow I, the one baresip and desk phones
handle): the switch calls the destination (an extension's devices, or the trunk) with that offer, and when
the destination answers, ACKs the device with the destination's answer and ACKs the destination. If the
destination fails, the device gets an ACK refusing every stream, then a BYE.

A controller over the B2BUA's public interface: :class:`Origination` is the call's ``controller`` and
keeps what only origination needs (the destination, the result callback), so :class:`~callto.sip.calls.Call`
does not.

Limit of flow I: the device waits for its ACK while the destination rings, and gives up after 64*T1
(32 s); so the destination rings for at most :data:`MAX_DESTINATION_RING` seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from callto.sip.b2bua import B2BUA
from callto.sip.call_states import CallState, LegState
from callto.sip.calls import Call, CallController, Disposition, Leg
from callto.sip.grammar import quote
from callto.sip.location import next_hop
from callto.sip.media import MediaProfile
from callto.sip.message import Headers, Request, Response, random_bytes
from callto.sip.sdp import profile_of

MAX_DESTINATION_RING = 28.0
DEFAULT_AUTO_ANSWER = ("Call-Info", "<sip:{host}>;answer-after=0")
OriginationResult = Callable[[bool, str], None]


@dataclass(frozen=True)
class OriginationSpec:
    """What to originate, in the switch's terms (the switch builds it from the dialer's request)."""

    call_id: str
    user_id: str
    destination: str  # the dialed string (extension or number for the trunk)
    destination_is_extension: bool
    destination_display: str = ""
    device_sip_username: str | None = None
    first_leg_number: str | None = None  # ring this number through the trunk instead of a device
    auto_answer_header: tuple[str, str] | None = None
    caller_display: str = ""


class Origination(CallController):
    """Drives one originated call: the device leg first, then the destination with the device's offer."""

    def __init__(self, b2bua: B2BUA, spec: OriginationSpec, on_result: OriginationResult) -> None:
        self.b2bua = b2bua
        self.spec = spec
        self.destination = spec.destination
        self.destination_display = spec.destination_display or spec.destination
        self.on_result: OriginationResult | None = on_result

    def _result(self, ok: bool, reason: str) -> None:
        on_result, self.on_result = self.on_result, None
        if on_result is not None:
            on_result(ok, reason)

    # --- hooks (Call.controller) ------------------------------------------------------------------------
    def leg_ringing(self, leg: Leg, response: Response, now: float) -> bool:
        call = leg.call
        if leg.role == "a":  # the device rings
            self.b2bua.emit("ringing", call, stage="device", device_id=leg.device_id)
            self._result(True, "ringing")
        elif call.state is CallState.RINGING:
            self.b2bua.emit("ringing", call, stage="destination", device_id=leg.device_id)
        return True

    def leg_answered(self, leg: Leg, response: Response, now: float) -> bool:
        if leg.role != "a":
            # the destination answered: the B2BUA bridges (both ACKs). Once the click has its result the
            # call is a plain one, which a transfer may drive; a device that answered without ringing
            # still gets its result when the call ends, as before.
            if self.on_result is None:
                leg.call.controller = None
            return False
        self._device_answered(leg, response, now)
        return True

    def leg_failed(self, leg: Leg, response: Response, now: float) -> bool:
        if leg.role != "a":
            return False
        call = leg.call
        why = f"device answered {response.status} {response.reason}"
        disposition = Disposition.BUSY if response.status in (486, 600) else Disposition.FAILED
        if call.state is not CallState.ENDED:
            self.b2bua.finish(call, now, disposition, why)
        return True

    def call_ended(self, call: Call, cause: str, now: float) -> None:
        self._result(False, cause)

    # --- the destination --------------------------------------------------------------------------------
    def _device_answered(self, leg: Leg, response: Response, now: float) -> None:
        """The first leg answered with its offer: call the destination with it."""
        b2bua = self.b2bua
        call = leg.call
        body = response.body if response.content_type == "application/sdp" else b""
        if call.state is CallState.ENDED:
            b2bua.ack(leg, b"")
            b2bua.bye(leg, now)
            return
        call.ring_deadline = None
        b2bua.emit("answered", call, stage="device", device_id=leg.device_id)
        if not body:
            b2bua.ack(leg, b"")
            b2bua.end(call, now, 0, None, Disposition.FAILED, "device-answered-without-offer")
            return
        call.offer = body
        call.offer_profile = profile_of(body)
        if self.spec.destination_is_extension:
            user_id = b2bua.user_for(self.destination)
            if user_id is None:
                b2bua.end(call, now, 0, None, Disposition.FAILED, "destination-not-found")
                return
            b2bua.ring_user(call, user_id, self.spec.caller_display or None, now)
        else:
            trunk = b2bua.trunks.outbound()
            if trunk is None:
                b2bua.end(call, now, 0, None, Disposition.FAILED, "no-trunk")
                return
            b2bua.call_trunk(call, trunk, self.destination, now)
        if call.state is CallState.RINGING and call.ring_deadline is not None:
            call.ring_deadline = min(call.ring_deadline, now + MAX_DESTINATION_RING)


def originate(b2bua: B2BUA, spec: OriginationSpec, now: float, on_result: OriginationResult) -> None:
    """Ring the first leg; ``on_result(ok, reason)`` once it rings (ok) or fails (not ok)."""
    domain = b2bua.config.domain
    if spec.call_id in b2bua.calls:
        on_result(False, "a call with this id is already in progress")
        return
    controller = Origination(b2bua, spec, on_result)
    call = Call(
        id=spec.call_id or uuid.uuid4().hex,
        kind="originate",
        started_at=now,
        from_number="",
        to_number=spec.destination,
        caller_user_id=spec.user_id,
        controller=controller,
    )
    route: tuple[str, ...] = ()
    show = controller.destination_display
    target_user = spec.destination
    if spec.device_sip_username is not None:
        account = b2bua.credentials.lookup(spec.device_sip_username)
        if account is None:
            on_result(False, f"unknown SIP device {spec.device_sip_username!r}")
            return
        if str(account.user_id) != str(spec.user_id):
            on_result(False, "the device does not belong to this user")
            return
        bindings = b2bua.location.bindings(account.device_id)
        if not bindings:
            on_result(False, "the device is not registered")
            return
        binding = max(bindings, key=lambda b: (b.q or 0.0, b.registered_at))
        call.caller_device_id = account.device_id
        call.from_number = account.extension
        dest, route = next_hop(binding)
        ruri = binding.contact
        to = f"<sip:{account.extension}@{domain}>"
        leg = Leg(call, "a", True, dest, device_id=account.device_id, user_id=account.user_id)
        if binding.source_transport in ("ws", "wss"):
            leg.profile = MediaProfile.WEBRTC
    elif spec.first_leg_number is not None:
        trunk = b2bua.trunks.outbound()
        if trunk is None:
            on_result(False, "no trunk configured to ring the first leg")
            return
        call.trunk_id = trunk.id
        dest = b2bua.trunks.dest(trunk)
        host = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
        ruri = f"sip:{spec.first_leg_number}@{host}:{trunk.port}"
        to = f"<{ruri}>"
        leg = Leg(call, "a", True, dest, trunk=trunk, user_id=spec.user_id)
        target_user = trunk.caller_id or spec.destination
    else:
        on_result(False, "neither a device nor a first-leg number to ring")
        return
    headers = Headers()
    for hop in route:
        headers.add("Route", hop)
    shown_uri = f"sip:{target_user}@{domain}"
    headers.add("From", f"{quote(show)} <{shown_uri}>;tag={leg.local_tag}")
    headers.add("To", to)
    headers.add("Call-ID", f"{random_bytes(16).hex()}@callto")  # uuid4's shape, from the pool: no system call
    headers.add("CSeq", "1 INVITE")
    headers.add("Contact", b2bua.contact(dest.transport))
    headers.add("P-Asserted-Identity", f"{quote(show)} <{shown_uri}>")
    headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO")
    if spec.caller_display:
        headers.add("Subject", f"Call to {show}")
    if spec.auto_answer_header is not None:
        name, value = spec.auto_answer_header
        headers.add(name, value)
    leg.invite = Request("INVITE", ruri, headers)
    call.a = leg
    call.ring_deadline = now + b2bua.config.ring_timeout
    call.devices_rung = [leg.device_id] if leg.device_id else []
    b2bua.add_call(call)
    b2bua.send_invite(leg, now)
    if leg.state is LegState.ENDED:
        controller.on_result = None
        on_result(False, "cannot reach the device")
        b2bua.finish(call, now, Disposition.FAILED, "unreachable")
