"""The caller's name in the ``call.*`` events of a call to a user, through the real server and event stream
on SQLite and PostgreSQL: a phonebook contact's name (the user's private card before a shared one), a
colleague's directory name, null for a stranger; every event of the call carries it, in order; a burst of
calls shares a few queries. The switch's side is driven through ``Telephony.on_call_event`` on the server's
loop, exactly as the switch calls it (real calls with names are in tests/link/test_link_screen_pop.py)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
from cti_fixtures import CtiServer, admin, cti, make_user, next_event, open_events
from websockets.sync.client import connect

from support.server import Api

__all__ = ["admin", "cti", "make_user"]

pytestmark = pytest.mark.timeout(60)


def _switch_says(cti: CtiServer, kind: str, **data: Any) -> None:
    """One call event as the switch reports it, on the server's loop."""
    telephony = cti.feature("telephony")
    cti.server_loop().call_soon_threadsafe(telephony.on_call_event, kind, data)


def _inbound(call_id: str, callee: int, number: str) -> dict[str, Any]:
    return {
        "call_id": call_id, "direction": "inbound", "caller_user_id": None, "caller_device_id": None,
        "callee_user_id": str(callee), "from": number, "to": "0721400000",
    }


def test_a_call_from_a_phonebook_contact_carries_the_name_the_called_user_knows(
    cti: CtiServer, admin: Api, make_user: Any
) -> None:
    shared = f"+39 0721 {secrets.randbelow(900000) + 100000}"
    contact = {"name": "Rossi Costruzioni", "shared": True, "numbers": [{"type": "work", "number": shared}]}
    assert admin.post("/api/v1/phonebook", json=contact).status_code == 201
    bob, bob_api = make_user(display_name="Bob Verdi")
    carol, carol_api = make_user()
    # Bob's own card for the same number wins over the shared one, for Bob only
    assert bob_api.post("/api/v1/phonebook", json={
        "name": "Mario Rossi (cantiere)",
        "numbers": [{"type": "mobile", "number": shared.replace(" ", "")}]}).status_code == 201
    # the server warmed the look-up as it started: the first call is named within the events' 0.3 s wait
    # (a fresh server's first query, its worker thread and a new connection, can take longer)
    assert cti.feature("caller_names").warm_seconds is not None
    with open_events(cti, bob_api.token) as bob_ws, open_events(cti, carol_api.token) as carol_ws:
        call = f"in-{secrets.token_hex(4)}"
        # the number as a trunk sends it, in another form than typed
        data = _inbound(call, bob["id"], shared.replace(" ", "").replace("+39", "0039"))
        for kind in ("ringing", "answered", "ended"):
            _switch_says(cti, kind, **data, **({"disposition": "answered"} if kind == "ended" else {}))
        seen = [next_event(bob_ws, f"call.{k}", where=lambda m: m["data"]["call_id"] == call)["data"]
                for k in ("ringing", "answered", "ended")]
        assert [d["caller_name"] for d in seen] == ["Mario Rossi (cantiere)"] * 3
        assert [d["state"] for d in seen] == ["ringing", "answered", "ended"]

        _switch_says(cti, "ringing", **_inbound(f"{call}-c", carol["id"], shared))
        assert next_event(carol_ws, "call.ringing")["data"]["caller_name"] == "Rossi Costruzioni"

        stranger = f"{call}-x"
        _switch_says(cti, "ringing", **_inbound(stranger, bob["id"], "+390299999999"))
        ringing = next_event(bob_ws, "call.ringing", where=lambda m: m["data"]["call_id"] == stranger)["data"]
        assert "caller_name" in ringing and ringing["caller_name"] is None

        # a colleague calling: the directory's name (Bob's phonebook is not asked)
        internal = {**_inbound(f"{call}-i", carol["id"], "601"),
                    "direction": "internal", "caller_user_id": str(bob["id"])}
        _switch_says(cti, "ringing", **internal)
        assert next_event(carol_ws, "call.ringing", where=lambda m: m["data"]["call_id"] == internal["call_id"])[
            "data"]["caller_name"] == "Bob Verdi"


def test_a_burst_of_incoming_calls_shares_a_few_name_queries(cti: CtiServer, admin: Api, make_user: Any) -> None:
    dave, dave_api = make_user()
    names = cti.feature("caller_names")
    before = names.queries
    burst = [f"b-{secrets.token_hex(4)}" for _ in range(30)]
    # every call also sends a card and presence: an unbounded queue, or the client stops reading and its
    # close waits for close_timeout
    with connect(f"{cti.ws_url}/api/v1/events?token={dave_api.token}", open_timeout=5, max_queue=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "session.ready"
        started = time.monotonic()
        for i, call in enumerate(burst):
            _switch_says(cti, "ringing", **_inbound(call, dave["id"], f"+3906{5550000 + i}"))
        got = {next_event(ws, "call.ringing")["data"]["call_id"] for _ in burst}
        elapsed = time.monotonic() - started
    assert got == set(burst)
    assert names.queries - before <= 10, names.queries - before  # 30 calls, one query each without batching
    assert elapsed < 2.0, elapsed
