"""Company directory and presence through the real HTTP API and event stream, on SQLite and PostgreSQL.

Ringing and busy come from the SIP switch, which has not landed yet: these tests drive them through the
API the switch will call, ``PresenceService.call_state(user_id, state, call_id)``. Device online state and
do-not-disturb go through the real paths (a web phone session's ``hello``, ``PUT /api/v1/me/presence``)."""

from __future__ import annotations

import json
import time
from typing import Any

from cti_fixtures import CtiServer, admin, cti, make_user, next_event, open_events

from support.server import Api

__all__ = ["admin", "cti", "make_user"]


def _presence_of(ws: Any, user_id: int, presence: str) -> dict[str, Any]:
    """The ``presence.changed`` event for ``user_id`` becoming ``presence``, within a second."""
    started = time.monotonic()
    event = next_event(
        ws, "presence.changed", timeout=1.0,
        where=lambda e: e["data"]["user_id"] == user_id and e["data"]["presence"] == presence,
    )
    assert time.monotonic() - started < 1.0
    return event


def test_presence_changes_reach_another_users_event_stream_within_a_second(
    cti: CtiServer, make_user: Any, admin: Api
) -> None:
    alice, alice_api = make_user(extension="4101")
    _, bob_api = make_user()
    phone = admin.add_device(alice["id"], "webphone")
    presence = cti.feature("presence")
    with open_events(cti, bob_api.token) as bob_ws:
        with open_events(cti, alice_api.token) as alice_ws:
            alice_ws.send(json.dumps({"type": "hello", "data": {"device_id": phone["id"]}}))
            _presence_of(bob_ws, alice["id"], "available")
            assert alice_api.put("/api/v1/me/presence", json={"dnd": True}).status_code == 200
            _presence_of(bob_ws, alice["id"], "dnd")
            presence.call_state(alice["id"], "ringing", "call-1")
            _presence_of(bob_ws, alice["id"], "ringing")
            presence.call_state(alice["id"], "busy", "call-1")
            _presence_of(bob_ws, alice["id"], "busy")
            listing = {u["id"]: u for u in bob_api.get("/api/v1/directory").json()}
            assert listing[alice["id"]]["presence"] == "busy"
            presence.call_state(alice["id"], "idle", "call-1")
            _presence_of(bob_ws, alice["id"], "dnd")
            assert alice_api.put("/api/v1/me/presence", json={"dnd": False}).status_code == 200
            _presence_of(bob_ws, alice["id"], "available")
        # Alice's only online device was that session: closing it takes her offline.
        _presence_of(bob_ws, alice["id"], "offline")


def test_two_calls_keep_a_user_busy_until_both_end(cti: CtiServer, make_user: Any, admin: Api) -> None:
    alice, alice_api = make_user()
    _, bob_api = make_user()
    phone = admin.add_device(alice["id"], "webphone")
    presence = cti.feature("presence")
    with open_events(cti, bob_api.token) as bob_ws, open_events(cti, alice_api.token) as alice_ws:
        alice_ws.send(json.dumps({"type": "hello", "data": {"device_id": phone["id"]}}))
        _presence_of(bob_ws, alice["id"], "available")
        presence.call_state(alice["id"], "busy", "a")
        _presence_of(bob_ws, alice["id"], "busy")
        presence.call_state(alice["id"], "ringing", "b")
        presence.call_state(alice["id"], "idle", "a")
        _presence_of(bob_ws, alice["id"], "ringing")
        presence.call_state(alice["id"], "idle", "b")
        _presence_of(bob_ws, alice["id"], "available")
    try:
        presence.call_state(alice["id"], "dancing")
    except Exception as exc:
        assert getattr(exc, "error", None) == "invalid-input"
    else:
        raise AssertionError("an unknown call state was accepted")


def test_directory_lists_everyone_with_devices_and_presence_but_no_secrets(
    cti: CtiServer, make_user: Any, admin: Api
) -> None:
    carol, _ = make_user(extension="4201")
    admin.add_device(carol["id"], "deskphone")
    _, viewer = make_user()
    entries = viewer.get("/api/v1/directory")
    assert entries.status_code == 200
    me = next(u for u in entries.json() if u["id"] == carol["id"])
    assert me == {
        "id": carol["id"],
        "username": carol["username"],
        "display_name": carol["display_name"],
        "extension": "4201",
        "devices": [{"kind": "deskphone", "online": False}],
        "presence": "offline",
    }
    assert "sip" not in entries.text and "password" not in entries.text
    assert Api(cti.url).get("/api/v1/directory").status_code == 401
