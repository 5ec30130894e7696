"""Two callto nodes on one PostgreSQL database and one Redis, with a web phone whose event session is on
node A (a plain WebSocket client): node B shows it online, a click sent to B delivers its ``dial`` to the
session on A, the call is seen and hung up from either node, and closing the session shows the phone
offline on B, where a click then gets the same ``device-offline`` as on A (real servers)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dialer.test_click_to_call import PhoneSession
from support.cluster import deployment_env
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


def _until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def _webphone(api: Api, device_id: int) -> dict[str, Any] | None:
    return next((d for d in api.get("/api/v1/me").json()["devices"] if d["id"] == device_id), None)


def _online(api: Api, device_id: int) -> bool:
    device = _webphone(api, device_id)
    return bool(device and device["online"])


def _presence(api: Api, user_id: int) -> str:
    return str(next(u for u in api.get("/api/v1/directory").json() if u["id"] == user_id)["presence"])


def test_a_web_phone_session_on_one_node_is_online_and_gets_clicks_sent_to_the_other(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    shared = deployment_env(redis_url)
    node_a = ServerProcess(data_dir=tmp_path / "a", database_url=postgres_url, env_extra=shared).start(timeout=90)
    node_b = ServerProcess(data_dir=tmp_path / "b", database_url=postgres_url, env_extra=shared).start(timeout=90)
    phone: PhoneSession | None = None
    try:
        admin = Api(node_a.url).login("admin", "admin-secret-1")
        alice = admin.create_user("alice", extension="501", outbound="national")
        webphone = admin.add_device(alice["id"], "webphone")
        on_a = Api(node_a.url).login("alice", "password-123")
        on_b = Api(node_b.url, on_a.token)
        assert _until(lambda: _webphone(on_b, webphone["id"]) is not None, 10), "B reads the new device"
        assert not _online(on_b, webphone["id"])

        phone = PhoneSession(node_a, on_a.token, webphone["id"])
        assert _until(lambda: _online(on_b, webphone["id"]), 5), "B sees the web phone held by A online"
        assert _until(lambda: _presence(on_b, alice["id"]) == "available", 5), "and so does B's directory"

        # A click sent to node B: the dial reaches the session on node A, and B answers 202.
        r = on_b.post("/api/v1/calls", json={"to": "502", "device_id": webphone["id"]})
        assert r.status_code == 202, r.text
        call = r.json()
        assert call["strategy"] == "session"
        assert [d["call_id"] for d in phone.dials] == [call["call_id"]]

        # The call is seen from the node that did not place it, and hung up from there.
        # (its record is written just after B answered: a GET racing it could come a moment early)
        assert _until(lambda: on_a.get(f"/api/v1/calls/{call['call_id']}").json() == call, 2), "A shows B's call"
        assert on_a.get("/api/v1/calls/c2c-0000000000000000").json()["error"] == "call-not-found"
        ended = on_a.delete(f"/api/v1/calls/{call['call_id']}")
        assert ended.status_code == 200, ended.text
        assert ended.json()["state"] == "ended"
        assert [d["call_id"] for d in phone.hangups] == [call["call_id"]]
        assert on_b.get(f"/api/v1/calls/{call['call_id']}").json()["state"] == "ended"

        # Closing the session: offline on B, and a click there is device-offline, as on A.
        phone.close()
        phone = None
        assert _until(lambda: not _online(on_b, webphone["id"]), 5), "B sees the web phone go offline"
        answers = [api.post("/api/v1/calls", json={"to": "502", "device_id": webphone["id"]}) for api in (on_a, on_b)]
        assert [a.status_code for a in answers] == [409, 409], [a.text for a in answers]
        assert {a.json()["error"] for a in answers} == {"device-offline"}
        assert _presence(on_b, alice["id"]) == "offline"
    finally:
        if phone is not None:
            phone.close()
        node_a.stop()
        node_b.stop()
