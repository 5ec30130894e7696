"""The call logic of the switch: a back-to-back user agent driven by endpoint events and a clock.

Owns every call the switch carries: authenticating a device's INVITE (digest 407 with the registrar's
nonces), routing it (extension -> every registered contact of every device of that user at once; an
outside number -> the trunk, after the caller's outbound class allows it; an INVITE from a trunk host ->
the user its DID names), the fork (first 2xx wins, the other branches get CANCEL, or ACK+BYE when two
answer), the ring timeout (480), CANCEL from the caller, BYE from either side, re-INVITE and INFO relayed
inside the dialog, the 2xx/ACK handshake end to end, third-party call control for origination
(:mod:`callto.sip.origination` sits on top), call records and call state events. Blind transfer (REFER)
lives in :mod:`callto.sip.transfer`, which drives its calls through ``Call.controller`` and ``_owned``;
moving a call between a user's devices in :mod:`callto.sip.move`, which uses only the public controller
interface at the end of :class:`B2BUA` (``live_leg`` ... ``call_event``).

Signalling is sans-IO: the B2BUA calls the :class:`~callto.sip.endpoint.SipEndpoint` it was given (itself
sans-IO), takes ``now`` on every entry point and exposes ``get_timer`` / ``handle_timer``. Media is the one
asynchronous part: when a WebRTC leg meets a plain RTP leg the SDP goes through rtpengine, so the B2BUA
``spawn``s a coroutine that calls the media service and re-enters the call with the result, then calls
``wake`` so the driver drains the endpoint. Same-profile legs never touch media and stay synchronous.
Auto-answer headers (``Call-Info: answer-after``, ``Alert-Info`` auto-answer variants, RFC 5373
``Answer-Mode``) arriving from outside are stripped from every INVITE the switch relays.
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import itertools
import logging
import math
import re
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from callto.sip.auth import DigestServer, Verdict
from callto.sip.dialog import Dialog, local_contact, uac_dialog, uas_dialog, user_of
from callto.sip.endpoint import (
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    SipEndpoint,
    Source,
    TransactionTimedOut,
)
from callto.sip.errors import SipLocalError, SipMessageError
from callto.sip.grammar import SipURI, TelURI, quote
from callto.sip.location import next_hop
from callto.sip.media import MediaProfile, answer_flags, offer_flags
from callto.sip.message import Headers, Request, Response, make_response, new_tag
from callto.sip.ports import ActiveCall, ActiveCallStore, Binding, Credentials, SipAccount
from callto.sip.recovery import snapshot
from callto.sip.sdp import SdpError, is_webrtc, parse_sdp, reject_all
from callto.sip.trunk import TrunkConfig, TrunkRouter, ip_literal

if TYPE_CHECKING:
    from callto.sip.origination import OriginationSpec

log = logging.getLogger(__name__)

DEFAULT_RING_TIMEOUT = 30.0
ACK_TIMEOUT = 32.0  # 64*T1: how long a 2xx waits for its ACK (RFC 3261 13.3.1.4)
LINGER = 40.0  # past Timer B/M: nothing more can arrive for a finished call's transactions

# --- auto-answer headers ------------------------------------------------------------------------------
_ALERT_AUTO = re.compile(r"auto[-_ ]?answer|autoanswer|intercom|answer-after|ring-answer|info=alert-auto", re.I)
_DROP_HEADERS = ("answer-mode", "priv-answer-mode", "p-auto-answer")


def strip_auto_answer(headers: Headers) -> list[str]:
    """Remove every auto-answer request from ``headers``; return what was removed (for the log)."""
    removed: list[str] = []
    for name in _DROP_HEADERS:
        removed += headers.get_all(name)
        headers.remove(name)
    for name, pattern in (("call-info", re.compile(r"answer-after", re.I)), ("alert-info", _ALERT_AUTO)):
        elements = headers.get_list(name)
        if not elements:
            continue
        kept = [e for e in elements if not pattern.search(e)]
        removed += [e for e in elements if pattern.search(e)]
        headers.remove(name)
        for element in kept:
            headers.add(name, element)
    return removed


# headers of the caller's INVITE that mean something to the callee and are copied to each branch
_COPIED_INVITE_HEADERS = ("subject", "alert-info", "call-info", "priority", "allow")
# The click a web phone's or Link's INVITE answers (``X-Callto-Click: c2c-<hex>``): its events and record
# carry it, so the click and the call it became are one story. Only from authenticated devices.
CLICK_HEADER = "x-callto-click"
_CLICK_ID = re.compile(r"c2c-[0-9a-f]{8,32}")


class Disposition(enum.StrEnum):
    ANSWERED = "answered"
    MISSED = "missed"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class CallRecord:
    """What the history keeps of one call (times are the clock's seconds: Unix time in the switch)."""

    call_id: str
    direction: str  # "internal" | "outbound" | "inbound" | "originate"
    caller_user_id: str | None
    caller_device_id: str | None
    callee_user_id: str | None
    devices_rung: list[str]
    from_number: str
    to_number: str
    started_at: float
    answered_at: float | None
    ended_at: float
    disposition: Disposition
    hangup_cause: str
    answered_device_id: str | None = None
    trunk_id: str | None = None
    click_id: str = ""


class LegState(enum.Enum):
    CALLING = "calling"
    EARLY = "early"
    CONFIRMED = "confirmed"
    ENDED = "ended"


class CallState(enum.Enum):
    ROUTING = "routing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(eq=False)
class Leg:
    call: Call
    role: str  # "a" (the caller side, or the device in an origination) | "b" (a branch of the fork)
    uac: bool  # we sent the INVITE on this leg
    dest: Source
    device_id: str | None = None
    user_id: str | None = None
    trunk: TrunkConfig | None = None
    invite: Request | None = None
    tx_id: int | None = None
    dialog: Dialog | None = None
    state: LegState = LegState.CALLING
    profile: MediaProfile | None = None
    media_tag: str = field(default_factory=new_tag)
    local_tag: str = field(default_factory=new_tag)
    relayed_media: bool = False  # got an SDP rewritten by rtpengine
    ack: Request | None = None  # the ACK we sent for its 2xx (re-sent on retransmissions)
    final: int | None = None
    auth_tries: int = 0
    ringing: bool = False


@dataclass
class Target:
    """Where one branch of a fork goes."""

    dest: Source
    ruri: str
    to: str
    device_id: str | None = None
    user_id: str | None = None
    profile: MediaProfile = MediaProfile.PLAIN
    trunk: TrunkConfig | None = None
    route: tuple[str, ...] = ()  # preloaded Route set: the binding's Path (RFC 3327)


@dataclass(eq=False)
class Call:
    id: str
    kind: str  # "internal" | "outbound" | "inbound" | "originate"
    started_at: float
    from_number: str
    to_number: str
    caller_user_id: str | None = None
    caller_device_id: str | None = None
    callee_user_id: str | None = None
    a: Leg | None = None
    b: list[Leg] = field(default_factory=list)
    winner: Leg | None = None
    state: CallState = CallState.ROUTING
    answered_at: float | None = None
    ring_deadline: float | None = None
    ack_deadline: float | None = None
    retransmit_at: float | None = None
    retransmit_interval: float = 0.5
    final_to_a: Response | None = None
    offer: bytes = b""
    offer_profile: MediaProfile | None = None
    relay_profile: MediaProfile | None = None  # branches of this profile got rtpengine's rewritten offer
    media_active: bool = False
    devices_rung: list[str] = field(default_factory=list)
    trunk_id: str | None = None
    sent_ringing: bool = False
    click_id: str = ""
    # origination (third-party call control)
    destination: str = ""
    destination_display: str = ""
    on_result: Callable[[bool, str], None] | None = None
    destination_is_extension: bool = False
    caller_display: str = ""
    ended_reason: str = ""
    controller: CallController | None = None  # a feature driving this call (blind transfer: transfer.py)
    recorded: bool = True  # False: a controller's helper call (move.py), no record and no "ended" event

    def legs(self) -> list[Leg]:
        return ([self.a] if self.a is not None else []) + self.b


class _Deadline:
    """``Call.ring_deadline`` / ``ack_deadline`` / ``retransmit_at``: a deadline set anywhere (here,
    origination, transfer) reaches the B2BUA's timer heap, so the next timer is found without looking at
    every call (see :meth:`B2BUA._schedule`)."""

    def __init__(self, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, call: Call | None, owner: type | None = None) -> float | None:
        if call is None:
            return None  # the dataclass default
        value: float | None = call.__dict__.get(self.slot)
        return value

    def __set__(self, call: Call, value: float | None) -> None:
        call.__dict__[self.slot] = value
        if value is not None:
            schedule = call.__dict__.get("_schedule")
            if schedule is not None:
                schedule(value, call)


_DEADLINES = ("ring_deadline", "ack_deadline", "retransmit_at")
for _name in _DEADLINES:
    setattr(Call, _name, _Deadline(_name))


class _CallTable(dict[str, Call]):
    """``B2BUA.calls``: a call put in it has its deadlines, now and later, on the B2BUA's timer heap."""

    def __init__(self, schedule: Callable[[float, Call], None]) -> None:
        super().__init__()
        self._schedule = schedule

    def __setitem__(self, key: str, call: Call) -> None:
        super().__setitem__(key, call)
        call.__dict__["_schedule"] = self._schedule
        for when in (call.ring_deadline, call.ack_deadline, call.retransmit_at):
            if when is not None:
                self._schedule(when, call)


@dataclass
class _Relay:
    """A request relayed from ``origin`` to ``target`` inside a call, waiting for its final answer."""

    call: Call
    origin: Leg
    target: Leg
    server_tx: int
    method: str
    request: Request


CallEventHandler = Callable[[str, dict[str, Any]], None]
CallRecordHandler = Callable[[CallRecord], None]
# told when a call is answered, with what its record needs (its history entry exists from then on)
CallAnsweredHandler = Callable[[ActiveCall], None]
MayCall = Callable[[SipAccount, str], bool]
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class CallController(Protocol):
    """What drives a call the B2BUA does not run alone (:class:`callto.sip.transfer.Transfer`)."""

    def ringing(self, leg: Leg, response: Response, now: float) -> None: ...

    def answered(self, leg: Leg, response: Response, now: float) -> None: ...

    def before_end(self, call: Call, status: int, reason: str | None, cause: str, now: float) -> bool: ...


class Location(Protocol):
    """The registrar's view of where devices are (``callto.sip.registrar.Registrar`` satisfies it)."""

    def bindings_for_user(self, user_id: str) -> list[Binding]: ...

    def bindings_for_extension(self, extension: str) -> list[Binding]: ...

    def bindings(self, device_id: str) -> list[Binding]: ...


@dataclass
class B2BUAConfig:
    domain: str
    contact_host: str
    contact_port: int
    ring_timeout: float = DEFAULT_RING_TIMEOUT
    user_agent: str = "callto"
    # the listener port of each transport (RFC 3261 18, 20.42: a Contact names where the peer reaches us
    # on the transport in use, so a TLS phone's ACK and BYE come to the TLS port); others use contact_port
    contact_ports: tuple[tuple[str, int], ...] = ()


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
        media: Any = None,
        spawn: Spawn | None = None,
        wake: Callable[[], None] | None = None,
        clock: Callable[[], float] | None = None,
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
        self._kept: set[str] = set()
        self.endpoint = endpoint
        self.credentials = credentials
        self.location = location
        self.digest = digest
        self.user_for_extension = user_for_extension
        self.may_call = may_call
        self.route_did = route_did
        self.trunks = trunks or TrunkRouter()
        self.media = media
        self.spawn = spawn
        self.wake = wake or (lambda: None)
        self.clock = clock
        self.on_call_record = on_call_record
        self.on_call_event = on_call_event
        # every deadline of every call, soonest first: (when, sequence, call); see _schedule
        self._timers: list[tuple[float, int, Call]] = []
        self._timer_seq = itertools.count()
        self.calls: dict[str, Call] = _CallTable(self._schedule)
        self._client: dict[int, Leg] = {}  # INVITE client transaction -> the leg it creates
        self._server: dict[int, Leg] = {}  # INVITE server transaction -> the caller's leg
        self._dialogs: dict[tuple[str, str], Leg] = {}  # (Call-ID, our tag) -> leg
        self._relays: dict[int, _Relay] = {}
        self._byes: set[int] = set()
        # client transactions a controller started (re-INVITE, NOTIFY): final response (None: timed out)
        self._owned: dict[int, Callable[[Response | None, float], None]] = {}
        # transactions of finished calls stay known a while (late 487s, a 2xx crossing our CANCEL), then go
        self._linger: deque[tuple[float, list[int]]] = deque()
        self.records: int = 0

    # =====================================================================================================
    # entry points
    # =====================================================================================================
    def handle_event(self, event: Event, now: float) -> bool:
        """Process one endpoint event; False when it is not ours (the caller may answer it)."""
        try:
            if isinstance(event, RequestReceived):
                return self._on_request(event, now)
            if isinstance(event, ResponseReceived):
                return self._on_response(event, now)
            if isinstance(event, CancelReceived):
                return self._on_cancel(event, now)
            if isinstance(event, TransactionTimedOut):
                return self._on_timeout(event, now)
        except (SipMessageError, SipLocalError) as exc:
            log.warning("b2bua could not handle %s: %s", type(event).__name__, exc)
            return True
        return False

    def originate(self, spec: OriginationSpec, now: float, on_result: Callable[[bool, str], None]) -> None:
        """Third-party call control: see :mod:`callto.sip.origination`."""
        from callto.sip import origination

        origination.originate(self, spec, now, on_result)

    def _device_answered(self, leg: Leg, response: Response, now: float) -> None:
        from callto.sip import origination

        origination.device_answered(self, leg, response, now)

    def _schedule(self, when: float, call: Call) -> None:
        """A deadline of ``call`` was set: remember it on the heap (entries it no longer has go stale)."""
        heapq.heappush(self._timers, (when, next(self._timer_seq), call))
        if len(self._timers) > 4 * len(self.calls) + 1024:
            # stale entries pile up (every answered call leaves its ring and ACK deadlines): drop them
            self._timers = [e for e in self._timers if self._live_timer(e[0], e[2])]
            heapq.heapify(self._timers)

    def _live_timer(self, when: float, call: Call) -> bool:
        return self.calls.get(call.id) is call and when in (call.ring_deadline, call.ack_deadline, call.retransmit_at)

    def get_timer(self) -> float | None:
        timers = self._timers
        while timers and not self._live_timer(timers[0][0], timers[0][2]):
            heapq.heappop(timers)
        first = timers[0][0] if timers else None
        if self._linger and (first is None or self._linger[0][0] < first):
            first = self._linger[0][0]
        return first

    def handle_timer(self, now: float) -> None:
        while self._linger and self._linger[0][0] <= now:
            _when, tx_ids = self._linger.popleft()
            for tx_id in tx_ids:
                self._client.pop(tx_id, None)
                self._relays.pop(tx_id, None)
                self._byes.discard(tx_id)
        due: dict[int, Call] = {}
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _seq, call = heapq.heappop(timers)
            if self._live_timer(when, call):
                due.setdefault(id(call), call)
        for call in due.values():
            if call.retransmit_at is not None and call.retransmit_at <= now:
                self._retransmit_final(call, now)
            if call.ring_deadline is not None and call.ring_deadline <= now:
                call.ring_deadline = None
                if call.state in (CallState.ROUTING, CallState.RINGING):
                    self._end(call, now, 480, "Temporarily Unavailable (no answer)", Disposition.MISSED, "no-answer")
            if call.ack_deadline is not None and call.ack_deadline <= now:
                call.ack_deadline = None
                call.retransmit_at = None
                self._end(call, now, 0, "", Disposition.ANSWERED, "no-ack")

    # --- queries ---------------------------------------------------------------------------------------
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
        if request.method == "REFER" or (request.method == "NOTIFY" and request.to.tag is None):
            from callto.sip import transfer

            transfer.handle_request(self, event, now)
            return True
        to_tag = request.to.tag
        if to_tag is not None:
            leg = self._dialogs.get((request.call_id, to_tag))
            if leg is None:
                self.endpoint.reply(event.tx_id, 481, now)
                return True
            self._in_dialog(leg, request, event.tx_id, now)
            return True
        if request.method == "INVITE":
            self._new_invite(request, event.source, event.tx_id, now)
            return True
        if request.method == "BYE":
            self.endpoint.reply(event.tx_id, 481, now)
            return True
        return False

    # --- a new call ------------------------------------------------------------------------------------
    def _new_invite(self, request: Request, source: Source, tx_id: int, now: float) -> None:
        ruri = request.ruri
        dialed = ruri.user if isinstance(ruri, SipURI) else (ruri.number if isinstance(ruri, TelURI) else None)
        if not dialed:
            self.endpoint.reply(tx_id, 404, now, "Not Found (no number in the Request-URI)")
            return
        to_user = user_of(request.to.uri_text)
        inbound = None
        if "proxy-authorization" not in request.headers:
            inbound = self.trunks.inbound(source.addr[0], dialed) or (
                self.trunks.inbound(source.addr[0], to_user) if to_user else None
            )
        account: SipAccount | None = None
        if inbound is None:
            auth = self._authenticate(request, tx_id, now)
            if auth is None:
                return
            account = auth
        body = request.body if request.content_type == "application/sdp" else b""
        offer_profile: MediaProfile | None = None
        if body:
            try:
                offer_profile = MediaProfile.WEBRTC if is_webrtc(parse_sdp(body)) else MediaProfile.PLAIN
            except SdpError as exc:
                self.endpoint.reply(tx_id, 488, now, f"Not Acceptable Here ({exc})")
                return
        frm = request.from_
        call = Call(
            id=uuid.uuid4().hex,
            kind="internal",
            started_at=now,
            from_number=account.extension if account else (user_of(frm.uri_text) or ""),
            to_number=dialed,
            caller_user_id=account.user_id if account else None,
            caller_device_id=account.device_id if account else None,
            offer=body,
            offer_profile=offer_profile,
        )
        leg = Leg(call, "a", False, source, invite=request, tx_id=tx_id)
        if account is not None:
            leg.device_id, leg.user_id = account.device_id, account.user_id
            click = request.headers.get(CLICK_HEADER)
            if click and _CLICK_ID.fullmatch(click.strip()):
                call.click_id = click.strip()
        leg.profile = call.offer_profile or (MediaProfile.WEBRTC if source.transport in ("ws", "wss") else None)
        call.a = leg
        self.calls[call.id] = call
        self._server[tx_id] = leg
        leg.dialog = uas_dialog(request, source, leg.local_tag, self._contact(source.transport))
        display = frm.display
        if inbound is not None:
            trunk, did, ext = inbound
            call.kind = "inbound"
            call.trunk_id = trunk.id
            user_id = None
            if ext is None and self.route_did is not None:
                user_id = self.route_did(trunk.id, did)
            target_ext = ext or did
            if user_id is None and self.user_for_extension is not None:
                user_id = self.user_for_extension(target_ext)
            if user_id is None:
                user_id = self._user_from_bindings(target_ext)
            if user_id is None:
                self._fail(call, now, 404, "Not Found (DID not assigned)", Disposition.FAILED, "no-route")
                return
            self._ring_user(call, user_id, display, now)
            return
        assert account is not None
        display = display or account.extension
        user_id = self.user_for_extension(dialed) if self.user_for_extension is not None else None
        if user_id is None:
            user_id = self._user_from_bindings(dialed)
        if user_id is not None:
            self._ring_user(call, user_id, display, now)
            return
        out_trunk = self.trunks.outbound()
        if out_trunk is None or not _looks_like_number(dialed):
            self._fail(call, now, 404, "Not Found", Disposition.FAILED, "no-route")
            return
        if self.may_call is not None and not self.may_call(account, dialed):
            self._fail(
                call,
                now,
                403,
                "Forbidden (outbound class does not allow this number)",
                Disposition.FAILED,
                "not-permitted",
            )
            return
        call.kind = "outbound"
        self._call_trunk(call, out_trunk, dialed, now)

    def _authenticate(self, request: Request, tx_id: int, now: float) -> SipAccount | None:
        values = request.headers.get_all("proxy-authorization")
        realm = self.digest.realm
        value = next((v for v in values if f'realm="{realm}"' in v), values[0] if values else None)
        found: list[SipAccount] = []

        def lookup(username: str) -> str | None:
            account = self.credentials.lookup(username)
            if account is None:
                return None
            found.append(account)
            return account.password

        result = self.digest.verify(value, request.method, lookup, now=now)
        if result.verdict is Verdict.OK and found:
            return found[-1]
        if result.verdict is Verdict.BAD_REQUEST:
            self.endpoint.reply(tx_id, 400, now, f"Bad Request ({result.reason})")
        elif result.verdict is Verdict.FORBIDDEN:
            self.endpoint.reply(tx_id, 403, now, f"Forbidden ({result.reason})")
        else:
            stale = result.verdict is Verdict.STALE
            user_agent = request.headers.get("user-agent")
            challenges = self.digest.challenges(now, stale=stale, user_agent=user_agent)
            headers = [("Proxy-Authenticate", c) for c in challenges]
            self.endpoint.reply(tx_id, 407, now, headers=headers)
        return None

    def _user_from_bindings(self, extension: str) -> str | None:
        # a device registered under the extension names its user even without a directory
        for binding in self.location.bindings_for_extension(extension):
            return binding.user_id
        return None

    # --- routing -------------------------------------------------------------------------------------
    def _ring_user(self, call: Call, user_id: str, display: str | None, now: float) -> None:
        call.callee_user_id = user_id
        bindings = self.location.bindings_for_user(user_id)
        if not bindings:
            self._fail(call, now, 480, "Temporarily Unavailable (no device online)", Disposition.MISSED, "offline")
            return
        targets = []
        domain = self.config.domain
        for binding in bindings:
            if binding.device_id == call.caller_device_id:
                continue  # a device calling its own extension rings the user's other devices only
            transport = binding.source_transport
            profile = MediaProfile.WEBRTC if transport in ("ws", "wss") else MediaProfile.PLAIN
            dest, route = next_hop(binding)
            targets.append(
                Target(
                    dest=dest,
                    route=route,
                    ruri=binding.contact,
                    # a user without an extension (reached by a DID) is named by the device's own AOR
                    to=f"<sip:{binding.extension}@{domain}>" if binding.extension else f"<{binding.aor}>",
                    device_id=binding.device_id,
                    user_id=binding.user_id,
                    profile=profile,
                )
            )
        if not targets:
            self._fail(
                call, now, 480, "Temporarily Unavailable (no other device online)", Disposition.MISSED, "offline"
            )
            return
        from_uri = f"sip:{call.from_number}@{domain}" if call.from_number else f"sip:anonymous@{domain}"
        self._fork(call, targets, from_uri, display, now)

    def _call_trunk(self, call: Call, trunk: TrunkConfig, number: str, now: float) -> None:
        call.trunk_id = trunk.id
        dest = self.trunks.dest(trunk)
        if ip_literal(dest.addr[0]) is None:  # its name is still being looked up (or cannot be)
            self._fail(call, now, 503, "Service Unavailable (trunk host not resolved)", Disposition.FAILED,
                       "trunk-unresolved")
            return
        host = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
        ruri = f"sip:{number}@{host}:{trunk.port}"
        cli = trunk.caller_id or trunk.username or "anonymous"
        target = Target(dest=dest, ruri=ruri, to=f"<{ruri}>", profile=MediaProfile.PLAIN, trunk=trunk)
        self._fork(call, [target], f"sip:{cli}@{host}", None, now)

    def _fork(self, call: Call, targets: list[Target], from_uri: str, display: str | None, now: float) -> None:
        """Start one branch per target; a branch whose media profile differs gets rtpengine's offer."""
        call.state = CallState.RINGING
        call.ring_deadline = now + self.config.ring_timeout
        offer_profile = call.offer_profile
        mixed = [t for t in targets if offer_profile is not None and t.profile is not offer_profile]
        if mixed and (self.media is None or not self.media.available()):
            same = [t for t in targets if t not in mixed]
            if not same:
                reason = self.media.reason if self.media is not None else "no media relay configured"
                self._fail(
                    call,
                    now,
                    488,
                    "Not Acceptable Here (media relay unavailable)",
                    Disposition.FAILED,
                    "media-unavailable",
                    warning=f"media relay unavailable: {reason}",
                )
                return
            targets, mixed = same, []
        if not mixed or self.spawn is None:
            self._send_branches(call, targets, from_uri, display, {}, now)
            return
        relay_profile = mixed[0].profile
        assert offer_profile is not None
        a_tag = call.a.media_tag if call.a is not None else "a"

        async def relay_offer() -> None:
            try:
                sdp = await self.media.offer(
                    call.id, a_tag, call.offer.decode(), offer_flags(offer_profile, relay_profile)
                )
            except Exception as exc:
                log.warning("rtpengine offer for call %s failed: %s", call.id, exc)
                self._media_failed(call, str(exc))
                self.wake()
                return
            if call.state is CallState.ENDED:
                return
            call.media_active = True
            call.relay_profile = relay_profile
            self._send_branches(call, targets, from_uri, display, {relay_profile: sdp.encode()}, self._now())
            self.wake()

        self.spawn(relay_offer())

    def _media_failed(self, call: Call, reason: str) -> None:
        now = self._now()
        if call.state is CallState.ENDED:
            return
        self._end(
            call,
            now,
            488,
            "Not Acceptable Here (media relay failed)",
            Disposition.FAILED,
            "media-failed",
            warning=f"media relay failed: {reason}",
        )

    def _send_branches(
        self,
        call: Call,
        targets: list[Target],
        from_uri: str,
        display: str | None,
        offers: dict[MediaProfile, bytes],
        now: float,
    ) -> None:
        a = call.a
        copied: list[tuple[str, str]] = []
        if a is not None and a.invite is not None and not a.uac:
            copied = [(n, v) for n in _COPIED_INVITE_HEADERS for v in a.invite.headers.get_all(n)]
        for target in targets:
            headers = Headers()
            for route in target.route:
                headers.add("Route", route)
            from_tag = new_tag()
            name = f"{quote(display)} " if display else ""
            headers.add("From", f"{name}<{from_uri}>;tag={from_tag}")
            headers.add("To", target.to)
            headers.add("Call-ID", f"{uuid.uuid4().hex}@callto")
            headers.add("CSeq", "1 INVITE")
            headers.add("Contact", self._contact(target.dest.transport))
            if copied:
                for name_, value in copied:
                    headers.add(name_, value)
                strip_auto_answer(headers)  # only the caller's headers can ask for auto-answer, never ours
            body = offers.get(target.profile, call.offer)
            if body:
                headers.add("Content-Type", "application/sdp")
            invite = Request("INVITE", target.ruri, headers, body)
            leg = Leg(
                call,
                "b",
                True,
                target.dest,
                device_id=target.device_id,
                user_id=target.user_id,
                trunk=target.trunk,
                invite=invite,
                profile=target.profile,
                local_tag=from_tag,
            )
            leg.relayed_media = target.profile in offers
            call.b.append(leg)
            if target.device_id and target.device_id not in call.devices_rung:
                call.devices_rung.append(target.device_id)
            self._send_invite(leg, now)

    def _send_invite(self, leg: Leg, now: float) -> None:
        assert leg.invite is not None
        try:
            tx_id = self.endpoint.send_request(leg.invite, leg.dest, now)
        except SipLocalError as exc:
            log.warning("cannot send INVITE to %s: %s", leg.dest, exc)
            leg.state = LegState.ENDED
            leg.final = 503
            return
        leg.tx_id = tx_id
        self._client[tx_id] = leg

    # =====================================================================================================
    # responses
    # =====================================================================================================
    def _on_response(self, event: ResponseReceived, now: float) -> bool:
        response = event.response
        tx_id = event.tx_id
        if tx_id is None:
            # a 2xx retransmission after the transaction ended: ACK it again from the dialog
            leg = self._dialogs.get((response.call_id, response.from_.tag or ""))
            if leg is not None and leg.ack is not None and response.cseq.method == "INVITE":
                self.endpoint.send_stateless(_copy_request(leg.ack), leg.dest)
                return True
            return leg is not None
        leg = self._client.get(tx_id)
        if leg is not None and response.cseq.method == "INVITE":
            self._on_invite_response(leg, tx_id, response, now)
            return True
        relay = self._relays.get(tx_id)
        if relay is not None:
            if response.status >= 200:
                del self._relays[tx_id]
                self._relay_final(relay, response, now)
            return True
        owner = self._owned.get(tx_id)
        if owner is not None:
            if response.status >= 200:
                del self._owned[tx_id]
                owner(response, now)
            return True
        if tx_id in self._byes:
            if response.status >= 200:
                self._byes.discard(tx_id)
            return True
        return False

    def _on_invite_response(self, leg: Leg, tx_id: int, response: Response, now: float) -> None:
        status = response.status
        call = leg.call
        if status < 200:
            if status == 100:
                return
            if leg.state is LegState.CALLING:
                leg.state = LegState.EARLY
            if not leg.ringing:
                leg.ringing = True
                self._leg_ringing(leg, response, now)
            return
        if status < 300:
            if leg.dialog is None or leg.state is not LegState.CONFIRMED:
                assert leg.invite is not None
                leg.dialog = uac_dialog(leg.invite, response, leg.dest)
                leg.dialog.confirmed = True
                leg.state = LegState.CONFIRMED
                self._dialogs[leg.dialog.key] = leg
                self._leg_answered(leg, response, now)
            elif leg.ack is not None:
                self.endpoint.send_stateless(_copy_request(leg.ack), leg.dest)
            return
        self._client.pop(tx_id, None)
        retry = status in (401, 407) and leg.trunk is not None and leg.auth_tries < 1
        if retry and call.state is not CallState.ENDED and self._retry_with_auth(leg, response, now):
            return
        leg.state = LegState.ENDED
        # the provider refused our trunk credentials: the device must not be asked for them
        leg.final = 503 if status in (401, 407) else status
        self._leg_failed(leg, response, now)

    def _retry_with_auth(self, leg: Leg, response: Response, now: float) -> bool:
        from callto.sip.auth import DigestClient

        trunk = leg.trunk
        assert trunk is not None and leg.invite is not None
        header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
        value = DigestClient(trunk.username, trunk.password).authorization(
            response.headers.get_all(header), "INVITE", leg.invite.uri
        )
        if value is None:
            return False
        leg.auth_tries += 1
        old = leg.invite
        headers = Headers()
        for name, val in old.headers:
            if name.lower() in ("via", "authorization", "proxy-authorization", "cseq"):
                continue
            headers.add(name, val)
        headers.add("CSeq", f"{old.cseq.seq + 1} INVITE")
        headers.add("Authorization" if response.status == 401 else "Proxy-Authorization", value)
        leg.invite = Request("INVITE", old.uri, headers, old.body)
        leg.state = LegState.CALLING
        self._send_invite(leg, now)
        return True

    # --- what a leg's answer means for its call ----------------------------------------------------------
    def _leg_ringing(self, leg: Leg, response: Response, now: float) -> None:
        call = leg.call
        if leg.role == "a":  # origination: the device rings
            self._event("ringing", call, stage="device", device_id=leg.device_id)
            if call.on_result is not None:
                on_result, call.on_result = call.on_result, None
                on_result(True, "ringing")
            return
        if call.state is not CallState.RINGING:
            return
        if call.controller is not None:
            call.controller.ringing(leg, response, now)
            return
        a = call.a
        if call.kind == "originate":
            self._event("ringing", call, stage="destination", device_id=leg.device_id)
            return
        if a is None or a.tx_id is None or call.sent_ringing:
            return
        call.sent_ringing = True
        self._event("ringing", call, device_id=leg.device_id)
        status, body = 180, b""
        if len(call.b) == 1 and response.body and not leg.relayed_media and response.status == 183:
            status, body = 183, response.body  # early media (a provider's ringback) on a single branch
        self._respond_a(call, status, now, body=body)

    def _leg_answered(self, leg: Leg, response: Response, now: float) -> None:
        call = leg.call
        if leg.role == "a":
            self._device_answered(leg, response, now)
            return
        if call.winner is not None or call.state is CallState.ENDED:
            # a second branch answered too late (or after the call ended): take and drop it (16.7 / 13.2.2.4)
            self._ack(leg, b"")
            self._bye(leg, now)
            return
        call.winner = leg
        call.ring_deadline = None
        for other in call.b:
            if other is not leg and other.state in (LegState.CALLING, LegState.EARLY):
                self._cancel(other, now)
        if call.controller is not None:
            call.controller.answered(leg, response, now)
            return
        body = response.body
        if leg.relayed_media and call.relay_profile is not None and self.spawn is not None and body:
            a_profile = call.offer_profile or MediaProfile.PLAIN
            a_tag = call.a.media_tag if call.a is not None else "a"

            async def relay_answer() -> None:
                try:
                    sdp = await self.media.answer(
                        call.id,
                        a_tag,
                        leg.media_tag,
                        body.decode(),
                        answer_flags(leg.profile or MediaProfile.PLAIN, a_profile),
                    )
                except Exception as exc:
                    log.warning("rtpengine answer for call %s failed: %s", call.id, exc)
                    self._ack(leg, b"")
                    self._media_failed(call, str(exc))
                    self.wake()
                    return
                self._deliver_answer(call, leg, sdp.encode(), self._now())
                self.wake()

            self.spawn(relay_answer())
            return
        if call.media_active:
            self._release_media(call)
        self._deliver_answer(call, leg, body, now)

    def _deliver_answer(self, call: Call, leg: Leg, body: bytes, now: float) -> None:
        if call.state is CallState.ENDED:
            self._ack(leg, b"")
            self._bye(leg, now)
            return
        call.state = CallState.ANSWERED
        call.answered_at = now
        stage = {"stage": "destination"} if call.kind == "originate" else {}
        self._event("answered", call, device_id=leg.device_id, **stage)
        a = call.a
        assert a is not None
        if a.uac:
            # origination: the device offered in its 2xx, the destination answered: both ACKs now
            self._ack(leg, b"")
            self._ack(a, body)
            self.keep_answered(call)
            return
        # the callee's ACK waits for the caller's (end to end: a delayed offer's answer rides on it)
        self._respond_a(call, 200, now, body=body)
        call.ack_deadline = now + ACK_TIMEOUT
        self.keep_answered(call)

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
            self._kept.add(call.id)
        if self.on_call_answered is not None:
            try:
                self.on_call_answered(active)
            except Exception:
                log.exception("on_call_answered failed")

    def _leg_failed(self, leg: Leg, response: Response, now: float) -> None:
        call = leg.call
        if leg.role == "a":  # origination: the device did not answer
            why = f"device answered {response.status} {response.reason}"
            disposition = Disposition.BUSY if response.status in (486, 600) else Disposition.FAILED
            if call.state is not CallState.ENDED:
                self._finish(call, now, disposition, why)
            return
        if call.state is CallState.ENDED or call.winner is not None:
            return
        if any(b.state is not LegState.ENDED for b in call.b):
            return
        status, reason = _best_failure([b.final or 500 for b in call.b], response)
        disposition = (
            Disposition.BUSY
            if status in (486, 600)
            else (Disposition.MISSED if status in (480, 408, 487, 603) else Disposition.FAILED)
        )
        self._fail(call, now, status, reason, disposition, f"{status}")

    # =====================================================================================================
    # the caller's side
    # =====================================================================================================
    def _respond_a(
        self,
        call: Call,
        status: int,
        now: float,
        *,
        body: bytes = b"",
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        a = call.a
        if a is None or a.tx_id is None or a.uac or a.invite is None:
            return
        extra = list(headers or [])
        if status < 300 and status != 100:
            extra.append(("Contact", self._contact(a.dest.transport)))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = make_response(
            a.invite, status, reason, to_tag=a.local_tag, headers=extra, body=body, server=self.config.user_agent
        )
        try:
            self.endpoint.respond(a.tx_id, response, now)
        except SipLocalError as exc:
            log.debug("cannot answer caller of %s with %s: %s", call.id, status, exc)
            return
        if status >= 200:
            self._server.pop(a.tx_id, None)
        if 200 <= status < 300:
            a.state = LegState.CONFIRMED
            assert a.dialog is not None
            a.dialog.confirmed = True
            self._dialogs[a.dialog.key] = a
            if not a.dest.reliable:
                call.final_to_a = response
                call.retransmit_interval = 0.5
                call.retransmit_at = now + 0.5
        elif status >= 300:
            a.state = LegState.ENDED

    def _retransmit_final(self, call: Call, now: float) -> None:
        a = call.a
        if call.final_to_a is None or a is None or call.state is CallState.ENDED:
            call.retransmit_at = None
            return
        self.endpoint.send_stateless(call.final_to_a, a.dest)
        call.retransmit_interval = min(call.retransmit_interval * 2, 4.0)
        call.retransmit_at = now + call.retransmit_interval

    def _on_ack(self, request: Request, now: float) -> None:
        leg = self._dialogs.get((request.call_id, request.to.tag or ""))
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
                self._ack(winner, body)

    def _on_cancel(self, event: CancelReceived, now: float) -> bool:
        leg = self._server.get(event.tx_id)
        if leg is None:
            return False
        call = leg.call
        self._end(call, now, 487, None, Disposition.CANCELLED, "caller-cancelled")
        return True

    # =====================================================================================================
    # inside a dialog
    # =====================================================================================================
    def _in_dialog(self, leg: Leg, request: Request, tx_id: int, now: float) -> None:
        dialog = leg.dialog
        call = leg.call
        assert dialog is not None
        if not dialog.accept_remote_seq(request):
            self.endpoint.reply(tx_id, 500, now, "Server Internal Error (CSeq out of order)")
            return
        method = request.method
        if method == "BYE":
            self.endpoint.reply(tx_id, 200, now)
            leg.state = LegState.ENDED
            self._dialogs.pop(dialog.key, None)
            side = "caller" if leg is call.a else "callee"
            if call.kind == "originate":
                side = "device" if leg is call.a else "destination"
            self._end(call, now, 0, None, Disposition.ANSWERED, f"{side}-hangup")
            return
        other = self._other(leg)
        if other is None or other.dialog is None or other.state is not LegState.CONFIRMED:
            if method == "INVITE" and call.state is not CallState.ANSWERED:
                self.endpoint.reply(tx_id, 491, now)
            else:
                self.endpoint.reply(tx_id, 481 if other is None else 491, now)
            return
        if method == "INVITE":
            dialog.refresh_target(request)
            if any(r.origin is leg or r.target is leg for r in self._relays.values() if r.method == "INVITE"):
                self.endpoint.reply(tx_id, 491, now)
                return
            body = request.body if request.content_type == "application/sdp" else b""
            if body and call.media_active and self.spawn is not None:
                origin_profile = leg.profile or MediaProfile.PLAIN
                target_profile = other.profile or MediaProfile.PLAIN

                async def relay_reoffer() -> None:
                    try:
                        sdp = await self.media.offer(
                            call.id, leg.media_tag, body.decode(), offer_flags(origin_profile, target_profile)
                        )
                    except Exception as exc:
                        self.endpoint.reply(tx_id, 488, self._now(), f"Not Acceptable Here (media relay: {exc})")
                        self.wake()
                        return
                    self._relay(call, leg, other, tx_id, request, sdp.encode(), self._now())
                    self.wake()

                self.spawn(relay_reoffer())
                return
            self._relay(call, leg, other, tx_id, request, body, now)
            return
        if method in ("INFO", "UPDATE", "OPTIONS", "MESSAGE", "NOTIFY"):
            if method == "UPDATE" and request.body:
                # an SDP in UPDATE would need the media relay and the offer/answer state: not supported
                self.endpoint.reply(tx_id, 488, now, "Not Acceptable Here (UPDATE with SDP)")
                return
            self._relay(call, leg, other, tx_id, request, request.body, now)
            return
        self.endpoint.reply(tx_id, 501, now)

    def _relay(
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
        self._relays[tx_id] = _Relay(call, origin, target, server_tx, request.method, outgoing)

    def _relay_final(self, relay: _Relay, response: Response, now: float) -> None:
        call = relay.call
        status = response.status
        body = response.body if response.content_type == "application/sdp" or relay.method != "INVITE" else b""
        if relay.method == "INVITE" and 200 <= status < 300:
            target = relay.target
            assert target.dialog is not None
            target.dialog.refresh_target(response)
            self.endpoint.send_stateless(target.dialog.ack(relay.request.cseq.seq), target.dest)
            if body and call.media_active and self.spawn is not None:
                origin_profile = relay.origin.profile or MediaProfile.PLAIN
                target_profile = target.profile or MediaProfile.PLAIN

                async def relay_reanswer() -> None:
                    try:
                        sdp = await self.media.answer(
                            call.id,
                            relay.origin.media_tag,
                            target.media_tag,
                            body.decode(),
                            answer_flags(target_profile, origin_profile),
                        )
                    except Exception as exc:
                        self.endpoint.reply(relay.server_tx, 500, self._now(), f"Server Internal Error ({exc})")
                        self.wake()
                        return
                    self._answer_relayed(relay, status, sdp.encode(), response, self._now())
                    self.wake()

                self.spawn(relay_reanswer())
                return
        self._answer_relayed(relay, status, body, response, now)

    def _answer_relayed(self, relay: _Relay, status: int, body: bytes, response: Response, now: float) -> None:
        headers: list[tuple[str, str]] = []
        if body:
            headers.append(("Content-Type", response.headers.get("content-type") or "application/sdp"))
        if relay.method == "INVITE" and 200 <= status < 300:
            headers.append(("Contact", self._contact(relay.origin.dest.transport)))
        try:
            self.endpoint.reply(relay.server_tx, status, now, response.reason, headers=headers, body=body)
        except SipLocalError as exc:
            log.debug("relayed %s answer not deliverable: %s", relay.method, exc)

    # =====================================================================================================
    # timeouts
    # =====================================================================================================
    def _on_timeout(self, event: TransactionTimedOut, now: float) -> bool:
        leg = self._client.pop(event.tx_id, None)
        if leg is not None:
            leg.state = LegState.ENDED
            leg.final = 408
            fake = make_response(event.request, 408)
            self._leg_failed(leg, fake, now)
            return True
        relay = self._relays.pop(event.tx_id, None)
        if relay is not None:
            with contextlib.suppress(SipLocalError):
                self.endpoint.reply(relay.server_tx, 408, now)
            return True
        if event.tx_id in self._byes:
            self._byes.discard(event.tx_id)
            return True
        owner = self._owned.pop(event.tx_id, None)
        if owner is not None:
            owner(None, now)
            return True
        return False

    # =====================================================================================================
    # ending calls
    # =====================================================================================================
    def connection_lost(self, conn_id: int, now: float) -> None:
        """A stream (TCP, WebSocket) closed: calls with a leg on it end, the other side gets BYE/CANCEL."""
        for call in list(self.calls.values()):
            gone = [leg for leg in call.legs() if leg.dest.conn_id == conn_id and leg.state is not LegState.ENDED]
            if not gone:
                continue
            for leg in gone:
                leg.state = LegState.ENDED
                if leg.dialog is not None:
                    self._dialogs.pop(leg.dialog.key, None)
            if call.winner is None and any(b.state is not LegState.ENDED for b in call.b) and call.a not in gone:
                continue  # one ringing device went away; the others still ring
            disposition = Disposition.ANSWERED if call.state is CallState.ANSWERED else Disposition.FAILED
            self._end(call, now, 0, None, disposition, "connection-lost")

    def hangup(self, call_id: str, now: float) -> bool:
        call = self.calls.get(call_id)
        if call is None or call.state is CallState.ENDED:
            return False
        disposition = Disposition.ANSWERED if call.state is CallState.ANSWERED else Disposition.CANCELLED
        self._end(call, now, 487, "Request Terminated", disposition, "hangup-requested")
        return True

    def _fail(
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
        self._end(call, now, status, reason, disposition, cause, warning=warning)

    def _end(
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
        answered = call.state is CallState.ANSWERED
        call.state = CallState.ENDED
        call.ring_deadline = call.ack_deadline = call.retransmit_at = None
        a = call.a
        if a is not None and a.state is not LegState.ENDED:
            if a.uac:
                if a.state is LegState.CONFIRMED:
                    if a.ack is None and a.invite is not None and call.offer:
                        self._ack(a, reject_all(call.offer))  # it offered in its 2xx: refuse, then hang up
                    elif a.ack is None:
                        self._ack(a, b"")
                    self._bye(a, now)
                else:
                    self._cancel(a, now)
            elif a.state is LegState.CONFIRMED:
                self._bye(a, now)
            else:
                headers = [("Warning", f'399 callto "{warning}"')] if warning else None
                self._respond_a(call, status or 480, now, reason=reason, headers=headers)
        for leg in call.b:
            if leg.state is LegState.CONFIRMED:
                if leg.ack is None:
                    self._ack(leg, b"")
                self._bye(leg, now)
            elif leg.state in (LegState.CALLING, LegState.EARLY):
                self._cancel(leg, now)
        if call.on_result is not None:
            on_result, call.on_result = call.on_result, None
            on_result(False, reason or cause)
        if not answered and disposition is Disposition.ANSWERED:
            disposition = Disposition.CANCELLED
        self._finish(call, now, disposition, cause)

    def _finish(self, call: Call, now: float, disposition: Disposition, cause: str) -> None:
        if call.state is not CallState.ENDED:
            call.state = CallState.ENDED
            for leg in call.legs():
                if leg.state in (LegState.CALLING, LegState.EARLY):
                    self._cancel(leg, now)
                elif leg.state is LegState.CONFIRMED:
                    self._bye(leg, now)
        call.ring_deadline = call.ack_deadline = call.retransmit_at = None
        if call.on_result is not None:
            on_result, call.on_result = call.on_result, None
            on_result(False, cause)
        if call.media_active:
            self._release_media(call)
        self.calls.pop(call.id, None)
        if call.id in self._kept and self.active_calls is not None:
            self._kept.discard(call.id)
            self.active_calls.drop(call.id)
        # a call's INVITE client transactions are its legs' (a leg moved to another call is that one's);
        # looking them up, not scanning _client, which holds every call of the last LINGER seconds
        stale = [leg.tx_id for leg in call.legs() if leg.tx_id is not None and self._client.get(leg.tx_id) is leg]
        if self._relays:
            stale += [t for t, relay in self._relays.items() if relay.call is call]
        # forgotten in whole seconds: the calls ending within one second share one timer wake-up
        when = float(math.ceil(now + LINGER))
        if self._linger and self._linger[-1][0] == when:
            self._linger[-1][1].extend(stale)
        else:
            self._linger.append((when, stale))
        for leg in call.legs():
            if leg.dialog is not None:
                self._dialogs.pop(leg.dialog.key, None)
            if leg.tx_id is not None:
                self._server.pop(leg.tx_id, None)
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
        if not call.recorded:
            return
        self.records += 1
        self._event("ended", call, disposition=disposition.value, cause=cause)
        if self.on_call_record is not None:
            try:
                self.on_call_record(record)
            except Exception:
                log.exception("on_call_record failed")

    # --- leg primitives ----------------------------------------------------------------------------------
    def _ack(self, leg: Leg, body: bytes) -> None:
        if leg.dialog is None or leg.invite is None or leg.ack is not None:
            return
        ack = leg.dialog.ack(leg.invite.cseq.seq, body=body)
        leg.ack = ack
        self.endpoint.send_stateless(_copy_request(ack), leg.dest)

    def _bye(self, leg: Leg, now: float) -> None:
        if leg.dialog is None:
            return
        leg.state = LegState.ENDED
        self._dialogs.pop(leg.dialog.key, None)
        try:
            tx_id = self.endpoint.send_request(leg.dialog.request("BYE"), leg.dest, now)
        except SipLocalError:
            return
        self._byes.add(tx_id)

    def _cancel(self, leg: Leg, now: float) -> None:
        leg.state = LegState.ENDED
        if leg.tx_id is not None:
            # the INVITE's final answer (487, or a 2xx that crossed) still arrives through _client
            self.endpoint.cancel(leg.tx_id, now)

    def _other(self, leg: Leg) -> Leg | None:
        call = leg.call
        if leg is call.a:
            return call.winner
        if leg is call.winner:
            return call.a
        return None

    def _release_media(self, call: Call) -> None:
        call.media_active = False
        if self.media is None or self.spawn is None:
            return
        a_tag = call.a.media_tag if call.a is not None else "a"
        media = self.media

        async def delete() -> None:
            try:
                await media.delete(call.id, a_tag)
            except Exception as exc:
                log.debug("rtpengine delete for %s: %s", call.id, exc)

        self.spawn(delete())

    # =====================================================================================================
    # the public interface for call controllers (move.py uses only these; kept small so it ports to the
    # sans-IO B2BUA: media requests become effects there, the rest maps onto its leg/call methods)
    # =====================================================================================================
    def live_leg(self, user_id: str, call_id: str | None = None) -> Leg | None:
        """The confirmed leg, on one of ``user_id``'s devices, of an answered two-party call of theirs
        (``call_id``, or their only such call); None when there is none, or it is someone else's."""
        calls = list(self.calls.values()) if call_id is None else [c for c in (self.calls.get(call_id),) if c]
        for call in calls:
            if call.state is not CallState.ANSWERED or not call.recorded:
                continue
            for leg in (call.a, call.winner):
                other = self._other(leg) if leg is not None else None
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

    def other_leg(self, leg: Leg) -> Leg | None:
        """The party ``leg`` talks to in its call."""
        return self._other(leg)

    def ring_device(
        self,
        controller: CallController,
        binding: Binding,
        from_uri: str,
        display: str | None,
        headers: list[tuple[str, str]],
        ring_timeout: float,
        now: float,
    ) -> Call:
        """INVITE (without SDP: the device's 2xx makes the offer) one registered contact, in a helper call
        that ``controller`` drives (ringing / answered / before_end) and that leaves no record."""
        profile = MediaProfile.WEBRTC if binding.source_transport in ("ws", "wss") else MediaProfile.PLAIN
        call = Call(id=uuid.uuid4().hex, kind="helper", started_at=now, from_number="", to_number="",
                    callee_user_id=binding.user_id, controller=controller, recorded=False)
        dest, route = next_hop(binding)
        leg = Leg(call, "b", True, dest, device_id=binding.device_id, user_id=binding.user_id, profile=profile)
        out = Headers()
        for hop in route:
            out.add("Route", hop)
        name = f"{quote(display)} " if display else ""
        out.add("From", f"{name}<{from_uri}>;tag={leg.local_tag}")
        to = f"<sip:{binding.extension}@{self.config.domain}>" if binding.extension else f"<{binding.aor}>"
        out.add("To", to)
        out.add("Call-ID", f"{uuid.uuid4().hex}@callto")
        out.add("CSeq", "1 INVITE")
        out.add("Contact", self._contact(dest.transport))
        out.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE")
        for header, value in headers:
            out.add(header, value)
        leg.invite = Request("INVITE", binding.contact, out)
        call.b.append(leg)
        call.state = CallState.RINGING
        call.ring_deadline = now + ring_timeout
        self.calls[call.id] = call
        self._send_invite(leg, now)
        return call

    def reoffer(self, leg: Leg, sdp: bytes, now: float, on_answer: Callable[[Response | None, float], None]) -> bool:
        """re-INVITE a confirmed leg with ``sdp``; ``on_answer(final response or None on timeout, now)``,
        a 2xx already ACKed. False when it could not be sent."""
        if leg.state is not LegState.CONFIRMED or leg.dialog is None:
            return False
        request = leg.dialog.request("INVITE", body=sdp, content_type="application/sdp")
        request.headers.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE")
        request.headers.add("Contact", self._contact(leg.dest.transport))
        try:
            tx_id = self.endpoint.send_request(request, leg.dest, now)
        except SipLocalError:
            return False
        dialog = leg.dialog

        def answered(response: Response | None, when: float) -> None:
            if response is not None and response.status < 300:
                dialog.refresh_target(response)
                self.endpoint.send_stateless(dialog.ack(request.cseq.seq), leg.dest)
            on_answer(response, when)

        self._owned[tx_id] = answered
        return True

    def ack_leg(self, leg: Leg, sdp: bytes) -> None:
        """ACK a leg's 2xx (carrying the answer to its offer)."""
        self._ack(leg, sdp)

    def end_call(self, call: Call, now: float, status: int, reason: str | None, cause: str) -> None:
        """End ``call`` (a helper call: CANCEL or ACK+BYE its leg) for ``cause``."""
        self._end(call, now, status, reason, Disposition.FAILED, cause)

    def adopt_leg(self, call: Call, leg: Leg, replacing: Leg, now: float) -> None:
        """``leg`` (answered in a helper call) takes ``replacing``'s place in ``call``; ``replacing`` gets a
        BYE, the helper call goes without a record, ``call`` keeps its id and its one record."""
        helper = leg.call
        helper.b = [b for b in helper.b if b is not leg]
        helper.winner = None
        helper.controller = None
        helper.media_active = False
        if helper is not call:
            self._finish(helper, now, Disposition.FAILED, "adopted")
        self._bye(replacing, now)
        leg.call = call
        if call.a is replacing:
            leg.role = "a"
            call.a = leg
        else:
            call.b = [leg if b is replacing else b for b in call.b]
            call.winner = leg
        if leg.device_id and leg.device_id not in call.devices_rung:
            call.devices_rung.append(leg.device_id)
        if leg.dialog is not None:
            self._dialogs[leg.dialog.key] = leg
        self.keep_answered(call)

    def media_needed(self, one: Leg, other: Leg) -> bool:
        """Whether two legs' media must go through rtpengine (WebRTC meets plain RTP)."""
        return (one.profile or MediaProfile.PLAIN) is not (other.profile or MediaProfile.PLAIN)

    def media_ready(self) -> bool:
        return self.media is not None and self.spawn is not None and bool(self.media.available())

    def media_offer(
        self, call: Call, leg: Leg, toward: Leg, sdp: bytes, then: Callable[[bytes | None, float], None]
    ) -> None:
        """rtpengine rewrites ``leg``'s offer for ``toward``, in a fresh session of ``call`` (its session so
        far is deleted first); ``then(sdp or None on failure, now)``. Needs :meth:`media_ready`."""
        media, spawn = self.media, self.spawn
        assert media is not None and spawn is not None
        old = call.a.media_tag if call.media_active and call.a is not None else None
        flags = offer_flags(leg.profile or MediaProfile.PLAIN, toward.profile or MediaProfile.PLAIN)

        async def run() -> None:
            try:
                if old is not None:
                    with contextlib.suppress(Exception):
                        await media.delete(call.id, old)
                rewritten: bytes | None = (await media.offer(call.id, leg.media_tag, sdp.decode(), flags)).encode()
                call.media_active = True
            except Exception as exc:
                log.warning("rtpengine offer for %s failed: %s", call.id, exc)
                rewritten = None
            then(rewritten, self._now())
            self.wake()

        spawn(run())

    def media_answer(
        self, call: Call, leg: Leg, toward: Leg, sdp: bytes, then: Callable[[bytes | None, float], None]
    ) -> None:
        """rtpengine rewrites ``leg``'s answer to the offer :meth:`media_offer` made from ``toward``."""
        media, spawn = self.media, self.spawn
        assert media is not None and spawn is not None
        flags = answer_flags(leg.profile or MediaProfile.PLAIN, toward.profile or MediaProfile.PLAIN)

        async def run() -> None:
            try:
                text = await media.answer(call.id, toward.media_tag, leg.media_tag, sdp.decode(), flags)
                rewritten: bytes | None = text.encode()
            except Exception as exc:
                log.warning("rtpengine answer for %s failed: %s", call.id, exc)
                rewritten = None
            then(rewritten, self._now())
            self.wake()

        spawn(run())

    def release_media(self, call: Call) -> None:
        """Delete ``call``'s rtpengine session (its legs now meet without it)."""
        if call.media_active:
            self._release_media(call)

    def call_event(self, kind: str, call: Call, **extra: Any) -> None:
        """Tell ``on_call_event`` about ``call`` (kind ``moving`` / ``moved`` / ``move_failed`` ...)."""
        self._event(kind, call, **extra)

    # --- helpers -----------------------------------------------------------------------------------------
    def _contact(self, transport: str) -> str:
        port = next((p for t, p in self.config.contact_ports if t == transport), self.config.contact_port)
        return local_contact(self.config.contact_host, port, transport)

    def _now(self) -> float:
        if self.clock is None:
            raise SipLocalError("the B2BUA needs a clock to resume after a media request")
        return self.clock()

    def _event(self, kind: str, call: Call, **extra: Any) -> None:
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


def _copy_request(request: Request) -> Request:
    """A fresh copy, so the endpoint may add its Via to each transmission of a stored ACK."""
    headers = Headers([(n, v) for n, v in request.headers if n.lower() != "via"])
    return Request(request.method, request.uri, headers, request.body)


def _best_failure(statuses: list[int], last: Response) -> tuple[int, str | None]:
    """RFC 3261 16.7 in short: a 6xx wins, then busy, then the lowest class, 480 when nothing better."""
    six = [s for s in statuses if s >= 600]
    if six:
        return six[0], None
    if 486 in statuses:
        return 486, None
    if all(s in (408, 487, 480) for s in statuses):
        return 480, "Temporarily Unavailable (no answer)"
    four = [s for s in statuses if 400 <= s < 500 and s not in (401, 407, 408, 487)]
    if four:
        status = four[0]
        return status, last.reason if last.status == status else None
    return (statuses[0] if statuses else 480), None


def _looks_like_number(dialed: str) -> bool:
    text = dialed.lstrip("+")
    return bool(text) and text.replace("*", "").replace("#", "").isdigit()
