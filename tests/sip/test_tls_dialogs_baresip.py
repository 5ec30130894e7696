"""Dialogs over TLS with a real baresip: the switch names its TLS listener in Contact and Via, so the phone's
ACK and BYE reach it and a hang-up on the TLS phone ends the call at once (RFC 3261 18, 20.42).

The server is a real ``callto serve`` with its generated self-signed certificate; baresip trusts it through
``sip_cafile``. Alice's desk phone registers over TLS, Bob's over UDP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.baresip import Account, Baresip
from support.procs import ProcessError, ProcessGroup
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
    yield proc
    proc.stop()


def _phone(tmp: Path, procs: ProcessGroup, tone: Path, server: ServerProcess, device: dict[str, Any], name: str,
           *, tls: bool) -> Baresip:
    sip = device["sip"]
    outbound = (f"sip:127.0.0.1:{server.sip_tls_port};transport=tls" if tls
                else f"sip:127.0.0.1:{server.sip_port}")
    account = Account(aor=f"sip:{sip['username']}@callto.test", password=sip["password"], outbound=outbound,
                      regint=600, answermode="manual")
    extra = (f"sip_cafile {server.data_dir / 'tls' / 'server.crt'}",) if tls else ()
    for attempt in range(3):
        phone = Baresip(tmp, procs, name=f"{name}{attempt or ''}", tone_wav=tone, account=account,
                        extra_config=extra)
        try:
            phone.start()
            break
        except ProcessError:  # baresip also opens sip_port+1 for TLS, which a neighbour may hold
            phone.stop()
            if attempt == 2:
                raise
    phone.wait_registered(timeout=10)
    return phone


def _ended_within(api: Api, path: str, seconds: float, done: Any) -> float:
    """Poll ``path`` until ``done(json)``; the seconds it took (fails after ``seconds``)."""
    start = time.monotonic()
    while True:
        body = api.get(path).json()
        if done(body):
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            raise AssertionError(f"{path} still {body} after {seconds} s")
        time.sleep(0.05)


def _history(body: Any) -> list[dict[str, Any]]:
    return list(body.get("items", []) if isinstance(body, dict) else body)


def _ended(body: Any) -> list[dict[str, Any]]:
    """The entries of calls that are over (an answered call is listed from its answer, with no end)."""
    return [e for e in _history(body) if e.get("ended_at")]


def test_tls_desk_phone_registers_and_its_bye_ends_a_click_to_call_at_once(
    server: ServerProcess, tmp_path: Path, procs: ProcessGroup, tone_440: Path, tone_1000: Path
) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    alice = admin.create_user("alice", extension="501", outbound="national")
    bob = admin.create_user("bob", extension="502")
    alice_desk = admin.add_device(alice["id"], "deskphone")
    bob_desk = admin.add_device(bob["id"], "deskphone")
    desk = _phone(tmp_path, procs, tone_440, server, alice_desk, "alice", tls=True)
    bobs = _phone(tmp_path, procs, tone_1000, server, bob_desk, "bob", tls=False)
    assert desk.process is not None and "/TLS/v4} 200 OK" in desk.process.output()  # registered over TLS
    api = Api(server.url).login("alice", "password-123")

    # 1. click-to-call: the switch calls the TLS desk phone first, then Bob; the desk phone hangs up
    r = api.post("/api/v1/calls", json={"to": "tel:502"}, headers={"Idempotency-Key": "tls-1"})
    assert r.status_code == 202, r.text
    call = r.json()
    assert call["strategy"] == "originate" and call["device_id"] == alice_desk["id"], call
    desk.wait_incoming(timeout=5)
    desk.answer()
    bobs.wait_incoming(timeout=5)
    bobs.answer()
    desk.wait_established(timeout=5)
    bobs.wait_established(timeout=5)
    _ended_within(api, f"/api/v1/calls/{call['call_id']}", 3, lambda b: b["state"] == "answered")
    time.sleep(1.0)  # past the ACK: a BYE to the wrong port would leave the call up from here on
    desk.hangup()
    took = _ended_within(api, f"/api/v1/calls/{call['call_id']}", 1.0, lambda b: b["state"] == "ended")
    bobs.wait_closed(timeout=1.0)
    desk.wait_closed(timeout=2)
    print(f"click-to-call ended {took:.3f} s after the TLS phone's BYE")

    # 2. the TLS phone calls Bob and hangs up
    desk.dial("sip:502@callto.test")
    bobs.wait_incoming(timeout=5)
    bobs.answer()
    desk.wait_established(timeout=5)
    bobs.wait_established(timeout=5)
    time.sleep(1.0)
    before = len(_ended(api.get("/api/v1/history").json()))
    desk.hangup()
    bobs.wait_closed(timeout=1.0)
    _ended_within(api, "/api/v1/history", 1.0, lambda b: len(_ended(b)) > before)
    desk.wait_closed(timeout=2)

    # 3. Bob calls the TLS phone, which answers and hangs up (our INVITE's Contact is its BYE's target)
    bobs.dial("sip:501@callto.test")
    desk.wait_incoming(timeout=5)
    desk.answer()
    desk.wait_established(timeout=5)
    bobs.wait_established(timeout=5)
    time.sleep(1.0)
    before = len(_ended(api.get("/api/v1/history").json()))
    desk.hangup()
    bobs.wait_closed(timeout=1.0)
    _ended_within(api, "/api/v1/history", 1.0, lambda b: len(_ended(b)) > before)
    desk.wait_closed(timeout=2)
    entries = _history(api.get("/api/v1/history").json())
    assert len(entries) >= 3, entries
    assert not any("connection-lost" in str(e) for e in entries), entries
