"""What one peer and all peers can hold on the SIP TCP transport: first-message and idle timeouts,
RFC 5626 keep-alives keeping registered connections, per-address and global caps, and counted (not
per-event) logging. A real SipServer on loopback with short timeouts; clients are plain sockets."""

from __future__ import annotations

import contextlib
import logging
import resource
import socket
import time

import pytest
from sip_helpers import DOMAIN, running_sip_server

from callto.sip.auth import DigestClient
from callto.sip.message import Response, StreamBuffer
from callto.sip.ports import SipAccount, StaticCredentials
from callto.sip.transport import ConnectionGuard, ConnectionLimits, raise_file_limit

pytestmark = pytest.mark.timeout(40)

LIMITS = ConnectionLimits(
    first_message_timeout=1.0, idle_timeout=1.5, registered_idle_timeout=2.0, max_per_address=3,
    max_connections=8, log_interval=60.0,
)


def _request(method: str, port: int, cseq: int, extra: str = "") -> bytes:
    return (
        f"{method} sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKlim{port}{cseq};rport\r\n"
        f"From: <sip:lim-1@{DOMAIN}>;tag=t\r\nTo: <sip:lim-1@{DOMAIN}>\r\nCall-ID: lim-{port}\r\n"
        f"CSeq: {cseq} {method}\r\nContact: <sip:lim-1@127.0.0.1:{port};transport=tcp>\r\nMax-Forwards: 70\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def _read(sock: socket.socket, buffer: StreamBuffer) -> Response:
    while True:
        for item in buffer.feed(sock.recv(65535)):
            if isinstance(item, Response) and item.status >= 200:
                return item


def _closed(sock: socket.socket, within: float) -> bool:
    """True when the server closes ``sock`` within ``within`` seconds (CRLF pongs are read past)."""
    sock.settimeout(0.1)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionError:
            return True
        if not data:
            return True
    return False


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _register(sock: socket.socket) -> None:
    port = sock.getsockname()[1]
    buffer = StreamBuffer()
    sock.sendall(_request("REGISTER", port, 1))
    challenge = _read(sock, buffer)
    assert challenge.status == 401
    auth = DigestClient("lim-1", "pw-lim").authorization(
        challenge.headers.get_all("WWW-Authenticate"), "REGISTER", f"sip:{DOMAIN}"
    )
    sock.sendall(_request("REGISTER", port, 2, f"Authorization: {auth}\r\n"))
    assert _read(sock, buffer).status == 200


def test_silent_idle_and_keepalive_only_connections_are_closed_but_a_registered_one_is_kept_by_keepalives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    creds = StaticCredentials([SipAccount("lim-1", "pw-lim", "dev-lim", "user-lim", "501")])
    gen = running_sip_server(creds, connection_limits=LIMITS)
    server = next(gen)
    caplog.set_level(logging.WARNING, logger="callto.sip.transport")
    try:
        port = server.port
        silent = _connect(port)  # never sends anything (a slowloris, a port scan)
        half = _connect(port, "127.0.0.4")  # half a message, the rest never comes
        half.sendall(_request("OPTIONS", half.getsockname()[1], 1)[:60])
        chatty = _connect(port, "127.0.0.2")  # one OPTIONS, then only keep-alives: no registration
        chatty.sendall(_request("OPTIONS", chatty.getsockname()[1], 1))
        assert _read(chatty, StreamBuffer()).status == 200
        phone = _connect(port, "127.0.0.3")
        _register(phone)
        assert _closed(silent, 2.5), "a connection that never sent a message outlives the first-message timeout"
        assert _closed(half, 1.5), "a half-sent message held its connection past the first-message timeout"
        start = time.monotonic()
        while time.monotonic() - start < 4.0:  # twice the registered idle timeout, pinging every 0.4 s
            with contextlib.suppress(OSError):  # closed by the server meanwhile: what is checked below
                chatty.sendall(b"\r\n\r\n")
            phone.sendall(b"\r\n\r\n")
            time.sleep(0.4)
        assert _closed(chatty, 0.5), "keep-alives kept an unregistered connection past the idle timeout"
        assert not _closed(phone, 0.3), "the registered phone's connection was closed despite its keep-alives"
        assert _closed(phone, 3.5), "a registered connection with no bytes at all outlives its idle timeout"
        counts = server.server.guard.counts
        assert counts["closed-no-first-message"] == 2 and counts["closed-idle"] == 1, counts
        assert counts["closed-idle-registered"] == 1, counts
    finally:
        for _ in gen:
            pass


def test_per_address_and_global_caps_refuse_more_and_log_once_per_interval_with_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gen = running_sip_server(StaticCredentials(), connection_limits=LIMITS)
    server = next(gen)
    caplog.set_level(logging.WARNING, logger="callto.sip.transport")
    socks: list[socket.socket] = []
    try:
        port = server.port
        for _ in range(10):  # one address tries 10: 3 are held, 7 refused at once
            socks.append(_connect(port, "127.0.0.10"))
        time.sleep(0.3)
        assert sum(not _closed(s, 0.05) for s in socks) == 3
        for i in range(11, 20):  # nine more addresses: the global cap of 8 holds
            socks.append(_connect(port, f"127.0.0.{i}"))
        time.sleep(0.3)
        guard = server.server.guard
        assert guard.total == 8, guard.per_address
        assert guard.counts["refused-address-cap"] == 7 and guard.counts["refused-global-cap"] == 4, guard.counts
        lines = [r.getMessage() for r in caplog.records if "sip connections:" in r.getMessage()]
        assert len(lines) == 1, lines  # eleven refusals, one line (the next comes after log_interval)
        assert "refused-address-cap=1" in lines[0]
        guard.flush(force=True)
        lines = [r.getMessage() for r in caplog.records if "sip connections:" in r.getMessage()]
        assert "refused-address-cap=6" in lines[-1] and "refused-global-cap=4" in lines[-1], lines
    finally:
        for s in socks:
            s.close()
        for _ in gen:
            pass


def test_global_cap_stays_below_the_file_limit_and_the_soft_limit_is_raised_to_the_hard_one() -> None:
    soft = raise_file_limit()
    assert soft == resource.getrlimit(resource.RLIMIT_NOFILE)[1] or soft >= 1 << 20
    guard = ConnectionGuard(ConnectionLimits(max_connections=1_000_000, reserve_fds=1024))
    guard.fit_file_limit(soft)
    assert guard.max_connections == soft - 1024
