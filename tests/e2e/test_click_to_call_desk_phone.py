"""Click-to-call through the real server to real phones: the desk phone rings first, then the destination,
audio flows both ways, the user's sessions see the progress and the history keeps the call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from e2e.events import EventLog
from support.baresip import Account, Baresip
from support.fixtures import BaresipFactory
from support.procs import ProcessError
from support.server import Api, ServerProcess
from support.tone import describe, has_tone

pytestmark = [pytest.mark.sip, pytest.mark.timeout(90)]


def register_phone(factory: BaresipFactory, tone: Path, server: ServerProcess | None, device: dict[str, Any],
                   name: str, answermode: str = "manual", outbound: str | None = None) -> Baresip:
    """A baresip desk phone on ``device``'s SIP account, registered to ``server`` (or to ``outbound``, an edge)."""
    sip = device["sip"]
    assert server is not None or outbound is not None
    account = Account(aor=f"sip:{sip['username']}@callto.test", password=sip["password"],
                      outbound=outbound or f"sip:127.0.0.1:{server.sip_port}",  # type: ignore[union-attr]
                      regint=600, answermode=answermode)
    for attempt in range(3):
        try:
            phone = factory(f"{name}{attempt or ''}", tone, account)
            break
        except ProcessError:  # baresip also opens sip_port+1 for TLS, which a neighbour may hold
            if attempt == 2:
                raise
    phone.wait_registered(timeout=10)
    return phone


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Any:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
    yield proc
    proc.stop()


def test_desk_phone_rings_before_destination_and_audio_flows(
    sqlite_server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    server = sqlite_server
    admin = Api(server.url).login("admin", "admin-secret-1")
    alice = admin.create_user("alice", extension="501", outbound="national")
    bob = admin.create_user("bob", extension="502")
    alice_desk = admin.add_device(alice["id"], "deskphone")
    bob_desk = admin.add_device(bob["id"], "deskphone")
    desk = register_phone(baresip_factory, tone_440, server, alice_desk, "alice")
    bobs = register_phone(baresip_factory, tone_1000, server, bob_desk, "bob")
    api = Api(server.url).login("alice", "password-123")
    events = EventLog(server.ws_url, api.token or "")
    try:
        r = api.post("/api/v1/calls", json={"to": "tel:502"}, headers={"Idempotency-Key": "k1"})
        assert r.status_code == 202, r.text
        call = r.json()
        assert call["strategy"] == "originate" and call["device_id"] == alice_desk["id"]
        assert [a["strategy"] for a in call["attempts"]] == ["phone_http", "lan_relay", "originate"]
        assert [a["outcome"] for a in call["attempts"]] == ["skipped", "skipped", "ok"]

        incoming = desk.wait_incoming(timeout=5)
        assert "502" in f"{incoming.get('peeruri')} {incoming.get('peerdisplayname')}", incoming
        with pytest.raises(Exception, match="CALL_INCOMING"):
            bobs.wait_incoming(timeout=0.5)
        events.wait("call.ringing", call_id=call["call_id"])
        desk.answer()
        bobs.wait_incoming(timeout=5)
        bobs.answer()
        desk.wait_established(timeout=5)
        bobs.wait_established(timeout=5)
        events.wait("call.answered", call_id=call["call_id"])
        assert api.get(f"/api/v1/calls/{call['call_id']}").json()["state"] == "answered"
        time.sleep(2.5)
        assert api.delete(f"/api/v1/calls/{call['call_id']}").status_code == 200
        desk.wait_closed(timeout=5)
        bobs.wait_closed(timeout=5)
        events.wait("call.ended", call_id=call["call_id"])
        assert has_tone(bobs.received_wav(), 440, min_seconds=1.5), describe(bobs.received_wav())
        assert has_tone(desk.received_wav(), 1000, min_seconds=1.5), describe(desk.received_wav())

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            entries = api.get("/api/v1/history").json()
            items = entries.get("items", entries) if isinstance(entries, dict) else entries
            if items:
                break
            time.sleep(0.2)
        assert items, "the call is in alice's history"
        assert items[0]["direction"] == "click-to-call"
        assert "502" in str(items[0])
    finally:
        events.close()
