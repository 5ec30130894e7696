"""Real peer: headless baresip registers with digest auth (SHA-256 offered first) against a running SipServer.

The server's UDP input is tapped (the datagram callback is wrapped, nothing is replaced) so the test can
compare the stored contact with the Contact baresip actually sent.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sip_helpers import DOMAIN, RunningServer, running_sip_server

from callto.sip.message import Request, parse_message
from callto.sip.ports import SipAccount, StaticCredentials
from callto.sip.registrar import DeviceOffline, DeviceOnline
from support.baresip import Account, Baresip
from support.procs import ProcessGroup
from support.tone import write_tone_wav

pytestmark = pytest.mark.sip


def _tap(server: RunningServer) -> list[bytes]:
    seen: list[bytes] = []
    udp = server.server.udp
    assert udp is not None
    inner: Callable[[bytes, tuple[str, int]], None] = udp.on_datagram

    def tapped(data: bytes, addr: tuple[str, int]) -> None:
        seen.append(data)
        inner(data, addr)

    udp.on_datagram = tapped
    return seen


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout}s")


@pytest.mark.timeout(60)
def test_baresip_registers_and_its_contact_is_stored_exactly(tmp_path: Path, procs: ProcessGroup) -> None:
    if shutil.which("baresip") is None:
        print("baresip is not installed (Debian package baresip-core)")
        pytest.skip("baresip is not installed (Debian package baresip-core)")
    creds = StaticCredentials([SipAccount("desk-301", "Very$ecret-301", "dev-301", "user-3", "301")])
    gen = running_sip_server(creds)  # default: SHA-256 first, MD5 alone for baresip 1.x (it fails on SHA-256)
    server = next(gen)
    phone: Baresip | None = None
    try:
        seen = _tap(server)
        account = Account(
            aor=f"sip:desk-301@{DOMAIN}",
            password="Very$ecret-301",
            auth_user="desk-301",
            outbound=f"sip:127.0.0.1:{server.port};transport=udp",
            regint=600,
        )
        phone = Baresip(
            tmp_path, procs, name="desk301", tone_wav=write_tone_wav(tmp_path / "t.wav", 440.0, 2.0), account=account
        )
        phone.start()
        phone.wait_registered(timeout=15)

        registers = [m for m in (parse_message(d, strict=False) for d in seen) if isinstance(m, Request)]
        authed = [m for m in registers if m.method == "REGISTER" and "Authorization" in m.headers]
        assert authed, "baresip never answered the challenge"
        sent = authed[-1]
        algorithm = (sent.headers.get("Authorization") or "").lower()
        print("baresip answered with", "SHA-256" if "sha-256" in algorithm else "MD5")
        [contact] = sent.contacts
        assert contact.addr is not None
        bindings = server.call(lambda: server.server.registrar.bindings("dev-301"))
        assert len(bindings) == 1
        assert bindings[0].contact == contact.addr.uri_text
        assert bindings[0].contact_header == contact.raw
        assert bindings[0].user_agent == sent.headers.get("User-Agent")
        assert (bindings[0].source_host, bindings[0].source_transport) == ("127.0.0.1", "udp")
        assert bindings[0].source_port == phone.sip_port
        with server.lock:
            assert [type(e) for e in server.events] == [DeviceOnline]
        assert server.options_ok()

        # baresip sends an un-REGISTER (Expires: 0) when it quits: the device goes offline
        phone.stop()
        phone = None
        _wait(lambda: server.call(lambda: server.server.registrar.bindings("dev-301")) == [], 10, "un-REGISTER")
        with server.lock:
            assert isinstance(server.events[-1], DeviceOffline)
            assert server.events[-1].reason == "unregistered"
    finally:
        if phone is not None:
            phone.stop()
        for _ in gen:
            pass
