"""Thin asyncio transports for the SIP endpoint: a UDP socket and a TCP (or TLS) listener, and the bounds
on what connections may hold.

They only move bytes: what arrives is handed to a callback with the peer address (and a connection id for
TCP); sending is ``send``. Parsing, framing and timers belong to :mod:`callto.sip.endpoint`.

Connection-oriented transports are bounded (:class:`ConnectionLimits`, enforced by one
:class:`ConnectionGuard` shared by TCP, TLS and WebSocket): a new connection must deliver a whole SIP
message within ``first_message_timeout``; one that carries no registration is closed after
``idle_timeout`` without a SIP message (its CRLF keep-alives do not count), one that carries a
registration after ``registered_idle_timeout`` without any bytes (RFC 5626 keep-alives keep it); at most
``max_per_address`` connections per peer address and ``max_connections`` in all, which is also kept below
the process's file limit minus ``reserve_fds`` so HTTP and the database always find descriptors.
Refusals and resource errors (EMFILE, ENFILE, ENOBUFS, ENOMEM on accept) are counted and logged once per
``log_interval`` with the counts, never once per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import resource
import socket
import ssl
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

log = logging.getLogger(__name__)

Addr = tuple[str, int]


# Datagrams read per wake-up of the socket at most: under load one wake-up drains the queue instead of a loop
# iteration (and an epoll_wait) per datagram; the bound keeps timers and other sockets served meanwhile.
READ_BATCH = 64
MAX_DATAGRAM = 65535
ACCEPT_BATCH = 64
ACCEPT_RETRY = 1.0  # seconds the accept loop pauses after a resource error (the backlog waits meanwhile)
# connections the idle rules close per sweep (one a second) at most: each close runs the switch's
# connection-lost work, and 10,000 expiring at once would hold the event loop (and HTTP) for a second
CLOSE_BATCH = 500
_SO_MEMINFO = 55  # Linux: sk_meminfo, [0] bytes queued for reading, [1] the receive buffer
_RESOURCE_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


@dataclass(frozen=True)
class ConnectionLimits:
    """What SIP connections (TCP, TLS, WebSocket) may hold; the defaults suit an office switch."""

    first_message_timeout: float = 10.0
    idle_timeout: float = 120.0
    registered_idle_timeout: float = 3900.0  # above the registrar's longest expiry (3600 s)
    max_per_address: int = 200  # an office behind one NAT address; more is an attack
    max_connections: int = 10_000
    reserve_fds: int = 1024  # file descriptors kept for HTTP, the database, logs
    log_interval: float = 10.0


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (idle peers must not starve HTTP of descriptors);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open file limit from %d to %d: %s", soft, target, exc)
    return int(soft)


class ConnectionGuard:
    """Counts SIP connections per peer address and in all, refuses above the caps, and logs refusals and
    resource errors once per interval with counts. One per server, shared by its TCP, TLS and WS flows."""

    def __init__(self, limits: ConnectionLimits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or ConnectionLimits()
        self.clock = clock
        self.max_connections = self.limits.max_connections
        self.total = 0
        self.per_address: dict[str, int] = {}
        self.counts: Counter[str] = Counter()  # every refusal / close reason since start (for tests, metrics)
        self._pending: Counter[str] = Counter()  # not yet logged
        self._last_log = -1e18

    def fit_file_limit(self, soft_limit: int) -> None:
        """Keep the global cap below the file limit minus the reserve (at least a few connections)."""
        self.max_connections = min(self.limits.max_connections, max(16, soft_limit - self.limits.reserve_fds))

    def admit(self, host: str) -> bool:
        if self.total >= self.max_connections:
            self.note("refused-global-cap")
            return False
        held = self.per_address.get(host, 0)
        if held >= self.limits.max_per_address:
            self.note("refused-address-cap")
            return False
        self.per_address[host] = held + 1
        self.total += 1
        return True

    def release(self, host: str) -> None:
        held = self.per_address.get(host, 0)
        if held <= 1:
            self.per_address.pop(host, None)
        else:
            self.per_address[host] = held - 1
        self.total = max(0, self.total - 1)

    def note(self, reason: str) -> None:
        """Count an event; log all counted events at most once per ``log_interval``."""
        self.counts[reason] += 1
        self._pending[reason] += 1
        self.flush()

    def flush(self, *, force: bool = False) -> None:
        now = self.clock()
        if not self._pending or (not force and now - self._last_log < self.limits.log_interval):
            return
        self._last_log = now
        summary = " ".join(f"{reason}={count}" for reason, count in sorted(self._pending.items()))
        self._pending.clear()
        log.warning(
            "sip connections: %s in the last %.0f s (open %d of %d, per-address cap %d)",
            summary, self.limits.log_interval, self.total, self.max_connections, self.limits.max_per_address,
        )

    def expired(self, *, opened: float, last_message: float | None, last_bytes: float, registered: bool,
                now: float) -> str | None:
        """Why a connection must be closed now (None: keep it); the same rule for TCP, TLS and WS."""
        limits = self.limits
        if registered:
            return "closed-idle-registered" if now - last_bytes > limits.registered_idle_timeout else None
        if last_message is None:
            return "closed-no-first-message" if now - opened > limits.first_message_timeout else None
        return "closed-idle" if now - last_message > limits.idle_timeout else None


class UdpTransport:
    """A non-blocking UDP socket watched with ``loop.add_reader`` (asyncio's loop or uvloop).

    Every datagram already queued is read in one wake-up (asyncio's own datagram transport reads one per
    loop iteration); sending is a direct ``sendto``, queued only when the kernel's buffer is full.
    ``on_datagram`` is looked up for every datagram, so it may be replaced while running (tests tap it).
    """

    def __init__(self, sock: socket.socket, on_datagram: Callable[[bytes, Addr], None]) -> None:
        self.sock = sock
        self.on_datagram = on_datagram
        self._loop = asyncio.get_running_loop()
        self._backlog: deque[tuple[bytes, Addr]] = deque()
        self._closed = False
        self._loop.add_reader(sock.fileno(), self._read_ready)

    def _read_ready(self) -> None:
        recvfrom = self.sock.recvfrom
        for _ in range(READ_BATCH):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port unreachable for an earlier sendto and the like: UDP has no connection to fail,
                # the transaction timers decide
                log.debug("udp error: %s", exc)
                continue
            try:
                self.on_datagram(data, (addr[0], addr[1]))
            except Exception:  # the receiver never raises on a peer's bytes; a bug must not stop the socket
                log.exception("udp datagram handler failed")
            if self._closed:
                return

    def send(self, data: bytes, addr: Addr) -> None:
        if self._closed:
            return
        if self._backlog:
            self._backlog.append((data, addr))
            return
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._backlog.append((data, addr))
            self._loop.add_writer(self.sock.fileno(), self._write_ready)
        except OSError as exc:
            log.debug("udp send to %s failed: %s", addr, exc)

    def _write_ready(self) -> None:
        backlog = self._backlog
        while backlog:
            data, addr = backlog[0]
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("udp send to %s failed: %s", addr, exc)
            backlog.popleft()
        self._loop.remove_writer(self.sock.fileno())

    @property
    def local_addr(self) -> Addr:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def queued_fraction(self) -> float:
        """How full the kernel's receive queue is (0..1): bytes waiting over the buffer size (Linux
        SO_MEMINFO; 0 where the system does not tell). The load shedder acts before the kernel drops."""
        if self._closed:
            return 0.0
        try:
            info = struct.unpack("9I", self.sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 36))
        except (OSError, struct.error):
            return 0.0
        return info[0] / info[1] if info[1] else 0.0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self.sock.fileno())
        if self._backlog:
            self._loop.remove_writer(self.sock.fileno())
            self._backlog.clear()
        self.sock.close()


async def open_udp(host: str, port: int, on_datagram: Callable[[bytes, Addr], None]) -> UdpTransport:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    error: OSError = OSError(f"cannot resolve {host!r}")
    for family, type_, proto, _name, address in infos:  # as create_datagram_endpoint: the first that binds
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            # absorb bursts (a registration storm after a power cut); the kernel caps it at rmem_max
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind(address)
            return UdpTransport(sock, on_datagram)
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error


class _TcpConnection(asyncio.Protocol):
    def __init__(self, listener: TcpListener, peer: Addr | None = None) -> None:
        self.listener = listener
        self.conn_id = next(listener.ids)
        self.transport: asyncio.Transport | None = None
        # set for connections the listener accepted (and counted); outbound ones (trunks) are ours: exempt
        self.admitted_peer = peer
        self.peer_host = peer[0] if peer is not None else None
        now = listener.clock()
        self.opened = now
        self.last_message: float | None = None
        self.last_bytes = now
        self.registered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.listener.conns[self.conn_id] = self
        self.listener.on_connect(self.conn_id, (str(peer[0]), int(peer[1])))

    def data_received(self, data: bytes) -> None:
        now = self.listener.clock()
        self.last_bytes = now
        messages = self.listener.on_data(self.conn_id, data)
        # a whole SIP message arrived (the endpoint counts them); CRLF keep-alives and fragments do not
        # count, so an unregistered peer cannot hold a connection by trickling bytes
        if messages is None or (isinstance(messages, int) and messages > 0):
            self.last_message = now

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.conns.pop(self.conn_id, None)
        self.listener.forget(self)
        self.listener.on_close(self.conn_id)


class TcpListener:
    """Accepts SIP-over-TCP (or, with an SSL context, TLS) connections; each gets an integer id.

    Several listeners of one server share ``ids`` so a connection id names one connection whatever
    listener accepted it, and ``guard`` so the caps hold across them. ``on_data`` may return how many whole
    SIP messages the bytes completed (what the idle rules count as activity).
    """

    def __init__(
        self,
        on_connect: Callable[[int, Addr], None],
        on_data: Callable[[int, bytes], object],
        on_close: Callable[[int], None],
        *,
        ids: Iterator[int] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        guard: ConnectionGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_connect = on_connect
        self.on_data = on_data
        self.on_close = on_close
        self.ids = ids if ids is not None else itertools.count(1)
        self.ssl_context = ssl_context
        self.guard = guard or ConnectionGuard()
        self.clock = clock
        self.conns: dict[int, _TcpConnection] = {}
        self._handshaking: set[_TcpConnection] = set()
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def transport_name(self) -> str:
        return "tls" if self.ssl_context is not None else "tcp"

    async def start(self, host: str, port: int) -> None:
        loop = self._loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, type_, proto, _name, address in infos[:1]:
            sock = socket.socket(family, type_, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
                sock.listen(4096)  # the kernel caps it at somaxconn
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            self._sockets.append(sock)
            loop.add_reader(sock.fileno(), self._accept_ready, sock)
        self._sweeper = loop.call_later(1.0, self._sweep)

    @property
    def local_addr(self) -> Addr:
        assert self._sockets
        host, port = self._sockets[0].getsockname()[:2]
        return str(host), int(port)

    # --- accepting ---------------------------------------------------------------------------------------
    def _accept_ready(self, sock: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    # out of descriptors or memory: count it, pause accepting (connections wait in the
                    # backlog), log once per interval, not a traceback per attempt
                    self.guard.note(f"accept-{errno.errorcode.get(exc.errno or 0, 'error')}")
                    loop.remove_reader(sock.fileno())
                    loop.call_later(ACCEPT_RETRY, self._resume_accept, sock)
                else:
                    self.guard.note("accept-error")
                return
            host = str(addr[0])
            if self._closed or not self.guard.admit(host):
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST: no TIME_WAIT
                conn.close()
                continue
            conn.setblocking(False)
            protocol = _TcpConnection(self, (host, int(addr[1])))
            self._handshaking.add(protocol)
            task = loop.create_task(self._attach(conn, protocol))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _resume_accept(self, sock: socket.socket) -> None:
        if not self._closed and self._loop is not None and sock.fileno() >= 0:
            self._loop.add_reader(sock.fileno(), self._accept_ready, sock)

    async def _attach(self, conn: socket.socket, protocol: _TcpConnection) -> None:
        loop = self._loop
        assert loop is not None
        try:
            await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.guard.limits.first_message_timeout if self.ssl_context else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, asyncio.CancelledError) as exc:
            # a failed or timed-out TLS handshake: nothing reached the endpoint
            self.guard.note("tls-handshake-failed" if self.ssl_context is not None else "attach-failed")
            conn.close()
            self._handshaking.discard(protocol)
            self.forget(protocol)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            self._handshaking.discard(protocol)

    def forget(self, protocol: _TcpConnection) -> None:
        """A counted connection ended: give its place back (once)."""
        peer = protocol.admitted_peer
        if peer is not None:
            protocol.admitted_peer = None
            self.guard.release(peer[0])

    # --- idle rules ----------------------------------------------------------------------------------------
    def mark_registered(self, conn_id: int, registered: bool = True) -> None:
        conn = self.conns.get(conn_id)
        if conn is not None:
            conn.registered = registered

    def _sweep(self) -> None:
        loop = self._loop
        if loop is None or self._closed:
            return
        now = self.clock()
        guard = self.guard
        budget = CLOSE_BATCH
        for conn in list(self.conns.values()):
            if budget <= 0:
                break  # the rest next second
            if conn.admitted_peer is None or conn.transport is None or conn.transport.is_closing():
                continue  # ours (outbound), or already being closed
            reason = guard.expired(
                opened=conn.opened, last_message=conn.last_message, last_bytes=conn.last_bytes,
                registered=conn.registered, now=now,
            )
            if reason is not None:
                guard.note(reason)
                conn.transport.abort()
                budget -= 1
        guard.flush()
        self._sweeper = loop.call_later(1.0, self._sweep)

    # --- connecting, sending, stopping -----------------------------------------------------------------------
    async def connect(self, addr: Addr, *, timeout: float = 10.0) -> int:
        """Open a connection of our own to ``addr`` (a trunk over TCP); it reports through ``on_connect`` /
        ``on_data`` / ``on_close`` like an accepted one, is exempt from the caps, and its id is returned."""
        loop = asyncio.get_running_loop()
        _transport, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _TcpConnection(self), addr[0], addr[1]), timeout
        )
        return protocol.conn_id

    def send(self, conn_id: int, data: bytes, *, close: bool = False) -> bool:
        conn = self.conns.get(conn_id)
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return False
        if data:
            conn.transport.write(data)
        if close:
            conn.transport.close()
        return True

    async def stop(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for sock in self._sockets:
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.conns.values()):
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.sleep(0)  # let connection_lost callbacks run
