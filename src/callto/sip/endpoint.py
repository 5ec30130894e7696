"""The sans-IO SIP endpoint: bytes and time go in, events and bytes come out (aioquic's shape).

Owns the transport-facing half of the switch: framing and parsing of what arrives (UDP datagrams and
stream connections), stateless error answers to malformed requests, ``OPTIONS`` keepalives, CANCEL matching,
the transaction table and its timers, and where responses go (RFC 3261 18.2.2 with RFC 3581: always back to
the source address and port on UDP, back on the same connection on streams). The RFC 3261 8.2 checks and
the Via stamping it applies before the TU sees a request are in :mod:`callto.sip.validation`; answered
non-INVITE transactions waiting out Timer J in :mod:`callto.sip.completed`.

The driver calls :meth:`SipEndpoint.receive_datagram` / :meth:`~SipEndpoint.receive_stream` with ``now``,
then drains :meth:`~SipEndpoint.next_event` and :meth:`~SipEndpoint.transmit`, and arms one timer at
:meth:`~SipEndpoint.get_timer`, calling :meth:`~SipEndpoint.handle_timer` when it fires. The TU (registrar,
B2BUA) answers with :meth:`~SipEndpoint.respond` and originates with :meth:`~SipEndpoint.send_request`.
No method raises on anything a peer sends.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field

from callto.sip.completed import CompletedAnswers
from callto.sip.errors import SipLocalError, SipMessageError
from callto.sip.grammar import IPV4_RE, Via
from callto.sip.message import (
    DEFAULT_LIMITS,
    Headers,
    Limits,
    Request,
    Response,
    StreamBuffer,
    make_response,
    new_branch,
    new_tag,
    parse_message,
)
from callto.sip.transaction import (
    Action,
    ClientTransaction,
    PassUp,
    Send,
    ServerTransaction,
    Terminated,
    TimedOut,
    Timers,
    Transaction,
    TxKind,
    TxState,
    client_key,
    make_cancel,
    server_key,
)
from callto.sip.validation import RequestChecks, reason_with_detail, stamp_copied_via, stamp_via

Addr = tuple[str, int]
RELIABLE = frozenset(("tcp", "tls", "ws", "wss"))
_KEEPALIVE_START = (b"", b"\r", b"\n", b"\x00", b" ")
_COMPACTED_STATES = frozenset((TxState.COMPLETED, TxState.CONFIRMED))


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from, and so where its answers go."""

    transport: str  # "udp", "tcp", "tls", "ws", "wss"
    addr: Addr
    conn_id: int | None = None

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE


Destination = Source


@dataclass(frozen=True, slots=True)
class Transmit:
    """Bytes to put on the wire: a datagram to ``addr`` or a write on connection ``conn_id``."""

    data: bytes
    addr: Addr
    transport: str = "udp"
    conn_id: int | None = None
    close: bool = False


# --- events --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the TU; answer it with ``respond(tx_id, ...)`` (``tx_id`` None: ACK of a 2xx)."""

    request: Request
    source: Source
    tx_id: int | None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response to a request we sent (``tx_id`` None: a 2xx retransmission after the transaction)."""

    response: Response
    tx_id: int | None
    request: Request | None
    source: Source


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """The peer cancelled the INVITE server transaction ``tx_id`` (already answered 200): send 487."""

    tx_id: int
    cancel: Request


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B/F (no answer), H (no ACK) or a transport failure ended transaction ``tx_id``."""

    tx_id: int
    request: Request
    timer: str


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """A malformed or refused message (already answered when it deserved an answer); for logs and metrics."""

    source: Source
    status: int
    reason: str


Event = RequestReceived | ResponseReceived | CancelReceived | TransactionTimedOut | MessageRejected


@dataclass(frozen=True)
class EndpointConfig:
    domain: str
    local_hosts: frozenset[str] = frozenset()
    via_host: str = "127.0.0.1"
    via_port: int = 5060
    user_agent: str = "callto"
    allow: tuple[str, ...] = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE")
    supported: tuple[str, ...] = ("path",)
    accept: tuple[str, ...] = ("application/sdp",)
    timers: Timers = field(default_factory=Timers)
    limits: Limits = DEFAULT_LIMITS
    max_transactions: int = 50_000
    # answered non-INVITE transactions over UDP kept (as their response's bytes) for Timer J's 32 s; the
    # oldest are dropped beyond this, which only stops absorbing their (by then unlikely) retransmissions
    max_completed: int = 250_000
    # listening on a wildcard address we cannot know every address phones use for us: take IP literals
    accept_ip_literals: bool = False
    # the port of each transport's listener ("tls" -> 5061, "ws" -> the HTTP port...): the sent-by of our
    # Via and our Contact name the listener of the transport in use (RFC 3261 18, 20.42); a transport not
    # listed uses via_port
    listen_ports: tuple[tuple[str, int], ...] = ()

    def port_for(self, transport: str) -> int:
        """The port our listener for ``transport`` is on (``via_port`` when it has none of its own)."""
        for name, port in self.listen_ports:
            if name == transport:
                return port
        return self.via_port

    def is_local(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host == self.domain.lower() or host in self.local_hosts:
            return True
        return self.accept_ip_literals and (IPV4_RE.fullmatch(host) is not None or host.startswith("["))


@dataclass
class _Conn:
    source: Source
    buffer: StreamBuffer


class SipEndpoint:
    """Feed it bytes, drain events and bytes; see the module docstring for the driving loop."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._events: deque[Event] = deque()
        self._out: list[Transmit] = []
        self._ids = itertools.count(1)
        self._txs: dict[int, Transaction] = {}
        self._server_index: dict[tuple[str, ...], int] = {}
        self._client_index: dict[tuple[str, ...], int] = {}
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, float] = {}
        self._conns: dict[int, _Conn] = {}
        self._udp_sources: dict[Addr, Source] = {}
        # answered non-INVITE server transactions over UDP, as the bytes to send again until Timer J
        self._completed: CompletedAnswers[Transmit] = CompletedAnswers(config.max_completed)
        self.checks = RequestChecks(config.allow, config.supported, config.accept, config.is_local)
        self.stats: dict[str, int] = {"received": 0, "rejected": 0, "dropped": 0}

    # --- input -----------------------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        source = self._udp_sources.get(addr)
        if source is None:
            # one Source per peer address, reused: a phone sends from the same address for hours
            if len(self._udp_sources) >= 10_000:
                self._udp_sources.clear()
            source = self._udp_sources[addr] = Source("udp", (addr[0], addr[1]))
        self.stats["received"] += 1
        if data[:1] in _KEEPALIVE_START and not data.strip(b"\r\n\x00 "):
            return  # keepalive (only a datagram starting with one of those bytes can be one)
        try:
            message = parse_message(data, limits=self.config.limits)
        except SipMessageError as exc:
            self._reject(exc, source)
            return
        self._dispatch(message, source, now)

    def connection_made(self, conn_id: int, addr: Addr, transport: str = "tcp") -> None:
        self._conns[conn_id] = _Conn(Source(transport, (addr[0], addr[1]), conn_id), StreamBuffer(self.config.limits))

    def connection_lost(self, conn_id: int) -> None:
        self._conns.pop(conn_id, None)

    def receive_stream(self, conn_id: int, data: bytes, now: float) -> int:
        """Feed bytes of a stream connection; returns how many whole SIP messages they completed (what a
        driver's idle rules count as activity: keep-alives and fragments are not)."""
        conn = self._conns.get(conn_id)
        if conn is None:
            return 0
        messages = 0
        for item in conn.buffer.feed(data):
            self.stats["received"] += 1
            if not isinstance(item, str):
                messages += 1
            if isinstance(item, str):
                # RFC 5626 3.5.1: a CRLFCRLF ping gets a CRLF pong
                self._out.append(Transmit(b"\r\n", conn.source.addr, conn.source.transport, conn_id))
            elif isinstance(item, SipMessageError):
                self._reject(item, conn.source)
            else:
                self._dispatch(item, conn.source, now)
        if conn.buffer.broken:
            self._out.append(Transmit(b"", conn.source.addr, conn.source.transport, conn_id, close=True))
            self._conns.pop(conn_id, None)
        return messages

    def receive_message(self, data: bytes, source: Source, now: float) -> None:
        """One whole message from a message-framed transport (WebSocket, RFC 7118)."""
        self.stats["received"] += 1
        try:
            message = parse_message(data, limits=self.config.limits, stream=False)
        except SipMessageError as exc:
            self._reject(exc, source)
            return
        self._dispatch(message, source, now)

    # --- output ----------------------------------------------------------------------------------------
    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def transmit(self) -> list[Transmit]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        first = self._heap[0][0] if self._heap else None
        done = self._completed.next_deadline()
        if done is not None:
            return done if first is None or done < first else first
        return first

    def handle_timer(self, now: float) -> None:
        self._completed.expire(now)
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, tx_id = heapq.heappop(heap)
            if self._armed.get(tx_id) == deadline:
                del self._armed[tx_id]
            tx = self._txs.get(tx_id)
            if tx is None:
                continue
            self._apply(tx_id, tx, tx.handle_timer(now))

    # --- TU API ----------------------------------------------------------------------------------------
    def make_response(
        self,
        tx_id: int,
        status: int,
        reason: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Response:
        """A response to server transaction ``tx_id`` with this transaction's To tag."""
        tx = self._txs.get(tx_id)
        if not isinstance(tx, ServerTransaction):
            raise SipLocalError(f"no server transaction {tx_id}")
        return make_response(
            tx.request,
            status,
            reason,
            to_tag=tx.local_tag,
            headers=headers,
            body=body,
            server=self.config.user_agent,
        )

    def respond(self, tx_id: int, response: Response, now: float) -> None:
        """Send ``response`` through server transaction ``tx_id`` (raises SipLocalError if not allowed)."""
        tx = self._txs.get(tx_id)
        if not isinstance(tx, ServerTransaction):
            raise SipLocalError(f"no server transaction {tx_id}")
        self._apply(tx_id, tx, tx.respond(response, now))

    def reply(
        self,
        tx_id: int,
        status: int,
        now: float,
        reason: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        """Shorthand: build and send a response in one call."""
        self.respond(tx_id, self.make_response(tx_id, status, reason, headers=headers, body=body), now)

    def send_request(self, request: Request, dest: Destination, now: float) -> int:
        """Start a client transaction; responses come back as ResponseReceived with the returned id."""
        self._prepare_outgoing(request, dest)
        if request.method == "ACK":
            raise SipLocalError("ACK is not sent in a transaction: use send_stateless")
        tx = ClientTransaction(request, reliable=dest.reliable, timers=self.config.timers, now=now)
        tx.context = dest
        tx_id = next(self._ids)
        self._txs[tx_id] = tx
        self._client_index[tx.key] = tx_id
        self._apply(tx_id, tx, tx.start(now))
        return tx_id

    def cancel(self, tx_id: int, now: float) -> int | None:
        """CANCEL a pending INVITE client transaction (9.1); None when it is past provisional responses."""
        tx = self._txs.get(tx_id)
        if not isinstance(tx, ClientTransaction) or tx.kind is not TxKind.INVITE_CLIENT:
            return None
        if tx.state not in (TxState.CALLING, TxState.PROCEEDING):
            return None
        cancel = make_cancel(tx.request)
        dest = tx.context
        assert isinstance(dest, Source)
        return self.send_request(cancel, dest, now)

    def send_stateless(self, message: Request | Response, dest: Destination) -> None:
        """Send outside any transaction: the ACK of a 2xx, a 2xx retransmission by the dialog layer."""
        if isinstance(message, Request):
            self._prepare_outgoing(message, dest)
        self._send(message, dest)

    def request_of(self, tx_id: int) -> Request | None:
        tx = self._txs.get(tx_id)
        return tx.request if tx is not None else None

    @property
    def transaction_count(self) -> int:
        return len(self._txs) + len(self._completed)

    # --- internals -------------------------------------------------------------------------------------
    def _prepare_outgoing(self, request: Request, dest: Destination) -> None:
        headers = request.headers
        if "via" not in headers:
            cfg = self.config
            port = cfg.port_for(dest.transport)
            via = Via(dest.transport.upper(), cfg.via_host, port, (("rport", None), ("branch", new_branch())))
            headers.prepend("Via", str(via))
            # the request has no other Via: seed the parsed view so the transaction's key (its branch) and
            # later reads do not parse back the Via just written
            headers.cached("via", lambda: [via])
        if "max-forwards" not in headers:
            headers.add("Max-Forwards", "70")
        if "user-agent" not in headers:
            headers.add("User-Agent", self.config.user_agent)

    def _send(self, message: Request | Response, dest: Source) -> bytes:
        data = message.to_bytes()
        self._out.append(Transmit(data, dest.addr, dest.transport, dest.conn_id))
        return data

    def _reject(self, exc: SipMessageError, source: Source) -> None:
        self.stats["rejected"] += 1
        self._events.append(MessageRejected(source, exc.sip_status, exc.reason))
        if not exc.is_request or exc.sip_status == 0 or exc.method == "ACK":
            return
        exc.copied = stamp_copied_via(exc.copied, source.addr)
        response = make_response(exc, exc.sip_status, None, headers=exc.response_headers, server=self.config.user_agent)
        response.reason = reason_with_detail(response.reason, exc.reason)
        self._send(response, source)

    def _dispatch(self, message: Request | Response, source: Source, now: float) -> None:
        if isinstance(message, Response):
            self._on_response(message, source, now)
        else:
            self._on_request(message, source, now)

    def _on_response(self, response: Response, source: Source, now: float) -> None:
        if len(response.vias) != 1:
            # RFC 3261 18.1.2: we never forward, so a response with more than our own Via is not for us
            self.stats["dropped"] += 1
            return
        key = client_key(response)
        tx_id = self._client_index.get(key)
        tx = self._txs.get(tx_id) if tx_id is not None else None
        if tx is None or tx_id is None:
            if response.cseq.method == "INVITE" and 200 <= response.status < 300:
                self._events.append(ResponseReceived(response, None, None, source))
            else:
                self.stats["dropped"] += 1
            return
        assert isinstance(tx, ClientTransaction)
        self._apply(tx_id, tx, tx.receive(response, now), source)

    def _on_request(self, request: Request, source: Source, now: float) -> None:
        stamp_via(request, source.addr)
        method = request.method
        key = server_key(request)
        if method == "ACK":
            tx_id = self._server_index.get(key)
            tx = self._txs.get(tx_id) if tx_id is not None else None
            if tx is not None and tx_id is not None and tx.state in (TxState.COMPLETED, TxState.CONFIRMED):
                self._apply(tx_id, tx, tx.receive_request(request, now) if isinstance(tx, ServerTransaction) else [])
                return
            self._events.append(RequestReceived(request, source, None))
            return
        tx_id = self._server_index.get(key)
        if tx_id is not None:
            tx = self._txs.get(tx_id)
            if isinstance(tx, ServerTransaction):
                self._apply(tx_id, tx, tx.receive_request(request, now))
                return
        done = self._completed.get(key)
        if done is not None:
            self._out.append(done)  # a retransmission of an answered non-INVITE request: the same answer (17.2.2)
            return
        if len(self._txs) >= self.config.max_transactions:
            self.stats["rejected"] += 1
            response = make_response(request, 503, headers=[("Retry-After", "5")], server=self.config.user_agent)
            self._send(response, source)
            return
        tx = ServerTransaction(request, reliable=source.reliable, timers=self.config.timers, now=now, key=key)
        tx.context = source
        tx_id = next(self._ids)
        self._txs[tx_id] = tx
        self._server_index[tx.key] = tx_id
        if method == "INVITE":
            self._apply(tx_id, tx, tx.respond(make_response(request, 100, server=self.config.user_agent), now))
            if tx_id not in self._txs:
                return  # its connection is already gone (the 100 failed): nothing left to answer on
        try:
            self.checks.validate(request)
        except SipMessageError as refusal:
            self.stats["rejected"] += 1
            self._events.append(MessageRejected(source, refusal.sip_status, refusal.reason))
            self.reply(tx_id, refusal.sip_status, now, refusal.reason, headers=refusal.response_headers)
            return
        if method == "CANCEL":
            self._on_cancel(tx_id, request, now)
            return
        if method == "OPTIONS" and self.checks.is_for_us(request):
            self.reply(
                tx_id,
                200,
                now,
                headers=[
                    ("Allow", self.checks.allow_header),
                    ("Accept", ", ".join(self.config.accept)),
                    ("Supported", ", ".join(self.config.supported)),
                ],
            )
            return
        self._events.append(RequestReceived(request, source, tx_id))

    def _on_cancel(self, tx_id: int, cancel: Request, now: float) -> None:
        invite_key = (*server_key(cancel)[:-1], "INVITE")
        invite_id = self._server_index.get(invite_key)
        invite = self._txs.get(invite_id) if invite_id is not None else None
        if invite is None or invite_id is None:
            self.reply(tx_id, 481, now)
            return
        self.reply(tx_id, 200, now)
        if invite.state is TxState.PROCEEDING:
            self._events.append(CancelReceived(invite_id, cancel))

    def _apply(self, tx_id: int, tx: Transaction, actions: list[Action], source: Source | None = None) -> None:
        dest = tx.context
        sent: bytes | None = None
        for action in actions:
            if isinstance(action, Send):
                message = action.message
                if isinstance(dest, Source) and isinstance(message, Request | Response | bytes):
                    sent = self._send_or_fail(tx_id, tx, message, dest)
            elif isinstance(action, PassUp):
                message = action.message
                if isinstance(message, Response):
                    src = (
                        source if source is not None else (dest if isinstance(dest, Source) else Source("udp", ("", 0)))
                    )
                    self._events.append(ResponseReceived(message, tx_id, tx.request, src))
            elif isinstance(action, TimedOut):
                self._events.append(TransactionTimedOut(tx_id, tx.request, action.timer))
            elif isinstance(action, Terminated):
                self._forget(tx_id, tx)
                return
        if (
            sent is not None
            and tx.kind is TxKind.NON_INVITE_SERVER
            and tx.state is TxState.COMPLETED
            and not tx.reliable
            and isinstance(dest, Source)
        ):
            self._complete(tx_id, tx, sent, dest)
            return
        if (
            tx.state in _COMPACTED_STATES
            and not tx.compacted
            and (not tx.reliable or tx.kind is TxKind.INVITE_SERVER)  # the others end at once (Timers D, J, K: 0)
        ):
            # it only absorbs retransmissions now, for up to 32 s: keep bytes, not parsed messages
            tx.compact(sent)
        self._schedule(tx_id, tx)

    def _complete(self, tx_id: int, tx: Transaction, sent: bytes, dest: Source) -> None:
        """Keep an answered non-INVITE server transaction as its response's bytes until Timer J."""
        deadline = tx.deadlines.get("J")
        self._forget(tx_id, tx)
        if deadline is None:
            return
        self._completed.add(tx.key, deadline, Transmit(sent, dest.addr, dest.transport, dest.conn_id))

    def _send_or_fail(
        self, tx_id: int, tx: Transaction, message: Request | Response | bytes, dest: Source
    ) -> bytes | None:
        if dest.conn_id is not None and dest.conn_id not in self._conns:
            # the connection is gone: RFC 3261 18.2.2 would try sent-by; we report a transport error
            if not tx.terminated:
                self._apply(tx_id, tx, tx.transport_error())
            return None
        if isinstance(message, bytes):
            self._out.append(Transmit(message, dest.addr, dest.transport, dest.conn_id))
            return message
        return self._send(message, dest)

    def _schedule(self, tx_id: int, tx: Transaction) -> None:
        deadline = tx.next_deadline()
        if deadline is None:
            return
        armed = self._armed.get(tx_id)
        if armed is None or deadline < armed:
            self._armed[tx_id] = deadline
            heapq.heappush(self._heap, (deadline, tx_id))

    def _forget(self, tx_id: int, tx: Transaction) -> None:
        self._txs.pop(tx_id, None)
        self._armed.pop(tx_id, None)
        index = self._server_index if isinstance(tx, ServerTransaction) else self._client_index
        if index.get(tx.key) == tx_id:
            del index[tx.key]


__all__ = [
    "CancelReceived",
    "Destination",
    "EndpointConfig",
    "Event",
    "Headers",
    "MessageRejected",
    "RequestReceived",
    "ResponseReceived",
    "SipEndpoint",
    "Source",
    "TransactionTimedOut",
    "Transmit",
    "new_tag",
]
