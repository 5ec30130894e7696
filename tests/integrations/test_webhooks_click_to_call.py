"""Webhooks on real calls to real phones (baresip): the receiver gets signed ``call.ringing``,
``call.answered`` and ``call.ended`` of a click-to-call with the call's data and no secrets, an endpoint
that hangs does not delay the next call's INVITE to the desk phone (measured, printed), and a missed call
becomes ``history.new`` and ``call.missed``."""

from __future__ import annotations

import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from e2e.test_click_to_call_desk_phone import register_phone
from integrations.receiver import Receiver, verify
from support.baresip import Baresip
from support.fixtures import BaresipFactory
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]
CALL_EVENTS = ["call.ringing", "call.answered", "call.ended"]


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("whc")
    proc = ServerProcess(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'c.db'}").start()
    yield proc
    proc.stop()


def _click_to_invite(api: Api, desk: Baresip, to: str) -> tuple[str, float]:
    """Click, and the seconds until the desk phone reports the INVITE; then hang the call up."""
    started = time.monotonic()
    r = api.post("/api/v1/calls", json={"to": to})
    assert r.status_code == 202, r.text
    desk.wait_incoming(timeout=5)
    elapsed = time.monotonic() - started
    call_id = r.json()["call_id"]
    assert api.delete(f"/api/v1/calls/{call_id}").status_code == 200
    desk.wait_closed(timeout=5)
    return call_id, elapsed


def test_click_to_call_reaches_the_webhook_signed_and_a_hanging_one_costs_nothing(
    sqlite_server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    server = sqlite_server
    admin = Api(server.url).login("admin", "admin-secret-1")
    alice = admin.create_user("alice", extension="501", outbound="national")
    bob = admin.create_user("bob", extension="502")
    desk = register_phone(baresip_factory, tone_440, server, admin.add_device(alice["id"], "deskphone"), "alice")
    bobs = register_phone(baresip_factory, tone_1000, server, admin.add_device(bob["id"], "deskphone"), "bob")
    receiver = Receiver().start()
    hanging = Receiver(hang=threading.Event()).start()
    try:
        created = admin.post("/api/v1/admin/webhooks", json={"url": receiver.url, "events": CALL_EVENTS})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        api = Api(server.url).login("alice", "password-123")

        r = api.post("/api/v1/calls", json={"to": "tel:502"})
        assert r.status_code == 202, r.text
        call_id = r.json()["call_id"]
        desk.wait_incoming(timeout=5)
        ringing = receiver.wait_for("call.ringing", call_id=call_id, users=[alice["id"]])
        desk.answer()
        bobs.wait_incoming(timeout=5)
        bobs.answer()
        desk.wait_established(timeout=5)
        answered = receiver.wait_for("call.answered", call_id=call_id, users=[alice["id"]])
        assert api.delete(f"/api/v1/calls/{call_id}").status_code == 200
        bobs.wait_closed(timeout=5)
        ended = receiver.wait_for("call.ended", call_id=call_id, users=[alice["id"]])
        for got in (ringing, answered, ended):
            assert verify(secret, got.headers["x-callto-signature"], got.body), got.headers
            doc = got.json
            assert doc["user_ids"] == [alice["id"]]
            assert doc["data"]["number"]["dialed"] == "502" and doc["data"]["to"] == "tel:502"
            text = got.body.decode()
            assert secret not in text and "password" not in text and api.token not in text
        assert ringing.at <= answered.at <= ended.at
        assert json.loads(ended.body)["data"]["state"] == "ended"
        deliveries = admin.get(f"/api/v1/admin/webhooks/{created.json()['webhook']['id']}/deliveries").json()
        assert {d["event_type"] for d in deliveries if d["status"] == "delivered"} >= set(CALL_EVENTS)

        # an endpoint that never answers (within its 10 s timeout) gets every call event as well; calls are
        # measured in turns with it switched off and on, so the machine's load drifts alike for both
        assert admin.put("/api/v1/admin/webhooks/settings", json={"timeout_seconds": 10}).status_code == 200
        slow = admin.post("/api/v1/admin/webhooks", json={"url": hanging.url, "events": CALL_EVENTS})
        assert slow.status_code == 201, slow.text
        slow_id = slow.json()["webhook"]["id"]
        _click_to_invite(api, desk, "tel:502")
        hanging_deadline = time.monotonic() + 5
        while len(hanging.requests) < 2 and time.monotonic() < hanging_deadline:
            time.sleep(0.05)
        assert len(hanging.requests) >= 2, "the hanging endpoint is holding deliveries open"
        baseline: list[float] = []
        with_hang: list[float] = []
        for _ in range(4):
            admin.patch(f"/api/v1/admin/webhooks/{slow_id}", json={"enabled": False})
            baseline.append(_click_to_invite(api, desk, "tel:502")[1])
            admin.patch(f"/api/v1/admin/webhooks/{slow_id}", json={"enabled": True})
            last, took = _click_to_invite(api, desk, "tel:502")
            with_hang.append(took)
        pending = len(hanging.requests)
        print(f"click to INVITE at the desk phone: median {statistics.median(baseline) * 1000:.0f} ms "
              f"with the hanging webhook off, {statistics.median(with_hang) * 1000:.0f} ms with it on "
              f"({pending} deliveries held open); all: {[round(x * 1000) for x in baseline]} / "
              f"{[round(x * 1000) for x in with_hang]} ms")
        assert pending >= 4
        # the hanging endpoint holds its own share of requests, not every one: the good receiver got this
        # round's events while it hung
        receiver.wait_for("call.ended", call_id=last)
        assert statistics.median(with_hang) < statistics.median(baseline) + 0.25, (baseline, with_hang)
    finally:
        hanging.stop()
        receiver.stop()


def test_missed_call_reaches_the_webhook_as_history_and_missed(
    sqlite_server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    server = sqlite_server
    admin = Api(server.url).login("admin", "admin-secret-1")
    callee = admin.create_user("carla", extension="521")
    caller = admin.create_user("dario", extension="522")
    mine = register_phone(baresip_factory, tone_440, server, admin.add_device(callee["id"], "deskphone"), "carla")
    theirs = register_phone(baresip_factory, tone_440, server, admin.add_device(caller["id"], "deskphone"),
                            "dario")
    receiver = Receiver().start()
    try:
        created = admin.post("/api/v1/admin/webhooks", json={"url": receiver.url,
                                                             "events": ["history.new", "call.missed"]})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        # Nobody has the web CTI open: with a webhook registered, the events are built all the same.
        theirs.dial(f"sip:521@{server.env()['CALLTO_SIP_DOMAIN']}")
        mine.wait_incoming(timeout=10)
        theirs.hangup()
        mine.wait_closed(timeout=10)
        missed = receiver.wait_for("call.missed", timeout=15)
        assert verify(secret, missed.headers["x-callto-signature"], missed.body)
        entry = missed.json["data"]["entry"]
        assert entry["missed"] is True and entry["user_id"] == callee["id"] and "522" in entry["number"]
        history = [r.json for r in receiver.requests if r.json["type"] == "history.new"]
        assert any(h["data"]["entry"]["call_id"] == entry["call_id"] for h in history), history
    finally:
        receiver.stop()
