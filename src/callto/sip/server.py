"""The running SIP switch: one :class:`SipEndpoint` and one :class:`Registrar` behind UDP, TCP, TLS and
WebSocket flows -- the one asyncio driver of the SIP stack.

Owns the wiring and the single timer of the asyncio process: bytes from the transports go into the
endpoint, REGISTERs to the registrar, every other request to ``on_request`` (the B2BUA) or a default
answer, responses and time-outs of our own requests to ``on_transaction_event``, registrar events to
``on_event``. Bytes leave by one path, :meth:`SipServer.transmit`: UDP, the connection a message belongs
to (TCP, TLS, or a WebSocket attached with :meth:`SipServer.attach_stream`), or a TCP connection opened to
the peer. A TU with deadlines of its own hands in ``next_timer`` / ``on_timer``; one that keeps state per
connection hands in ``on_connection_lost``. After changing the endpoint from outside (originating,
hanging up) it calls :meth:`SipServer.pump`. When the loop lags, new work is shed (:mod:`.overload`).
What a REGISTER does once through (registrar, digest throttle, registered connections) is
:mod:`.registration`.
``now`` is wall-clock seconds (``time.time()``) so binding expiry survives a restart; transaction timers
only use differences of it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from callto.sip.endpoint import (
    CancelReceived,
    EndpointConfig,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    SipEndpoint,
    Source,
    TransactionTimedOut,
)
from callto.sip.overload import LoadShedder, OverloadConfig
from callto.sip.ports import BindingStore, Credentials
from callto.sip.registrar import Registrar, RegistrarConfig, RegistrarEvent
from callto.sip.registration import RegisterDriving
from callto.sip.throttle import DigestThrottle, SecurityEvent
from callto.sip.transport import (
    Addr,
    ConnectionGuard,
    ConnectionLimits,
    TcpListener,
    UdpTransport,
    open_udp,
    raise_file_limit,
)

log = logging.getLogger(__name__)

RequestHandler = Callable[["RequestReceived | CancelReceived", "SipServer"], bool]
TransactionHandler = Callable[[ResponseReceived | TransactionTimedOut, float], object]
# what writes on one connection: (data, close after) -> whether the connection was still there
StreamSink = Callable[[bytes, bool], bool]


class SipServer(RegisterDriving):
    """``await SipServer(...).start()`` listens on UDP and TCP ``host:port`` (port 0 picks a free one).

    ``on_event`` gets the registrar's DeviceOnline/DeviceOffline. ``on_request(event, server)`` gets every
    RequestReceived that is not a REGISTER and every CancelReceived, and returns True when it took the
    request (it must then answer through ``server.endpoint``); unclaimed INVITEs get 480, unclaimed
    in-dialog requests 481, an unclaimed CANCEL's INVITE 487. ``advertise`` is the host written in the Via
    of requests we originate (default: the bound address, or the domain when bound to a wildcard).
    ``tls_context`` adds a SIP-over-TLS listener on ``tls_port`` (0 picks one; read it back after start).
    ``security_event`` receives digest-guessing events (the composition root hands in the security log).
    """

    def __init__(
        self,
        host: str,
        port: int,
        domain: str,
        credentials: Credentials,
        bindings: BindingStore,
        on_event: Callable[[RegistrarEvent], None] | None = None,
        *,
        on_request: RequestHandler | None = None,
        on_transaction_event: TransactionHandler | None = None,
        next_timer: Callable[[], float | None] | None = None,
        on_timer: Callable[[float], None] | None = None,
        on_connection_lost: Callable[[int], None] | None = None,
        registrar_config: RegistrarConfig | None = None,
        endpoint_config: EndpointConfig | None = None,
        tcp: bool = True,
        clock: Callable[[], float] = time.time,
        advertise: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        tls_port: int = 0,
        listen_ports: dict[str, int] | None = None,
        connection_limits: ConnectionLimits | None = None,
        throttle: DigestThrottle | None = None,
        security_event: SecurityEvent | None = None,
        overload: OverloadConfig | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.domain = domain
        self.on_event = on_event
        self.on_request = on_request
        self.on_transaction_event = on_transaction_event
        self.next_timer = next_timer
        self.on_timer = on_timer
        self.on_connection_lost = on_connection_lost
        self.tcp_enabled = tcp
        self.advertise = advertise
        self.tls_context = tls_context
        self.tls_port = tls_port
        # listeners this server does not own (SIP over WebSocket on the HTTP ports: "ws" / "wss" -> port)
        self.listen_ports = dict(listen_ports or {})
        self.tls: TcpListener | None = None
        # caps and idle rules for every connection-oriented flow (TCP, TLS, and WS through the switch)
        self.guard = ConnectionGuard(connection_limits)
        # digest guessing: failures per source and account slow, then block, the source (docs/sip.md)
        self.throttle = throttle or DigestThrottle(on_security_event=security_event)
        self.shedder = LoadShedder(overload)
        self._delayed = 0  # answers held back by the throttle right now
        self._conn_ids = itertools.count(1)
        self._streams: dict[int, StreamSink] = {}  # every open connection (TCP, TLS, WS), by id
        self._stream_sources: dict[int, Source] = {}  # attached message-framed flows (WS), by id
        self._out_conns: dict[Addr, int] = {}  # TCP connections we opened (trunks), by peer
        self._out_pending: dict[Addr, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.registered_conns: set[int] = set()  # connections a REGISTER with bindings came over
        self.clock = clock
        self._endpoint_config = endpoint_config
        self.registrar = Registrar(registrar_config or RegistrarConfig(realm=domain), credentials, bindings)
        self.endpoint: SipEndpoint | None = None
        self.udp: UdpTransport | None = None
        self.tcp: TcpListener | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._probe: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_gc = 0.0

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self.guard.fit_file_limit(raise_file_limit())
        # port 0: the UDP port the kernel picks may be taken for TCP by someone else; pick again then
        for attempt in range(20 if self.port == 0 else 1):
            self.udp = await open_udp(self.host, self.port, self._on_datagram)
            bound_host, bound_port = self.udp.local_addr
            if not self.tcp_enabled:
                break
            self.tcp = self._listener(None)
            try:
                await self.tcp.start(self.host, bound_port)
                break
            except OSError:
                self.udp.close()
                self.udp = self.tcp = None
                if self.port != 0 or attempt == 19:
                    raise
        self.port = bound_port
        if self.tls_context is not None:
            self.tls = self._listener(self.tls_context)
            await self.tls.start(self.host, self.tls_port)
            self.tls_port = self.tls.local_addr[1]
        cfg = self._endpoint_config or EndpointConfig(domain=self.domain)
        wildcard = bound_host in ("0.0.0.0", "::", "")
        local = {bound_host, self.host, "localhost", "127.0.0.1", "[::1]", f"{bound_host}:{bound_port}"}
        if ":" in bound_host:
            local.add(f"[{bound_host}]")  # an IPv6 literal appears bracketed in URIs
        self.endpoint = SipEndpoint(
            replace(
                cfg,
                local_hosts=frozenset(h.lower() for h in local | set(cfg.local_hosts)),
                # our own requests need a reachable sent-by: the bound address, or the advertised name
                via_host=self.advertise or (self.domain if wildcard else bound_host),
                via_port=bound_port,
                listen_ports=tuple(self._listen_ports(bound_port).items()),
                accept_ip_literals=cfg.accept_ip_literals or wildcard,
            )
        )
        for event in self.registrar.load(self.clock()):
            self.emit(event)
        tick = self.shedder.config.tick
        self._probe = loop.call_later(tick, self._measure_lag, loop.time() + tick)
        self.pump()

    def _listener(self, ssl_context: ssl.SSLContext | None) -> TcpListener:
        transport = "tls" if ssl_context is not None else "tcp"

        def connected(conn_id: int, addr: Addr) -> None:
            if self.endpoint is not None:
                self._streams[conn_id] = lambda data, close: listener.send(conn_id, data, close=close)
                self.endpoint.connection_made(conn_id, addr, transport)

        listener = TcpListener(connected, self._on_stream, self._on_close, ids=self._conn_ids, guard=self.guard,
                               ssl_context=ssl_context)
        return listener

    def _listen_ports(self, bound_port: int) -> dict[str, int]:
        """Each transport's listener port: what our Via sent-by and Contact name on that transport."""
        ports = {"udp": bound_port}
        if self.tcp_enabled:
            ports["tcp"] = bound_port
        if self.tls is not None:
            ports["tls"] = self.tls_port
        ports.update((k, v) for k, v in self.listen_ports.items() if v)
        return ports

    async def stop(self) -> None:
        for handle in (self._timer, self._probe):
            if handle is not None:
                handle.cancel()
        self._timer = self._probe = None
        for task in list(self._tasks):
            task.cancel()
        if self.udp is not None:
            self.udp.close()
            self.udp = None
        if self.tcp is not None:
            await self.tcp.stop()
            self.tcp = None
        if self.tls is not None:
            await self.tls.stop()
            self.tls = None

    @property
    def local_addr(self) -> Addr:
        return (self.host, self.port)

    # --- bytes in ------------------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr: Addr) -> None:
        if self.endpoint is None:
            return
        now = self.clock()
        if self.throttle.any_blocked and self.throttle.blocked(addr[0], now):
            return  # a password guesser, refused for a while: dropped unanswered
        self.endpoint.receive_datagram(data, addr, now)
        self.pump()

    def _on_stream(self, conn_id: int, data: bytes) -> int:
        if self.endpoint is None:
            return 0
        now = self.clock()
        if self.throttle.any_blocked:
            listener = self.tls if self.tls is not None and conn_id in self.tls.conns else self.tcp
            peer = listener.conns.get(conn_id) if listener is not None else None
            if peer is not None and peer.peer_host is not None and self.throttle.blocked(peer.peer_host, now):
                self.close_stream(conn_id)
                return 0
        messages = self.endpoint.receive_stream(conn_id, data, now)
        self.pump()
        return messages

    def _on_close(self, conn_id: int) -> None:
        self._streams.pop(conn_id, None)
        self._stream_sources.pop(conn_id, None)
        self.registered_conns.discard(conn_id)
        if self._out_conns:
            self._out_conns = {addr: c for addr, c in self._out_conns.items() if c != conn_id}
        if self.endpoint is not None:
            self.endpoint.connection_lost(conn_id)
        if self.on_connection_lost is not None:
            try:
                self.on_connection_lost(conn_id)
            except Exception:
                log.exception("sip connection-lost handler failed")
        self.pump()

    # --- message-framed flows the server does not accept itself (SIP over WebSocket, RFC 7118) --------
    def attach_stream(self, addr: Addr, transport: str, sink: StreamSink) -> int:
        """A connection accepted elsewhere (the HTTP server's ``/sip`` WebSocket) joins the switch; its
        answers leave through ``sink``. Returns the connection id for :meth:`receive_message` and
        :meth:`detach_stream`."""
        conn_id = next(self._conn_ids)
        self._streams[conn_id] = sink
        self._stream_sources[conn_id] = Source(transport, (addr[0], addr[1]), conn_id)
        if self.endpoint is not None:
            self.endpoint.connection_made(conn_id, addr, transport)
        return conn_id

    def receive_message(self, conn_id: int, data: bytes) -> None:
        """One whole SIP message on an attached flow (one WebSocket frame)."""
        source = self._stream_sources.get(conn_id)
        if self.endpoint is None or source is None:
            return
        self.endpoint.receive_message(data, source, self.clock())
        self.pump()

    def detach_stream(self, conn_id: int) -> None:
        if conn_id in self._streams:
            self._on_close(conn_id)

    def close_stream(self, conn_id: int) -> bool:
        """Close one connection (a removed device's): True when it was open."""
        sink = self._streams.get(conn_id)
        return sink is not None and sink(b"", True)

    # --- bytes out: the one path ---------------------------------------------------------------------
    def transmit(self, data: bytes, addr: Addr, transport: str, conn_id: int | None, close: bool) -> None:
        """Send one message: UDP, the connection it belongs to, or a TCP connection we open to ``addr``."""
        if transport == "udp":
            if self.udp is not None:
                self.udp.send(data, addr)
        elif conn_id is not None:
            sink = self._streams.get(conn_id)
            if sink is not None:
                sink(data, close)
        elif transport == "tcp":
            self._send_outbound_tcp(addr, data)
        else:
            log.warning("no %s connection to %s:%s (outbound %s is not supported)", transport, *addr, transport)

    def _send_outbound_tcp(self, addr: Addr, data: bytes) -> None:
        """Write on our connection to ``addr``, opening it first when there is none (RFC 3261 18.1.1)."""
        tcp = self.tcp
        if tcp is None:
            log.warning("cannot reach %s:%s over TCP: the TCP transport is disabled", *addr)
            return
        conn_id = self._out_conns.get(addr)
        if conn_id is not None and tcp.send(conn_id, data):
            return
        self._out_conns.pop(addr, None)
        pending = self._out_pending.get(addr)
        if pending is not None:
            pending.append(data)
            return
        self._out_pending[addr] = [data]
        self.spawn(self._connect_tcp(tcp, addr))

    async def _connect_tcp(self, tcp: TcpListener, addr: Addr) -> None:
        try:
            conn_id = await tcp.connect(addr, timeout=10.0)
        except (OSError, TimeoutError) as exc:
            # the client transaction's timer reports the failure to the B2BUA / trunk registration
            log.warning("TCP connection to %s:%s failed: %s", addr[0], addr[1], exc)
            self._out_pending.pop(addr, None)
            return
        self._out_conns[addr] = conn_id
        for data in self._out_pending.pop(addr, []):
            tcp.send(conn_id, data)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task this server cancels when it stops."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the loop ------------------------------------------------------------------------------------
    def pump(self) -> None:
        """Drain events and bytes, then re-arm the one timer. Never lets an exception reach asyncio."""
        endpoint = self.endpoint
        if endpoint is None:
            return
        now = self.clock()
        while (event := endpoint.next_event()) is not None:
            try:
                if isinstance(event, RequestReceived):
                    self._on_request(event, now)
                elif isinstance(event, CancelReceived):
                    if self.on_request is None or not self.on_request(event, self):
                        endpoint.reply(event.tx_id, 487, now)
                elif isinstance(event, ResponseReceived | TransactionTimedOut):
                    if self.on_transaction_event is not None:
                        self.on_transaction_event(event, now)
                elif isinstance(event, MessageRejected):
                    log.debug("refused from %s: %s %s", event.source.addr, event.status, event.reason)
            except Exception:  # one bad event (a handler bug) must not stop the others or the socket
                log.exception("sip server failed on %s", type(event).__name__)
        try:
            for item in endpoint.transmit():
                self.transmit(item.data, item.addr, item.transport, item.conn_id, item.close)
        except Exception:
            log.exception("sip server transmit failed")
        self._arm()

    def _on_request(self, event: RequestReceived, now: float) -> None:
        endpoint = self.endpoint
        assert endpoint is not None
        request = event.request
        if event.tx_id is not None and self.shedder.shedding and self.shedder.sheds(request):
            # the loop lags: new work waits (Retry-After), calls in progress and responses go first
            endpoint.reply(event.tx_id, 503, now, "Service Unavailable (overloaded)", headers=self.shedder.headers)
            return
        if request.method == "REGISTER" and event.tx_id is not None:
            self._on_register(event, now)
            return
        if self.on_request is not None and self.on_request(event, self):
            return
        if event.tx_id is None:
            return  # an ACK nobody wants
        if request.to.tag is not None:
            endpoint.reply(event.tx_id, 481, now)
        else:
            endpoint.reply(event.tx_id, 480, now, "Temporarily Unavailable (no call handler)")

    def _arm(self) -> None:
        endpoint = self.endpoint
        loop = self._loop
        if endpoint is None or loop is None:
            return
        extra = self.next_timer() if self.next_timer is not None else None
        candidates = [t for t in (endpoint.get_timer(), self.registrar.next_expiry(), extra) if t is not None]
        if not candidates:
            return
        when = min(candidates)
        if self._timer is not None and self._timer_at is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = loop.call_later(max(0.0, when - self.clock()), self.handle_timer)

    def handle_timer(self) -> None:
        """The one timer fired: the TU's deadlines, the transactions', the bindings' expiry."""
        self._timer = None
        self._timer_at = None
        endpoint = self.endpoint
        if endpoint is None:
            return
        now = self.clock()
        try:
            if self.on_timer is not None:
                self.on_timer(now)
        except Exception:
            log.exception("sip switch timer failed")
        try:
            endpoint.handle_timer(now)
            for event in self.registrar.expire(now):
                self.emit(event)
            if now - self._last_gc > 60:
                self.registrar.digest.expire(now)
                self._last_gc = now
        except Exception:
            log.exception("sip server timer failed")
        self.pump()

    def _measure_lag(self, due: float) -> None:
        """The lag probe: how late this callback ran, and how full the UDP receive queue is, go to the
        load shedder (a saturated loop runs its timers late; a flood fills the kernel's queue first)."""
        loop = self._loop
        if loop is None:
            return
        started = loop.time()
        backlog = self.udp.queued_fraction() if self.udp is not None else 0.0
        was_shedding = self.shedder.shedding
        self.shedder.note_lag(started - due, self.clock(), backlog)
        if self.shedder.shedding != was_shedding:
            # an operator's first question after phones were turned away: when, and why
            log.warning(
                "SIP overload: %s shedding new requests (loop lag %.0f ms smoothed, UDP queue %.0f%% full)",
                "started" if self.shedder.shedding else "stopped", self.shedder.lag * 1000, backlog * 100,
            )
        tick = self.shedder.config.tick
        self._probe = loop.call_later(tick, self._measure_lag, started + tick)
