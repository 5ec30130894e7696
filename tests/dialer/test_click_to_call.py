"""POST /api/v1/calls end to end against a real server: numbers, permissions, devices, sessions, idempotency."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from support.server import Api, ServerProcess


class PhoneSession:
    """A web phone tab as the server sees it: an event session that said hello for its device and acks dials."""

    def __init__(self, server: ServerProcess, token: str, device_id: int, *, ack: bool | None = True,
                 reason: str = "") -> None:
        self._cm = connect(f"{server.ws_url}/api/v1/events?token={token}", open_timeout=5)
        self.ws: ClientConnection = self._cm.__enter__()
        self.dials: list[dict[str, Any]] = []
        self.hangups: list[dict[str, Any]] = []
        self.ack = ack
        self.reason = reason
        self._ready = threading.Event()
        self._stop = False
        self.ws.send(json.dumps({"type": "hello", "data": {"device_id": device_id}}))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._ready.wait(5), "hello was not accepted"

    def _run(self) -> None:
        while not self._stop:
            try:
                message = json.loads(self.ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            except Exception:
                return
            kind, data = message["type"], message.get("data", {})
            if kind == "hello.ok":
                self._ready.set()
            elif kind == "dial":
                self.dials.append(data)
                if self.ack is not None:
                    self.ws.send(json.dumps({"type": "dial.ack", "data": {
                        "command_id": data["command_id"], "ok": self.ack, "reason": self.reason}}))
            elif kind == "hangup":
                self.hangups.append(data)
                self.ws.send(json.dumps({"type": "hangup.ack", "data": {"command_id": data["command_id"], "ok": True}}))

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.ws.close()


def _user(admin: Api, anon: Api, *kinds: str, **fields: Any) -> tuple[dict[str, Any], Api]:
    user = admin.create_user(**fields)
    for kind in kinds:
        admin.add_device(user["id"], kind)
    return admin.get(f"/api/v1/admin/users/{user['id']}").json(), anon.login(user["username"], "password-123")


def _device(user: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(d for d in user["devices"] if d["kind"] == kind)


@pytest.fixture
def web_user(admin_api: Api, anon_api: Api) -> Iterator[tuple[dict[str, Any], Api]]:
    user, api = _user(admin_api, anon_api, "webphone", outbound="national")
    yield user, api
    api.close()


def test_web_phone_session_receives_exactly_one_dial(shared_server: ServerProcess, web_user: Any) -> None:
    user, api = web_user
    web = _device(user, "webphone")
    older = PhoneSession(shared_server, api.token, web["id"])
    time.sleep(0.05)
    newer = PhoneSession(shared_server, api.token, web["id"])
    try:
        r = api.post("/api/v1/calls", json={"to": "tel:+39-0721-405516"})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["strategy"] == "session" and body["device_id"] == web["id"]
        assert body["number"]["e164"] == "+390721405516" and body["number"]["kind"] == "national"
        assert [a["outcome"] for a in body["attempts"]] == ["ok"]
        time.sleep(0.3)
        assert len(newer.dials) + len(older.dials) == 1, "exactly one tab dials"
        assert len(newer.dials) == 1, "the most recently active session gets it"
        assert newer.dials[0]["call_id"] == body["call_id"]
        assert api.get(f"/api/v1/calls/{body['call_id']}").json()["state"] == "dialing"
    finally:
        older.close()
        newer.close()


def test_no_web_phone_session_is_device_offline_fast(web_user: Any) -> None:
    _, api = web_user
    started = time.monotonic()
    r = api.post("/api/v1/calls", json={"to": "0721405516"})
    elapsed = time.monotonic() - started
    assert r.status_code == 409 and r.json()["error"] == "device-offline"
    assert elapsed < 1.0, elapsed
    assert r.json()["details"]["attempts"][0]["outcome"] == "skipped"


def test_web_phone_refusing_the_dial_reports_its_reason(shared_server: ServerProcess, web_user: Any) -> None:
    user, api = web_user
    tab = PhoneSession(shared_server, api.token, _device(user, "webphone")["id"], ack=False,
                       reason="microphone permission denied")
    try:
        r = api.post("/api/v1/calls", json={"to": "201"})
        assert r.status_code == 503 and r.json()["error"] == "call-failed"
        assert "microphone permission denied" in r.json()["message"]
    finally:
        tab.close()


@pytest.mark.parametrize("bad", ["", "hello", "tel:0721@evil.com", "0721\r\nVia: x", "1" * 40, "sip:201@h;x=%0d%0a"])
def test_not_a_number_is_422_and_nothing_is_dialed(shared_server: ServerProcess, web_user: Any, bad: str) -> None:
    user, api = web_user
    tab = PhoneSession(shared_server, api.token, _device(user, "webphone")["id"])
    try:
        r = api.post("/api/v1/calls", json={"to": bad})
        assert r.status_code == 422 and r.json()["error"] == "invalid-number", r.text
        assert r.json()["message"]
        time.sleep(0.2)
        assert tab.dials == []
    finally:
        tab.close()


def test_outbound_class_limits_what_a_user_may_call(
    shared_server: ServerProcess, admin_api: Api, anon_api: Api
) -> None:
    user, api = _user(admin_api, anon_api, "webphone", outbound="internal")
    tab = PhoneSession(shared_server, api.token, _device(user, "webphone")["id"])
    try:
        r = api.post("/api/v1/calls", json={"to": "+39 0721 405516"})
        assert r.status_code == 403 and r.json()["error"] == "number-not-permitted"
        assert api.post("/api/v1/calls", json={"to": "201"}).status_code == 202
        assert api.post("/api/v1/calls", json={"to": "112"}).status_code == 202, "emergency is always allowed"
        assert len(tab.dials) == 2
    finally:
        tab.close()
        api.close()


def test_devices_must_be_the_users_own(admin_api: Api, anon_api: Api, web_user: Any) -> None:
    other, other_api = _user(admin_api, anon_api, "deskphone")
    _, api = web_user
    r = api.post("/api/v1/calls", json={"to": "201", "device_id": _device(other, "deskphone")["id"]})
    assert r.status_code == 403 and r.json()["error"] == "device-not-owned"
    _, bare_api = _user(admin_api, anon_api)
    r = bare_api.post("/api/v1/calls", json={"to": "201"})
    assert r.status_code == 409 and r.json()["error"] == "no-main-device"
    r = bare_api.post("/api/v1/calls", json={"to": "201", "device_id": "mobile"})
    assert r.status_code == 409 and r.json()["error"] == "no-mobile"
    for a in (other_api, bare_api):
        a.close()


def test_same_idempotency_key_places_one_call(shared_server: ServerProcess, web_user: Any) -> None:
    user, api = web_user
    tab = PhoneSession(shared_server, api.token, _device(user, "webphone")["id"])
    try:
        key = str(uuid.uuid4())
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(
                lambda _: api.post("/api/v1/calls", json={"to": "0721405516"}, headers={"Idempotency-Key": key}),
                range(4)))
        assert {r.status_code for r in answers} == {202}
        assert len({r.json()["call_id"] for r in answers}) == 1
        again = api.post("/api/v1/calls", json={"to": "0721405516"}, headers={"Idempotency-Key": key})
        assert again.json()["call_id"] == answers[0].json()["call_id"]
        time.sleep(0.2)
        assert len(tab.dials) == 1
        fresh = api.post("/api/v1/calls", json={"to": "0721405516"}, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert fresh.json()["call_id"] != answers[0].json()["call_id"]
    finally:
        tab.close()


def test_fifty_users_clicking_at_once_each_get_their_own_call(
    shared_server: ServerProcess, admin_api: Api, anon_api: Api
) -> None:
    people = [_user(admin_api, anon_api, "webphone") for _ in range(50)]
    tabs = [PhoneSession(shared_server, api.token, _device(user, "webphone")["id"]) for user, api in people]
    try:
        def click(i: int) -> Any:
            return people[i][1].post("/api/v1/calls", json={"to": f"+39 0721 4055{i:02d}"})

        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(click, range(50)))
        assert [r.status_code for r in answers] == [202] * 50
        time.sleep(0.5)
        for i, tab in enumerate(tabs):
            assert len(tab.dials) == 1
            assert tab.dials[0]["call_id"] == answers[i].json()["call_id"]
            assert tab.dials[0]["number"]["e164"] == f"+3907214055{i:02d}"
    finally:
        for tab in tabs:
            tab.close()
        for _, api in people:
            api.close()


def test_calls_are_private_and_can_be_hung_up(shared_server: ServerProcess, admin_api: Api, anon_api: Api,
                                               web_user: Any) -> None:
    user, api = web_user
    tab = PhoneSession(shared_server, api.token, _device(user, "webphone")["id"])
    _, other_api = _user(admin_api, anon_api)
    try:
        call_id = api.post("/api/v1/calls", json={"to": "201"}).json()["call_id"]
        assert other_api.get(f"/api/v1/calls/{call_id}").status_code == 404
        assert other_api.delete(f"/api/v1/calls/{call_id}").status_code == 404
        r = api.delete(f"/api/v1/calls/{call_id}")
        assert r.status_code == 200 and r.json()["state"] == "ended"
        time.sleep(0.2)
        assert [h["call_id"] for h in tab.hangups] == [call_id]
    finally:
        tab.close()
        other_api.close()


def test_desk_phone_with_no_way_to_reach_it_reports_every_attempt(admin_api: Api, anon_api: Api) -> None:
    _, api = _user(admin_api, anon_api, "deskphone")
    r = api.post("/api/v1/calls", json={"to": "201"})
    assert r.status_code in (202, 503), r.text
    if r.status_code == 503:
        attempts = r.json()["details"]["attempts"]
        assert [a["strategy"] for a in attempts] == ["phone_http", "lan_relay", "originate"]
        assert all(a["reason"] for a in attempts)
    api.close()


def test_diagnostics_list_the_guides_checks(shared_server: ServerProcess, web_user: Any) -> None:
    user, api = web_user
    checks = {c["id"]: c for c in api.get("/api/v1/me/diagnostics").json()["checks"]}
    web = _device(user, "webphone")
    assert checks["session"]["status"] == "warn" and checks["session"]["fix"]
    assert checks[f"device-{web['id']}"]["status"] == "fail"
    tab = PhoneSession(shared_server, api.token, web["id"])
    try:
        checks = {c["id"]: c for c in api.get("/api/v1/me/diagnostics").json()["checks"]}
        assert checks["session"]["status"] == "ok"
        assert checks[f"device-{web['id']}"]["status"] == "ok"
        assert checks["main-device"]["status"] == "ok"
    finally:
        tab.close()


def test_admin_sets_the_dial_plan_with_validation(admin_api: Api, web_user: Any) -> None:
    _, api = web_user
    assert api.get("/api/v1/admin/settings/dialplan").status_code == 403
    plan = admin_api.get("/api/v1/admin/settings/dialplan").json()
    assert plan["country"] == "IT" and plan["effective_international_prefix"] == "00"
    r = admin_api.put("/api/v1/admin/settings/dialplan", json={"extension_pattern": "([0-9"})
    assert r.status_code == 422
    r = admin_api.put("/api/v1/admin/settings/dialplan", json={"country": "IT", "outbound_prefix": "0"})
    assert r.status_code == 200 and r.json()["outbound_prefix"] == "0"
    r = api.post("/api/v1/calls", json={"to": "+39 0721 405516", "device_id": "mobile"})
    assert r.status_code == 409
    admin_api.put("/api/v1/admin/settings/dialplan", json={"country": "IT"})
