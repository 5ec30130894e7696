"""Webhooks on a real click-to-call to real phones (baresip): the receiver gets signed ``call.ringing``,
``call.answered`` and ``call.ended`` with the call's data and no secrets, and an endpoint that hangs does
not delay the next call's INVITE to the desk phone (measured, printed)."""

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


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Any:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
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
        ringing = receiver.wait_for("call.ringing", call_id=call_id)
        desk.answer()
        bobs.wait_incoming(timeout=5)
        bobs.answer()
        desk.wait_established(timeout=5)
        answered = receiver.wait_for("call.answered", call_id=call_id)
        assert api.delete(f"/api/v1/calls/{call_id}").status_code == 200
        bobs.wait_closed(timeout=5)
        ended = receiver.wait_for("call.ended", call_id=call_id)
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

        baseline = [_click_to_invite(api, desk, "tel:502")[1] for _ in range(3)]
        # now an endpoint that never answers (within its 10 s timeout) gets every call event as well
        assert admin.put("/api/v1/admin/webhooks/settings", json={"timeout_seconds": 10}).status_code == 200
        slow = admin.post("/api/v1/admin/webhooks", json={"url": hanging.url, "events": CALL_EVENTS})
        assert slow.status_code == 201, slow.text
        _click_to_invite(api, desk, "tel:502")
        hanging_deadline = time.monotonic() + 5
        while len(hanging.requests) < 2 and time.monotonic() < hanging_deadline:
            time.sleep(0.05)
        assert len(hanging.requests) >= 2, "the hanging endpoint is holding deliveries open"
        with_hang = [_click_to_invite(api, desk, "tel:502")[1] for _ in range(3)]
        pending = len(hanging.requests)
        print(f"click to INVITE at the desk phone: median {statistics.median(baseline) * 1000:.0f} ms "
              f"without, {statistics.median(with_hang) * 1000:.0f} ms with a hanging webhook "
              f"({pending} deliveries held open)")
        assert pending >= 4
        assert statistics.median(with_hang) < statistics.median(baseline) + 0.25, (baseline, with_hang)
    finally:
        hanging.stop()
        receiver.stop()
