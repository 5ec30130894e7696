"""Free loopback ports picked at run time (never fixed numbers: several suites run at once)."""

from __future__ import annotations

import random
import socket
from typing import Literal

LOOPBACK = "127.0.0.1"


def free_port(kind: Literal["udp", "tcp", "both"] = "tcp", host: str = LOOPBACK) -> int:
    """A port that is free right now for ``kind`` (``both``: UDP and TCP, as SIP listeners need)."""
    for _ in range(200):
        if kind == "udp":
            return _bind_probe(socket.SOCK_DGRAM, host, 0)
        tcp_port = _bind_probe(socket.SOCK_STREAM, host, 0)
        if kind == "tcp":
            return tcp_port
        try:
            _bind_probe(socket.SOCK_DGRAM, host, tcp_port)
        except OSError:
            continue
        return tcp_port
    raise RuntimeError("no free port pair found")


def _bind_probe(kind: int, host: str, port: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, port))
        found: int = sock.getsockname()[1]
        return found


def free_port_range(size: int, low: int = 20000, high: int = 60000, host: str = LOOPBACK) -> tuple[int, int]:
    """A run of ``size`` ports (even start) whose UDP ports are free now, for rtpengine's media range."""
    for _ in range(100):
        start = random.randrange(low, high - size) & ~1
        try:
            socks = []
            for port in range(start, start + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((host, port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return start, start + size - 1
    raise RuntimeError(f"no free range of {size} UDP ports")


def free_port_with_tls_neighbour(low: int = 20000, high: int = 60000, host: str = LOOPBACK) -> int:
    """A SIP port free for UDP and TCP whose next port is free for TCP too: baresip opens its TLS
    listener on ``sip_port + 1``. Picked at random, away from the kernel's sequential ephemeral ports,
    which the next ``free_port()`` call would likely hand out as exactly that neighbour."""
    for _ in range(200):
        port = random.randrange(low, high - 1)
        try:
            _bind_probe(socket.SOCK_DGRAM, host, port)
            _bind_probe(socket.SOCK_STREAM, host, port)
            _bind_probe(socket.SOCK_STREAM, host, port + 1)
        except OSError:
            continue
        return port
    raise RuntimeError("no free SIP port with a free TLS neighbour")
