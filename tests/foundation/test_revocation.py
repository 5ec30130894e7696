"""Revocation reaches open event sessions: logout, password reset, role change, device removal and user
deletion close the WebSockets they concern within a second, on a live server; the others stay open."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from support.server import Api, ServerProcess

DEADLINE = 1.0  # seconds from the HTTP answer to the socket being closed


@contextlib.contextmanager
def _open(server: ServerProcess, token: str) -> Iterator[ClientConnection]:
    with connect(f"{server.ws_url}/api/v1/events?token={token}", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "session.ready"
        yield ws


def _closed_within(ws: ClientConnection, seconds: float) -> tuple[int, dict[str, Any], float]:
    """(close code, the session.closed farewell, seconds it took); fails if the socket stays open."""
    start = time.monotonic()
    farewell: dict[str, Any] = {}
    try:
        while True:
            left = seconds - (time.monotonic() - start)
            if left <= 0:
                raise AssertionError(f"the session was still open after {seconds} s")
            message = json.loads(ws.recv(timeout=left))
            if message["type"] == "session.closed":
                farewell = message["data"]
    except ConnectionClosed:
        assert ws.close_code is not None
        return ws.close_code, farewell, time.monotonic() - start
    except TimeoutError as exc:
        raise AssertionError(f"the session was still open after {seconds} s") from exc


def _still_open(ws: ClientConnection) -> None:
    ws.send(json.dumps({"type": "ping"}))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if json.loads(ws.recv(timeout=5))["type"] == "pong":
            return
    raise AssertionError("no pong")


def _user(admin_api: Api, anon_api: Api) -> tuple[dict[str, Any], Api, Api]:
    user = admin_api.create_user()
    return user, anon_api.login(user["username"], "password-123"), anon_api.login(user["username"], "password-123")


def test_logout_closes_the_sessions_of_that_token_only(
    shared_server: ServerProcess, admin_api: Api, anon_api: Api
) -> None:
    _, laptop, phone = _user(admin_api, anon_api)
    with _open(shared_server, str(laptop.token)) as a, _open(shared_server, str(phone.token)) as b:
        assert laptop.post("/api/v1/auth/logout").status_code == 204
        code, farewell, took = _closed_within(a, DEADLINE)
        assert code == 4401 and farewell["details"]["reason"] == "revoked", (code, farewell)
        _still_open(b)  # the same user's other login is not logged out
    print(f"logout closed the session in {took * 1000:.0f} ms")


def test_password_reset_and_user_deletion_close_every_session_of_the_user(
    shared_server: ServerProcess, admin_api: Api, anon_api: Api
) -> None:
    user, first, second = _user(admin_api, anon_api)
    bystander, other, _ = _user(admin_api, anon_api)
    with _open(shared_server, str(first.token)) as a, _open(shared_server, str(second.token)) as b, \
            _open(shared_server, str(other.token)) as c:
        assert admin_api.post(f"/api/v1/admin/users/{user['id']}/password").status_code == 200
        for ws in (a, b):
            code, farewell, took = _closed_within(ws, DEADLINE)
            assert code == 4401 and farewell["details"]["reason"] == "password-changed", (code, farewell)
            print(f"password reset closed a session in {took * 1000:.0f} ms")
        _still_open(c)
        assert admin_api.delete(f"/api/v1/admin/users/{bystander['id']}").status_code == 204
        code, farewell, took = _closed_within(c, DEADLINE)
        assert code == 4401 and farewell["error"] == "invalid-token", (code, farewell)
        print(f"deleting the user closed the session in {took * 1000:.0f} ms")


def test_a_role_change_closes_the_session_and_the_client_reconnects_with_the_new_role(
    shared_server: ServerProcess, admin_api: Api, anon_api: Api
) -> None:
    user, api, _ = _user(admin_api, anon_api)
    with _open(shared_server, str(api.token)) as ws:
        assert admin_api.patch(f"/api/v1/admin/users/{user['id']}", json={"role": "admin"}).status_code == 200
        code, farewell, took = _closed_within(ws, DEADLINE)
        assert code == 4409 and farewell["error"] == "role-changed", (code, farewell)
        print(f"a role change closed the session in {took * 1000:.0f} ms")
    with _open(shared_server, str(api.token)) as again:
        _still_open(again)  # the token is still good: only the session's rights were stale


def test_removing_a_device_closes_the_session_speaking_for_it(
    shared_server: ServerProcess, admin_api: Api, anon_api: Api
) -> None:
    user, api, _ = _user(admin_api, anon_api)
    device = admin_api.add_device(user["id"], "webphone")
    with _open(shared_server, str(api.token)) as phone, _open(shared_server, str(api.token)) as plain:
        phone.send(json.dumps({"type": "hello", "data": {"device_id": device["id"]}}))
        while json.loads(phone.recv(timeout=5))["type"] != "hello.ok":
            pass
        assert admin_api.delete(f"/api/v1/admin/devices/{device['id']}").status_code == 204
        code, farewell, took = _closed_within(phone, DEADLINE)
        assert code == 4409 and farewell["error"] == "device-removed", (code, farewell)
        print(f"removing the device closed its session in {took * 1000:.0f} ms")
        _still_open(plain)
