"""Two callto nodes on one PostgreSQL database and one Redis agree on what users cannot see but must not
tell apart (real servers): a node started after a logout refuses the token, the same Idempotency-Key on A
then on B gives A's answer (one dial), a webhook is delivered once although both nodes hear the event, and
wrong passwords on A count on B."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dialer.test_click_to_call import PhoneSession
from integrations.receiver import Receiver
from support.cluster import deployment_env
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(150)]


def _until(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_two_nodes_share_logouts_idempotency_keys_webhook_deliveries_and_login_throttles(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    shared = deployment_env(redis_url)
    receiver = Receiver().start()
    node_a = ServerProcess(data_dir=tmp_path / "a", database_url=postgres_url, env_extra=shared).start(timeout=90)
    node_b: ServerProcess | None = None
    session: PhoneSession | None = None
    try:
        admin = Api(node_a.url).login("admin", "admin-secret-1")
        alice = admin.create_user("alice", extension="501", outbound="national")
        phone = admin.add_device(alice["id"], "webphone")
        hook = admin.post("/api/v1/admin/webhooks", json={"url": receiver.url, "events": ["call.ended"]})
        assert hook.status_code == 201, hook.text
        alice_a = Api(node_a.url).login("alice", "password-123")
        gone = Api(node_a.url).login("alice", "password-123")
        assert gone.post("/api/v1/auth/logout").status_code == 204

        # B starts after the logout: it never heard the bus event, and refuses the token all the same.
        node_b = ServerProcess(data_dir=tmp_path / "b", database_url=postgres_url, env_extra=shared).start(timeout=90)
        refused = Api(node_b.url, gone.token).get("/api/v1/me")
        assert refused.status_code == 401 and refused.json()["details"]["reason"] == "revoked", refused.text
        alice_b = Api(node_b.url, alice_a.token)
        assert alice_b.get("/api/v1/me").status_code == 200

        # One Idempotency-Key, on A then on B: A's answer both times, one dial to the web phone (on A).
        session = PhoneSession(node_a, alice_a.token, phone["id"])
        click = {"json": {"to": "502", "device_id": phone["id"]}, "headers": {"Idempotency-Key": "shared-key-1"}}
        first = alice_a.post("/api/v1/calls", **click)
        assert first.status_code == 202, first.text
        again = alice_b.post("/api/v1/calls", **click)
        assert (again.status_code, again.json()) == (202, first.json())
        assert len(session.dials) == 1

        # Its call.ended reaches both nodes (over Redis); the webhook gets it once.
        assert alice_a.delete(f"/api/v1/calls/{first.json()['call_id']}").status_code == 200
        assert _until(lambda: receiver.requests, 10), "the webhook got call.ended"
        time.sleep(1.0)  # the other node would have delivered its copy by now
        assert [r.json["type"] for r in receiver.requests] == ["call.ended"]

        # 5 wrong passwords on A: the next try on B is throttled at once.
        for _ in range(5):
            assert Api(node_a.url).post("/api/v1/auth/login", json={"username": "alice", "password": "nope"}
                                        ).status_code == 401
        for _ in range(5):
            r = Api(node_b.url).post("/api/v1/auth/login", json={"username": "alice", "password": "nope"})
            assert r.status_code == 429 and r.json()["error"] == "too-many-attempts", r.text
    finally:
        if session is not None:
            session.close()
        for node in (node_a, node_b):
            if node is not None:
                node.stop()
        receiver.stop()
        _forget(redis_url, shared["CALLTO_REDIS_PREFIX"])


def _forget(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()
