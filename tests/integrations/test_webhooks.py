"""Webhooks against a real server and a real HTTP receiver on loopback: deliveries are signed, logged,
retried while the receiver is down, never follow a redirect, and admins alone manage them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integrations.receiver import Receiver, verify
from support.ports import free_port
from support.server import Api, ServerProcess, admin_client

# generous: the first test also waits for the module's server to start, slow on a loaded machine
pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # webhooks are installation-wide: one server for this module alone (SQLite; the tables are the same
    # code on PostgreSQL, covered by the token tests)
    tmp = tmp_path_factory.mktemp("wh")
    proc = ServerProcess(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'c.db'}").start()
    yield proc
    proc.stop()


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[Api]:
    with admin_client(server.url) as api:
        yield api


def _hook(admin: Api, url: str, events: list[str] | None = None) -> dict[str, Any]:
    r = admin.post("/api/v1/admin/webhooks", json={"url": url, "events": events or ["call.ended"]})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _deliveries(admin: Api, hook_id: int) -> list[dict[str, Any]]:
    r = admin.get(f"/api/v1/admin/webhooks/{hook_id}/deliveries")
    assert r.status_code == 200, r.text
    return list(r.json())


def test_test_event_is_signed_and_logged(admin: Api) -> None:
    receiver = Receiver().start()
    try:
        created = _hook(admin, receiver.url)
        hook, secret = created["webhook"], created["secret"]
        assert admin.get(f"/api/v1/admin/webhooks/{hook['id']}").json().get("secret") is None
        r = admin.post(f"/api/v1/admin/webhooks/{hook['id']}/test")
        assert r.status_code == 200 and r.json()["status"] == "delivered", r.text
        got = receiver.wait_for("webhook.test")
        assert verify(secret, got.headers["x-callto-signature"], got.body)
        assert not verify("whsec_wrong", got.headers["x-callto-signature"], got.body)
        assert not verify(secret, got.headers["x-callto-signature"], got.body + b" ")
        assert got.headers["x-callto-event"] == "webhook.test"
        assert got.headers["x-callto-delivery"] == got.json["id"]
        assert secret not in got.body.decode()
        log = _deliveries(admin, hook["id"])
        assert log[0]["status"] == "delivered" and log[0]["attempts"] == 1 and log[0]["response_status"] == 200
        assert log[0]["latency_ms"] is not None and log[0]["latency_ms"] >= 0
    finally:
        receiver.stop()


def test_receiver_that_is_down_gets_retries_until_it_answers(admin: Api) -> None:
    assert admin.put("/api/v1/admin/webhooks/settings", json={
        "timeout_seconds": 2, "retry_for_seconds": 20, "first_retry_seconds": 0.5}).status_code == 200
    port = free_port()
    receiver = Receiver(port=port)
    hook = _hook(admin, receiver.url)["webhook"]
    try:
        first = admin.post(f"/api/v1/admin/webhooks/{hook['id']}/test").json()
        assert first["status"] == "retrying" and first["response_status"] is None, first
        time.sleep(1.0)  # at least one more attempt fails while nothing listens
        receiver.start()
        receiver.wait_for("webhook.test", timeout=15)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = _deliveries(admin, hook["id"])
            if log and log[0]["status"] == "delivered":
                break
            time.sleep(0.2)
        assert log[0]["status"] == "delivered" and log[0]["attempts"] >= 3, log[0]
        print(f"delivered after {log[0]['attempts']} attempts")
        # every attempt carried the same delivery id (a receiver can de-duplicate)
        assert {r.json["id"] for r in receiver.requests} == {first["delivery_id"]}
    finally:
        receiver.stop()
        admin.put("/api/v1/admin/webhooks/settings", json={})


def test_redirects_are_not_followed(admin: Api) -> None:
    target = Receiver().start()
    redirecting = Receiver(status=307, location=target.url).start()
    try:
        assert admin.put("/api/v1/admin/webhooks/settings", json={"retry_for_seconds": 0}).status_code == 200
        hook = _hook(admin, redirecting.url)["webhook"]
        result = admin.post(f"/api/v1/admin/webhooks/{hook['id']}/test").json()
        assert result["status"] == "failed" and result["response_status"] == 307, result
        assert "not followed" in result["error"]
        time.sleep(0.5)
        assert target.requests == [] and len(redirecting.requests) == 1
    finally:
        admin.put("/api/v1/admin/webhooks/settings", json={})
        target.stop()
        redirecting.stop()


def test_webhooks_are_for_admins_with_clear_errors(admin: Api, server: ServerProcess, tmp_path: Path) -> None:
    user = admin.create_user()
    api = Api(server.url).login(user["username"], "password-123")
    assert api.get("/api/v1/admin/webhooks").status_code == 403
    bad = admin.post("/api/v1/admin/webhooks", json={"url": "ftp://example.org/x", "events": ["call.ended"]})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid-webhook", bad.text
    creds = admin.post("/api/v1/admin/webhooks", json={"url": "http://u:p@127.0.0.1:9/x", "events": ["call.ended"]})
    assert creds.status_code == 422, creds.text
    unknown = admin.post("/api/v1/admin/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["call.nope"]})
    assert unknown.status_code == 422 and unknown.json()["error"] == "invalid-input", unknown.text
    assert admin.get("/api/v1/admin/webhooks/999999/deliveries").json()["error"] == "webhook-not-found"
