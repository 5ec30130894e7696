"""RFC 3261 section 17 transactions (with the RFC 6026 Accepted state), as pure state machines.

Owns the four transaction kinds, their states (:class:`TxState`), the inputs that move them
(:class:`TxInput`) and the transition table :data:`TRANSITIONS` (``{kind: {state: {input: next_state}}}``).
A network input that the table does not list is absorbed (a late retransmission); a TU input it does not
list is our own bug and raises :class:`~callto.sip.errors.SipLocalError`. Timers A-M are deadlines
computed from the ``now`` passed in; nothing here reads a clock. Each call returns the actions the
endpoint must carry out: :class:`Send` (to the transaction's peer), :class:`PassUp` (to the TU),
:class:`TimedOut` and :class:`Terminated`.

Compaction (:meth:`Transaction.compact`, called by the endpoint): a transaction in Completed/Confirmed only
absorbs retransmissions for up to 32 s (Timers D, H, I, K), so it then keeps its request, last response and
ACK as wire bytes instead of parsed messages (~20 GC-tracked objects per transaction); a :class:`Send` then carries
bytes. The request is parsed back only if a late timeout or transport error needs it for the TU.

Matching (17.1.3, 17.2.3): :func:`server_key` uses the RFC 3261 branch + sent-by + method, with the RFC 2543
fallback (Request-URI, From tag, Call-ID, CSeq, top Via) for requests without a magic-cookie branch;
:func:`client_key` uses our branch + CSeq method.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from callto.sip.errors import SipLocalError
from callto.sip.message import Headers, Limits, Message, Request, Response, new_tag, parse_message


@dataclass(frozen=True, slots=True)
class Timers:
    """RFC 3261 timer base values in seconds (17.1.1.1 and table 4)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class TxKind(enum.Enum):
    INVITE_CLIENT = "invite-client"
    NON_INVITE_CLIENT = "non-invite-client"
    INVITE_SERVER = "invite-server"
    NON_INVITE_SERVER = "non-invite-server"


class TxState(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class TxInput(enum.Enum):
    RECV_1XX = "recv-1xx"
    RECV_2XX = "recv-2xx"
    RECV_FINAL = "recv-300-699"
    RECV_REQUEST = "recv-request"  # a retransmission of the request that created a server transaction
    RECV_ACK = "recv-ack"
    SEND_1XX = "send-1xx"
    SEND_2XX = "send-2xx"
    SEND_FINAL = "send-300-699"
    TIMER_A = "A"
    TIMER_B = "B"
    TIMER_D = "D"
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_J = "J"
    TIMER_K = "K"
    TIMER_L = "L"
    TIMER_M = "M"
    TRANSPORT_ERROR = "transport-error"


K, S, I = TxKind, TxState, TxInput  # noqa: E741 - short aliases keep the table readable

TRANSITIONS: dict[TxKind, dict[TxState, dict[TxInput, TxState]]] = {
    # Figure 5 + RFC 6026 figure 3
    K.INVITE_CLIENT: {
        S.CALLING: {
            I.RECV_1XX: S.PROCEEDING,
            I.RECV_2XX: S.ACCEPTED,
            I.RECV_FINAL: S.COMPLETED,
            I.TIMER_A: S.CALLING,
            I.TIMER_B: S.TERMINATED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.PROCEEDING: {I.RECV_1XX: S.PROCEEDING, I.RECV_2XX: S.ACCEPTED, I.RECV_FINAL: S.COMPLETED},
        S.COMPLETED: {I.RECV_FINAL: S.COMPLETED, I.TIMER_D: S.TERMINATED, I.TRANSPORT_ERROR: S.TERMINATED},
        S.ACCEPTED: {I.RECV_2XX: S.ACCEPTED, I.TIMER_M: S.TERMINATED},
    },
    # Figure 6
    K.NON_INVITE_CLIENT: {
        S.TRYING: {
            I.RECV_1XX: S.PROCEEDING,
            I.RECV_2XX: S.COMPLETED,
            I.RECV_FINAL: S.COMPLETED,
            I.TIMER_E: S.TRYING,
            I.TIMER_F: S.TERMINATED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.PROCEEDING: {
            I.RECV_1XX: S.PROCEEDING,
            I.RECV_2XX: S.COMPLETED,
            I.RECV_FINAL: S.COMPLETED,
            I.TIMER_E: S.PROCEEDING,
            I.TIMER_F: S.TERMINATED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {I.TIMER_K: S.TERMINATED},
    },
    # Figure 7 + RFC 6026 figure 5
    K.INVITE_SERVER: {
        S.PROCEEDING: {
            I.RECV_REQUEST: S.PROCEEDING,
            I.SEND_1XX: S.PROCEEDING,
            I.SEND_2XX: S.ACCEPTED,
            I.SEND_FINAL: S.COMPLETED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.ACCEPTED: {I.SEND_2XX: S.ACCEPTED, I.TIMER_L: S.TERMINATED},
        S.COMPLETED: {
            I.RECV_REQUEST: S.COMPLETED,
            I.RECV_ACK: S.CONFIRMED,
            I.TIMER_G: S.COMPLETED,
            I.TIMER_H: S.TERMINATED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.CONFIRMED: {I.RECV_ACK: S.CONFIRMED, I.TIMER_I: S.TERMINATED},
    },
    # Figure 8
    K.NON_INVITE_SERVER: {
        S.TRYING: {I.SEND_1XX: S.PROCEEDING, I.SEND_2XX: S.COMPLETED, I.SEND_FINAL: S.COMPLETED},
        S.PROCEEDING: {
            I.RECV_REQUEST: S.PROCEEDING,
            I.SEND_1XX: S.PROCEEDING,
            I.SEND_2XX: S.COMPLETED,
            I.SEND_FINAL: S.COMPLETED,
            I.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {I.RECV_REQUEST: S.COMPLETED, I.TIMER_J: S.TERMINATED, I.TRANSPORT_ERROR: S.TERMINATED},
    },
}

_TU_INPUTS = frozenset((I.SEND_1XX, I.SEND_2XX, I.SEND_FINAL))


@dataclass(frozen=True, slots=True)
class Send:
    message: Message | bytes  # bytes once the transaction is compacted


@dataclass(frozen=True, slots=True)
class PassUp:
    message: Message


@dataclass(frozen=True, slots=True)
class TimedOut:
    timer: str


@dataclass(frozen=True, slots=True)
class Terminated:
    pass


Action = Send | PassUp | TimedOut | Terminated


def response_input(status: int, *, sending: bool) -> TxInput:
    if status < 200:
        return I.SEND_1XX if sending else I.RECV_1XX
    if status < 300:
        return I.SEND_2XX if sending else I.RECV_2XX
    return I.SEND_FINAL if sending else I.RECV_FINAL


ServerKey = tuple[str, ...]
ClientKey = tuple[str, str]


def server_key(request: Request) -> ServerKey:
    """17.2.3 matching key; ACK and CANCEL are mapped by the caller (ACK -> INVITE's key)."""
    via = request.vias[0]
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch is not None and branch.startswith("z9hG4bK"):
        return ("3261", branch, via.sent_by.lower(), method)
    return (
        "2543",
        request.uri,
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        str(via),
        method,
    )


def client_key(message: Message) -> ClientKey:
    via = message.vias[0]
    return (via.branch or "", message.cseq.method)


@dataclass
class Transaction:
    """State shared by all kinds: the request, state, armed timers (name -> deadline) and retransmission."""

    kind: TxKind
    parsed: Request | None  # None once compacted: then ``request_wire`` holds it
    reliable: bool
    timers_base: Timers
    state: TxState
    key: tuple[str, ...] = ()
    deadlines: dict[str, float] = field(default_factory=dict)
    interval: float = 0.0
    last_response: Response | None = None
    ack: Request | None = None
    context: object = None  # the endpoint's routing data (destination address, connection)
    request_wire: bytes = b""
    response_wire: bytes | None = None  # last_response once compacted
    ack_wire: bytes | None = None  # ack once compacted

    @property
    def request(self) -> Request:
        request = self.parsed
        if request is None:
            # compacted: only a late timeout or transport error gets here, for the TU's event
            wire = self.request_wire
            parsed = parse_message(
                wire, limits=Limits(max_message=len(wire), max_headers=1 << 30, max_header_length=1 << 30)
            )
            assert isinstance(parsed, Request)
            request = self.parsed = parsed
        return request

    @property
    def compacted(self) -> bool:
        return self.parsed is None

    def compact(self, sent: bytes | None = None) -> None:
        """Keep only wire bytes for the Completed/Confirmed window (see the module docstring).

        ``sent``: the bytes the endpoint has just sent for this transaction's last Send, reused instead of
        serialising again (the final response for an INVITE server transaction, the ACK for a client one).
        """
        request = self.parsed
        if request is None:
            return
        self.request_wire = request.to_bytes()
        self.parsed = None
        if self.last_response is not None:
            reuse = sent is not None and self.kind in (K.INVITE_SERVER, K.NON_INVITE_SERVER)
            self.response_wire = sent if reuse else self.last_response.to_bytes()
            self.last_response = None
        if self.ack is not None:
            self.ack_wire = sent if sent is not None and self.kind is K.INVITE_CLIENT else self.ack.to_bytes()
            self.ack = None

    def _last_response_out(self) -> list[Action]:
        if self.last_response is not None:
            return [Send(self.last_response)]
        return [Send(self.response_wire)] if self.response_wire is not None else []

    def _move(self, inp: TxInput) -> TxState | None:
        table = TRANSITIONS[self.kind].get(self.state, {})
        nxt = table.get(inp)
        if nxt is None:
            if inp in _TU_INPUTS:
                raise SipLocalError(
                    f"{inp.value} is not allowed in {self.kind.value} state {self.state.value}",
                    details={"kind": self.kind.value, "state": self.state.value, "input": inp.value},
                )
            return None
        self.state = nxt
        if nxt is S.TERMINATED:
            self.deadlines.clear()
        return nxt

    def next_deadline(self) -> float | None:
        return min(self.deadlines.values()) if self.deadlines else None

    def _arm(self, name: str, delay: float, now: float) -> None:
        self.deadlines[name] = now + delay

    def handle_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for name, deadline in sorted(self.deadlines.items(), key=lambda kv: kv[1]):
            if deadline <= now and name in self.deadlines:
                del self.deadlines[name]
                actions.extend(self._on_timer(name, now))
        return actions

    def _on_timer(self, name: str, now: float) -> list[Action]:
        raise NotImplementedError

    def transport_error(self) -> list[Action]:
        if self._move(I.TRANSPORT_ERROR) is S.TERMINATED:
            return [TimedOut("transport"), Terminated()]
        return []

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED


class ClientTransaction(Transaction):
    """INVITE (17.1.1) or non-INVITE (17.1.2) client transaction."""

    def __init__(self, request: Request, *, reliable: bool, timers: Timers, now: float) -> None:
        invite = request.method == "INVITE"
        super().__init__(
            K.INVITE_CLIENT if invite else K.NON_INVITE_CLIENT,
            request,
            reliable,
            timers,
            S.CALLING if invite else S.TRYING,
        )
        self.key = client_key(request)
        self.started = now

    def start(self, now: float) -> list[Action]:
        t = self.timers_base
        if not self.reliable:
            self.interval = t.t1
            self._arm("A" if self.kind is K.INVITE_CLIENT else "E", t.t1, now)
        self._arm("B" if self.kind is K.INVITE_CLIENT else "F", 64 * t.t1, now)
        return [Send(self.request)]

    def receive(self, response: Response, now: float) -> list[Action]:
        prev = self.state
        nxt = self._move(response_input(response.status, sending=False))
        if nxt is None:
            return []
        t = self.timers_base
        if self.kind is K.INVITE_CLIENT:
            if nxt is S.PROCEEDING:
                self.deadlines.pop("A", None)
                self.deadlines.pop("B", None)
                return [PassUp(response)]
            if nxt is S.COMPLETED:
                if prev is S.COMPLETED:
                    # a retransmitted final: ACK again, absorb
                    return [Send(self.ack_wire if self.ack_wire is not None else self._make_ack(response))]
                self.ack = self._make_ack(response)
                self.deadlines.clear()
                self._arm("D", 0.0 if self.reliable else 32.0, now)
                return [Send(self.ack), PassUp(response)]
            # ACCEPTED: every 2xx goes up, the TU (dialog) ACKs it
            if prev is not S.ACCEPTED:
                self.deadlines.clear()
                self._arm("M", 64 * t.t1, now)
            return [PassUp(response)]
        if nxt is S.PROCEEDING:
            return [PassUp(response)]
        self.deadlines.clear()
        self._arm("K", 0.0 if self.reliable else t.t4, now)
        return [PassUp(response)]

    def _make_ack(self, response: Response) -> Request:
        return self.ack or make_ack(self.request, response)

    def _on_timer(self, name: str, now: float) -> list[Action]:
        t = self.timers_base
        nxt = self._move(TxInput(name))
        if nxt is None:
            return []
        if name in ("A", "E"):
            if name == "A":
                self.interval *= 2
            elif self.state is S.PROCEEDING:
                self.interval = t.t2
            else:
                self.interval = min(self.interval * 2, t.t2)
            self._arm(name, self.interval, now)
            return [Send(self.request)]
        if name in ("B", "F"):
            return [TimedOut(name), Terminated()]
        return [Terminated()]


class ServerTransaction(Transaction):
    """INVITE (17.2.1) or non-INVITE (17.2.2) server transaction."""

    def __init__(
        self, request: Request, *, reliable: bool, timers: Timers, now: float, key: ServerKey | None = None
    ) -> None:
        invite = request.method == "INVITE"
        super().__init__(
            K.INVITE_SERVER if invite else K.NON_INVITE_SERVER,
            request,
            reliable,
            timers,
            S.PROCEEDING if invite else S.TRYING,
        )
        self.key = key if key is not None else server_key(request)  # the endpoint has it already
        self.started = now
        self._local_tag: str | None = None

    @property
    def local_tag(self) -> str:
        """One To tag for every response of this transaction; drawn when a response first needs it."""
        tag = self._local_tag
        if tag is None:
            tag = self._local_tag = new_tag()
        return tag

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmission of the request, or the ACK of a non-2xx final."""
        if request.method == "ACK":
            if self.kind is not K.INVITE_SERVER:
                return []
            nxt = self._move(I.RECV_ACK)
            if nxt is S.CONFIRMED and "I" not in self.deadlines:
                self.deadlines.pop("G", None)
                self.deadlines.pop("H", None)
                self._arm("I", 0.0 if self.reliable else self.timers_base.t4, now)
            return []
        nxt = self._move(I.RECV_REQUEST)
        if nxt is None:
            return []
        return self._last_response_out()

    def respond(self, response: Response, now: float) -> list[Action]:
        """The TU's response; raises SipLocalError when the state does not allow it."""
        nxt = self._move(response_input(response.status, sending=True))
        assert nxt is not None  # _move raised for an illegal TU input
        t = self.timers_base
        if nxt is S.ACCEPTED:
            # RFC 6026 7.1: in Accepted a retransmitted INVITE is absorbed and the TU retransmits its own 2xx,
            # so no response is kept for Timer L's 32 s (less garbage alive at high call rates)
            self.last_response = None
            if "L" not in self.deadlines:
                self._arm("L", 64 * t.t1, now)
        else:
            self.last_response = response
        if nxt is S.COMPLETED:
            if self.kind is K.INVITE_SERVER:
                if not self.reliable:
                    self.interval = t.t1
                    self._arm("G", t.t1, now)
                self._arm("H", 64 * t.t1, now)
            else:
                self._arm("J", 0.0 if self.reliable else 64 * t.t1, now)
        return [Send(response)]

    def _on_timer(self, name: str, now: float) -> list[Action]:
        nxt = self._move(TxInput(name))
        if nxt is None:
            return []
        if name == "G":
            self.interval = min(self.interval * 2, self.timers_base.t2)
            self._arm("G", self.interval, now)
            return self._last_response_out()
        if name == "H":
            return [TimedOut("H"), Terminated()]
        return [Terminated()]


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response, built inside the client transaction (17.1.1.3)."""
    headers = Headers()
    src = invite.headers
    headers.add("Via", str(invite.vias[0]))
    for route in src.get_all("route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", src.get("from") or "")
    headers.add("To", response.headers.get("to") or src.get("to") or "")
    headers.add("Call-ID", src.get("call-id") or "")
    headers.add("CSeq", f"{invite.cseq.seq} ACK")
    return Request("ACK", invite.uri, headers)


def make_cancel(invite: Request) -> Request:
    """CANCEL for a pending INVITE client transaction (9.1): same branch, URI, Call-ID, From, To, CSeq num."""
    headers = Headers()
    src = invite.headers
    headers.add("Via", str(invite.vias[0]))
    for route in src.get_all("route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", src.get("from") or "")
    headers.add("To", src.get("to") or "")
    headers.add("Call-ID", src.get("call-id") or "")
    headers.add("CSeq", f"{invite.cseq.seq} CANCEL")
    return Request("CANCEL", invite.uri, headers)
