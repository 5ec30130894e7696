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
from collections.abc import Callable, Iterator
from typing import cast

log = logging.getLogger(__name__)

Addr = tuple[str, int]


class UdpTransport(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Addr], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector loop's datagram transport does not derive from asyncio.DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: UDP has no connection to fail, the transaction timers decide
        log.debug("udp error: %s", exc)

    def send(self, data: bytes, addr: Addr) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    @property
    def local_addr(self) -> Addr:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_udp(host: str, port: int, on_datagram: Callable[[bytes, Addr], None]) -> UdpTransport:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: UdpTransport(on_datagram), local_addr=(host, port)
    )
    protocol.transport = transport
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # absorb bursts (a registration storm after a power cut); the kernel caps it at rmem_max
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return protocol


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
