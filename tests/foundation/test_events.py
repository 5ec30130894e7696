"""The event stream: per-user delivery, device sessions, bad tokens, reconnects."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from support.server import Api, ServerProcess


def _open(server: ServerProcess, token: str | None = None) -> ClientConnection:
    url = f"{server.ws_url}/api/v1/events" + (f"?token={token}" if token else "")
    return connect(url, open_timeout=5)


def _expect_all(ws: ClientConnection, kinds: set[str], timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """Wait for every kind in ``kinds``, in whatever order they come."""
    got: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while set(got) != kinds:
        message = _next(ws, None, max(0.01, deadline - time.monotonic()))
        if message["type"] in kinds:
            got[message["type"]] = message
    return got


def _next(ws: ClientConnection, kind: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {kind or 'event'} within {timeout} s")
        message = json.loads(ws.recv(timeout=remaining))
        if kind is None or message["type"] == kind:
            return dict(message)
        if message["type"] == "ping":
            continue


def _drain(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    seen = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return seen


@pytest.fixture
def two_users(admin_api: Api, anon_api: Api) -> tuple[tuple[dict[str, Any], Api], tuple[dict[str, Any], Api]]:
    out = []
    for _ in range(2):
        user = admin_api.create_user()
        admin_api.add_device(user["id"], "webphone")
        admin_api.add_device(user["id"], "deskphone")
        fresh = admin_api.get(f"/api/v1/admin/users/{user['id']}").json()
        out.append((fresh, anon_api.login(user["username"], "password-123")))
    return out[0], out[1]


def test_an_event_for_one_user_never_reaches_another(shared_server: ServerProcess, two_users: Any) -> None:
    (alice, alice_api), (bob, bob_api) = two_users
    with _open(shared_server, alice_api.token) as a, _open(shared_server) as b:
        b.send(json.dumps({"type": "auth", "token": bob_api.token}))
        assert _next(a, "session.ready")["data"]["user_id"] == alice["id"]
        assert _next(b, "session.ready")["data"]["user_id"] == bob["id"]
        desk = next(d for d in alice["devices"] if d["kind"] == "deskphone")
        assert alice_api.put("/api/v1/me/main-device", json={"device_id": desk["id"]}).status_code == 200
        event = _next(a, "me.main_device")
        assert event["data"] == {"device_id": desk["id"]} and event["at"]
        leaked = [m for m in _drain(b, 1.0) if m["type"] not in ("ping",)]
        assert not [m for m in leaked if m["type"] == "me.main_device"], leaked


def test_declaring_a_web_phone_session_brings_the_device_online(shared_server: ServerProcess, two_users: Any) -> None:
    (alice, alice_api), (bob, _) = two_users
    web = next(d for d in alice["devices"] if d["kind"] == "webphone")
    bob_web = next(d for d in bob["devices"] if d["kind"] == "webphone")
    with _open(shared_server, alice_api.token) as a:
        _next(a, "session.ready")
        a.send(json.dumps({"type": "hello", "data": {"device_id": bob_web["id"]}}))
        assert _next(a, "error")["data"]["error"] == "device-not-owned"
        a.send(json.dumps({"type": "hello", "data": {"device_id": web["id"]}}))
        got = _expect_all(a, {"hello.ok", "device.online"})
        assert got["hello.ok"]["data"]["device_id"] == got["device.online"]["data"]["device_id"] == web["id"]
        devices = {d["id"]: d for d in alice_api.get("/api/v1/me/devices").json()}
        assert devices[web["id"]]["online"] is True
    deadline = time.monotonic() + 5
    while alice_api.get("/api/v1/me/devices").json()[0]["online"] and time.monotonic() < deadline:
        time.sleep(0.05)
    devices = {d["id"]: d for d in alice_api.get("/api/v1/me/devices").json()}
    assert devices[web["id"]]["online"] is False, "closing the session takes the web phone offline"


def test_bad_tokens_and_garbage_are_refused_clearly(shared_server: ServerProcess, two_users: Any) -> None:
    with _open(shared_server, "nonsense") as ws:
        assert _next(ws, "error")["data"]["error"] == "invalid-token"
    with _open(shared_server) as ws:
        ws.send(json.dumps({"type": "hello"}))
        assert _next(ws, "error")["data"]["error"] == "auth-required"
    (_, alice_api), _ = two_users
    with _open(shared_server, alice_api.token) as ws:
        _next(ws, "session.ready")
        ws.send("{not json")
        assert _next(ws, "error")["data"]["error"] == "bad-message"
        ws.send(json.dumps({"type": "ping"}))
        assert _next(ws, "pong")["type"] == "pong"


def test_a_client_can_reconnect_and_carry_on(shared_server: ServerProcess, two_users: Any) -> None:
    (alice, alice_api), _ = two_users
    desk = next(d for d in alice["devices"] if d["kind"] == "deskphone")
    web = next(d for d in alice["devices"] if d["kind"] == "webphone")
    with _open(shared_server, alice_api.token) as ws:
        first = _next(ws, "session.ready")["data"]["session_id"]
    with _open(shared_server, alice_api.token) as ws:
        assert _next(ws, "session.ready")["data"]["session_id"] != first
        alice_api.put("/api/v1/me/main-device", json={"device_id": desk["id"]})
        assert _next(ws, "me.main_device")["data"]["device_id"] == desk["id"]
        alice_api.put("/api/v1/me/main-device", json={"device_id": web["id"]})
        assert _next(ws, "me.main_device")["data"]["device_id"] == web["id"]
