"""Real calls through the switch show up in the CTI: presence while they ring and last, a customer card
when they start, and an entry in each user's history when they end (missed ones counted)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from e2e.events import EventLog
from e2e.test_click_to_call_desk_phone import register_phone
from support.fixtures import BaresipFactory
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.sip, pytest.mark.timeout(90)]


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Any:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
    yield proc
    proc.stop()


def _history(api: Api, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = api.get("/api/v1/history").json()["items"]
        # an answered call is listed from its answer: wait for its end too
        if len(items) >= count and all(i["ended_at"] is not None for i in items):
            return items
        time.sleep(0.2)
    raise AssertionError(f"expected {count} history entries, got {items}")


def _presence(api: Api, user_id: int) -> str:
    return str(next(u for u in api.get("/api/v1/directory").json() if u["id"] == user_id)["presence"])


def test_an_internal_call_rings_sets_presence_pushes_a_card_and_lands_in_both_histories(
    sqlite_server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    server = sqlite_server
    admin = Api(server.url).login("admin", "admin-secret-1")
    alice = admin.create_user("alice", display_name="Alice Bianchi", extension="601")
    bob = admin.create_user("bob", display_name="Bob Verdi", extension="602")
    admin.create_user("carol", extension="603")
    a_phone = register_phone(baresip_factory, tone_440, server, admin.add_device(alice["id"], "deskphone"), "alice")
    b_phone = register_phone(baresip_factory, tone_1000, server, admin.add_device(bob["id"], "deskphone"), "bob")
    admin.post("/api/v1/phonebook", json={"name": "Alice from Sales", "numbers": [{"type": "work", "number": "601"}]})
    bob_api = Api(server.url).login("bob", "password-123")
    carol_api = Api(server.url).login("carol", "password-123")
    bob_events = EventLog(server.ws_url, bob_api.token or "")
    carol_events = EventLog(server.ws_url, carol_api.token or "")
    try:
        a_phone.dial("sip:602@callto.test")
        b_phone.wait_incoming(timeout=5)
        bob_events.wait("call.ringing")
        card = bob_events.wait("card")["data"]
        assert card["direction"] == "incoming" and "601" in str(card)
        carol_events.wait("presence.changed", user_id=bob["id"], presence="ringing")
        b_phone.answer()
        b_phone.wait_established(timeout=5)
        carol_events.wait("presence.changed", user_id=bob["id"], presence="busy")
        assert _presence(carol_api, bob["id"]) == "busy"
        time.sleep(1.0)
        a_phone.hangup()
        b_phone.wait_closed(timeout=5)
        carol_events.wait("presence.changed", user_id=bob["id"], presence="available")

        [bob_entry] = _history(bob_api)
        assert (bob_entry["direction"], bob_entry["disposition"]) == ("incoming", "answered")
        assert bob_entry["number"] == "601"
        alice_api = Api(server.url).login("alice", "password-123")
        [alice_entry] = _history(alice_api)
        assert (alice_entry["direction"], alice_entry["disposition"]) == ("outgoing", "answered")
        assert alice_entry["number"] == "602" and alice_entry["duration"] >= 1

        # Now Bob does not answer: Alice gives up, and Bob has a missed call to see.
        a_phone.dial("sip:602@callto.test")
        b_phone.wait_incoming(timeout=5)
        time.sleep(0.5)
        a_phone.hangup()
        b_phone.wait_closed(timeout=5)
        entries = _history(bob_api, 2)
        assert entries[0]["disposition"] == "missed" and entries[0]["missed"] is True
        assert bob_api.get("/api/v1/history/missed").json()["missed_unseen"] == 1
        bob_events.wait("history.new")
    finally:
        bob_events.close()
        carol_events.close()
