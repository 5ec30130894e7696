"""Thin asyncio transports for the SIP endpoint: a UDP socket and a TCP (or TLS) listener.

They only move bytes: what arrives is handed to a callback with the peer address (and a connection id for
TCP); sending is ``send``. Parsing, framing and timers belong to :mod:`callto.sip.endpoint`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterator
from typing import cast

log = logging.getLogger(__name__)

Addr = tuple[str, int]


# Datagrams read per wake-up of the socket at most: under load one wake-up drains the queue instead of a loop
# iteration (and an epoll_wait) per datagram; the bound keeps timers and other sockets served meanwhile.
READ_BATCH = 64
MAX_DATAGRAM = 65535


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
    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.conn_id = next(listener.ids)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.listener.conns[self.conn_id] = self
        self.listener.on_connect(self.conn_id, (str(peer[0]), int(peer[1])))

    def data_received(self, data: bytes) -> None:
        self.listener.on_data(self.conn_id, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.conns.pop(self.conn_id, None)
        self.listener.on_close(self.conn_id)


class TcpListener:
    """Accepts SIP-over-TCP (or, with an SSL context, TLS) connections; each gets an integer id.

    Several listeners of one server share ``ids`` so a connection id names one connection whatever
    listener accepted it.
    """

    def __init__(
        self,
        on_connect: Callable[[int, Addr], None],
        on_data: Callable[[int, bytes], None],
        on_close: Callable[[int], None],
        *,
        ids: Iterator[int] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.on_connect = on_connect
        self.on_data = on_data
        self.on_close = on_close
        self.ids = ids if ids is not None else itertools.count(1)
        self.ssl_context = ssl_context
        self.conns: dict[int, _TcpConnection] = {}
        self.server: asyncio.Server | None = None

    @property
    def transport_name(self) -> str:
        return "tls" if self.ssl_context is not None else "tcp"

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _TcpConnection(self), host, port, ssl=self.ssl_context)

    @property
    def local_addr(self) -> Addr:
        assert self.server is not None and self.server.sockets
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

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
        for conn in list(self.conns.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
