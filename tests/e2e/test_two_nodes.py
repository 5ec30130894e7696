"""Two callto nodes on one PostgreSQL database and one Redis, behind Debian's Kamailio with the shipped edge
configuration: phones registered through the edge on different nodes call each other with audio both ways,
a click sent to the other node rings the phone first, both nodes agree on which devices are online, and a
logout on one node refuses the token on the other (real servers, real Kamailio, baresip)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from support.cluster import EventsSession, deployment_env, home_of, phone_via_edge, registered_here
from support.fixtures import BaresipFactory
from support.kamailio import kamailio_missing, start_edge
from support.procs import ProcessGroup
from support.server import Api, ServerProcess
from support.tone import describe, has_tone

pytestmark = [
    pytest.mark.sip,
    pytest.mark.postgres,
    pytest.mark.timeout(180),
    pytest.mark.skipif(kamailio_missing() is not None, reason=str(kamailio_missing())),
]


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
    procs: ProcessGroup,
) -> None:
    shared = deployment_env(redis_url)
    node_a = ServerProcess(data_dir=tmp_path / "a", database_url=postgres_url, env_extra=shared).start(timeout=90)
    node_b = ServerProcess(data_dir=tmp_path / "b", database_url=postgres_url, env_extra=shared).start(timeout=90)
    try:
        admin = Api(node_a.url).login("admin", "admin-secret-1")
        alice = admin.create_user("alice", extension="501", outbound="national")
        bob = admin.create_user("bob", extension="502")
        alice_desk = admin.add_device(alice["id"], "deskphone")
        time.sleep(1.5)  # node B learns of devices made through node A from the database within a second
        nodes = (node_a, node_b)
        edge = start_edge(procs, tmp_path / "edge", [("127.0.0.1", n.sip_port) for n in nodes])
        time.sleep(1.5)  # the edge's first OPTIONS probes find both nodes up

        # The edge picks a node per phone (a hash of its From URI, sticky). The accounts are random, so
        # bob's phone is added until it lands on the other node than alice's: phones on different nodes.
        alice_phone = phone_via_edge(baresip_factory, tone_440, edge, alice_desk, "alice")
        alice_home = home_of(nodes, (0, 0))
        # bob's CTI session on alice's node: it must hear "bob's phone is online" once, from bob's node,
        # not once more from the node that only took the registration in
        bob_session = EventsSession(alice_home.ws_url, Api(alice_home.url).login("bob", "password-123").token)
        for attempt in range(12):
            before = (registered_here(node_a), registered_here(node_b))
            bob_desk = admin.add_device(bob["id"], "deskphone")
            time.sleep(1.2)  # both nodes know the new device's account
            bob_phone = phone_via_edge(baresip_factory, tone_1000, edge, bob_desk, f"bob{attempt or ''}")
            if home_of(nodes, before) is not alice_home:
                break
            bob_phone.stop()
            assert admin.delete(f"/api/v1/admin/devices/{bob_desk['id']}").status_code == 204
        else:
            raise AssertionError("12 phones in a row landed on alice's node")
        node_a, node_b = alice_home, (node_b if alice_home is node_a else node_a)  # A: alice's, B: bob's

        assert _until(lambda: bob_session.of("device.online", device_id=bob_desk["id"]), 5), bob_session.events
        time.sleep(1.0)  # a duplicate from the other node would arrive by now (pushed within ~0.5 s)
        assert len(bob_session.of("device.online", device_id=bob_desk["id"])) == 1, bob_session.events
        bob_session.close()

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
