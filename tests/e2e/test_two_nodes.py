"""Two callto nodes on one PostgreSQL database and one Redis: phones registered on different nodes call
each other with audio both ways, a click sent to the other node rings the phone first, both nodes agree on
which devices are online, and a logout on one node refuses the token on the other (real servers, baresip)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from callto.store.secretbox import new_key_text
from e2e.test_click_to_call_desk_phone import register_phone
from support.fixtures import BaresipFactory
from support.server import Api, ServerProcess
from support.tone import describe, has_tone

pytestmark = [pytest.mark.sip, pytest.mark.postgres, pytest.mark.timeout(180)]


def _until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def _desk_online(api: Api, device_id: int) -> bool:
    devices = api.get("/api/v1/me").json()["devices"]
    return any(d["id"] == device_id and d["online"] for d in devices)


def test_phones_on_different_nodes_call_each_other_and_clicks_work_from_either_node(
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    baresip_factory: BaresipFactory,
    tone_440: Path,
    tone_1000: Path,
) -> None:
    shared = {
        "CALLTO_SECRET_KEY": new_key_text(),
        "CALLTO_REDIS_URL": redis_url,
        "CALLTO_REDIS_PREFIX": f"callto:test-{tmp_path.name[-12:]}",  # this deployment alone on the shared Redis
    }
    node_a = ServerProcess(data_dir=tmp_path / "a", database_url=postgres_url, env_extra=shared).start(timeout=90)
    node_b = ServerProcess(data_dir=tmp_path / "b", database_url=postgres_url, env_extra=shared).start(timeout=90)
    try:
        admin = Api(node_a.url).login("admin", "admin-secret-1")
        alice = admin.create_user("alice", extension="501", outbound="national")
        bob = admin.create_user("bob", extension="502")
        alice_desk = admin.add_device(alice["id"], "deskphone")
        bob_desk = admin.add_device(bob["id"], "deskphone")
        time.sleep(1.5)  # node B learns of devices made through node A from the database within a second
        alice_phone = register_phone(baresip_factory, tone_440, node_a, alice_desk, "alice")
        bob_phone = register_phone(baresip_factory, tone_1000, node_b, bob_desk, "bob")

        # A token from one node works on the other (the signing key is in the database).
        alice_on_a = Api(node_a.url).login("alice", "password-123")
        alice_on_b = Api(node_b.url, alice_on_a.token)
        assert _until(lambda: _desk_online(alice_on_b, alice_desk["id"]), 10), "B sees alice's phone (on A) online"
        assert _desk_online(alice_on_a, alice_desk["id"])
        # Node B pushes the registrations it has written to node A over Redis (docs/cluster.md), well before
        # A's next full read of the table (every 10 s with Redis): A knows where bob's phone is within seconds.
        bob_on_a = Api(node_a.url).login("bob", "password-123")
        assert _until(lambda: _desk_online(bob_on_a, bob_desk["id"]), 4), "A sees bob's phone (on B) online"

        # A call from the phone on A to the phone on B.
        alice_phone.dial("sip:502@callto.test")
        bob_phone.wait_incoming(timeout=10)
        bob_phone.answer()
        alice_phone.wait_established(timeout=5)
        bob_phone.wait_established(timeout=5)
        time.sleep(2.5)
        alice_phone.hangup()
        bob_phone.wait_closed(timeout=5)
        assert has_tone(bob_phone.received_wav(), 440, min_seconds=1.5), describe(bob_phone.received_wav())
        assert has_tone(alice_phone.received_wav(), 1000, min_seconds=1.5), describe(alice_phone.received_wav())

        # A click sent to node B for alice, whose phone registered on node A: her phone rings first.
        r = alice_on_b.post("/api/v1/calls", json={"to": "502"}, headers={"Idempotency-Key": "two-nodes-1"})
        assert r.status_code == 202, r.text
        assert r.json()["strategy"] == "originate"
        alice_phone.wait_incoming(timeout=10)
        with pytest.raises(Exception, match="CALL_INCOMING"):
            bob_phone.wait_incoming(timeout=0.5)
        alice_phone.answer()
        bob_phone.wait_incoming(timeout=10)
        bob_phone.answer()
        alice_phone.wait_established(timeout=5)
        bob_phone.hangup()
        alice_phone.wait_closed(timeout=5)

        # Logout on node A refuses the token on node B at once.
        assert alice_on_b.get("/api/v1/me").status_code == 200
        assert alice_on_a.post("/api/v1/auth/logout").status_code == 204
        assert _until(lambda: alice_on_b.get("/api/v1/me").status_code == 401, 1.0), "the logout reached node B"
        assert alice_on_b.get("/api/v1/me").json()["details"]["reason"] == "revoked"
    finally:
        node_a.stop()
        node_b.stop()
