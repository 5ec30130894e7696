"""Call history through the real HTTP API and event stream, on SQLite and PostgreSQL.

The SIP switch has not landed yet: calls are recorded through the service API it will call,
``HistoryService.record_call(CallRecord(...))``, exactly as the switch will when a call ends."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from cti_fixtures import CtiServer, admin, cti, make_user, next_event, open_events

from callto.history.service import CallRecord, Direction, Disposition
from support.server import Api

__all__ = ["admin", "cti", "make_user"]

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _call(
    user_id: int,
    number: str,
    direction: Direction = Direction.incoming,
    disposition: Disposition = Disposition.answered,
    start: datetime = T0,
    talk: int = 30,
    **extra: Any,
) -> CallRecord:
    answered = start + timedelta(seconds=5) if disposition == Disposition.answered else None
    ended = (answered or start) + timedelta(seconds=talk if answered else 20)
    return CallRecord(
        call_id=secrets.token_hex(8),
        user_id=user_id,
        direction=direction,
        other_number=number,
        started_at=start,
        answered_at=answered,
        ended_at=ended,
        disposition=disposition,
        hangup_cause=extra.pop("hangup_cause", "normal"),
        **extra,
    )


def test_a_finished_call_reaches_the_history_with_the_contact_name_and_an_event(
    cti: CtiServer, make_user: Any, admin: Api
) -> None:
    user, api = make_user()
    device = admin.add_device(user["id"], "webphone")["id"]
    contact = {"name": "Carla Neri", "numbers": [{"type": "mobile", "number": "+39 347 111 2222"}]}
    assert api.post("/api/v1/phonebook", json=contact).status_code == 201
    history = cti.feature("history")
    with open_events(cti, api.token) as ws:
        entry = history.record_call(_call(user["id"], "3471112222", talk=42, device_id=device, hangup_cause="BYE"))
        event = next_event(ws, "history.new")
    assert event["data"]["entry"]["id"] == entry["id"] and event["data"]["missed_unseen"] == 0
    items = api.get("/api/v1/history").json()["items"]
    assert len(items) == 1
    got = items[0]
    assert (got["number"], got["name"], got["direction"], got["disposition"]) == (
        "3471112222", "Carla Neri", "incoming", "answered"
    )
    assert got["duration"] == 42 and got["hangup_cause"] == "BYE" and got["missed"] is False
    assert got["device_id"] == device
    assert datetime.fromisoformat(got["started_at"]) == T0


def test_missed_calls_are_counted_until_seen(cti: CtiServer, make_user: Any) -> None:
    user, api = make_user()
    history = cti.feature("history")
    with open_events(cti, api.token) as ws:
        history.record_call(_call(user["id"], "0721 1", disposition=Disposition.missed))
        assert next_event(ws, "history.new")["data"]["missed_unseen"] == 1
        history.record_call(_call(user["id"], "0721 2", disposition=Disposition.busy, start=T0 + timedelta(minutes=1)))
        assert next_event(ws, "history.new")["data"]["missed_unseen"] == 2
        # An outgoing call nobody answered is not a missed call.
        history.record_call(
            _call(user["id"], "0721 3", direction=Direction.outgoing, disposition=Disposition.cancelled)
        )
        assert next_event(ws, "history.new")["data"]["missed_unseen"] == 2
        assert api.get("/api/v1/history/missed").json() == {"missed_unseen": 2}
        assert api.post("/api/v1/history/seen").json() == {"missed_unseen": 0}
        assert next_event(ws, "history.seen")["data"] == {"missed_unseen": 0}
    page = api.get("/api/v1/history", params={"missed": "true"}).json()
    assert page["missed_unseen"] == 0 and len(page["items"]) == 2 and all(i["seen"] for i in page["items"])


def test_history_filters_and_pages_without_gaps(cti: CtiServer, make_user: Any) -> None:
    user, api = make_user()
    history = cti.feature("history")
    kinds = [Direction.incoming, Direction.outgoing, Direction.click_to_call]
    for i in range(9):
        disposition = Disposition.missed if i % 4 == 0 else Disposition.answered
        direction = Direction.incoming if disposition == Disposition.missed else kinds[i % 3]
        history.record_call(_call(user["id"], f"0541 {i}00", direction, disposition, start=T0 + timedelta(hours=i)))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/history", params=params).json()
        seen += [i["number"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"0541 {i}00" for i in reversed(range(9))]
    clicks = api.get("/api/v1/history", params={"direction": "click-to-call"}).json()["items"]
    assert clicks and all(i["direction"] == "click-to-call" for i in clicks)
    missed = api.get("/api/v1/history", params={"missed": "true"}).json()["items"]
    assert [i["number"] for i in missed] == ["0541 800", "0541 400", "0541 000"]
    window = {"since": (T0 + timedelta(hours=2)).isoformat(), "until": (T0 + timedelta(hours=5)).isoformat()}
    assert [i["number"] for i in api.get("/api/v1/history", params=window).json()["items"]] == [
        "0541 400", "0541 300", "0541 200"
    ]
    bad = api.get("/api/v1/history", params={"since": window["until"], "until": window["since"]})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid-query"
    assert api.get("/api/v1/history", params={"cursor": "garbage"}).json()["error"] == "invalid-query"
    assert api.get("/api/v1/history", params={"direction": "sideways"}).status_code == 422
    assert api.get("/api/v1/history", params={"since": "'; DROP TABLE history_calls;--"}).status_code == 422
    assert len(api.get("/api/v1/history", params={"limit": 50}).json()["items"]) == 9


def test_users_see_only_their_own_calls_and_admins_see_and_export_everyones(
    cti: CtiServer, make_user: Any, admin: Api
) -> None:
    alice, alice_api = make_user()
    bob, bob_api = make_user()
    history = cti.feature("history")
    history.record_call(_call(alice["id"], "+39 02 111", other_name="=cmd|' /C calc'!A0"))
    history.record_call(_call(bob["id"], "+39 02 222", Direction.outgoing))
    assert [i["number"] for i in alice_api.get("/api/v1/history").json()["items"]] == ["+39 02 111"]
    assert [i["number"] for i in bob_api.get("/api/v1/history").json()["items"]] == ["+39 02 222"]
    assert alice_api.get("/api/v1/admin/history").status_code == 403
    assert alice_api.get("/api/v1/admin/history/export").status_code == 403
    both = admin.get("/api/v1/admin/history", params={"limit": 200}).json()["items"]
    assert {alice["id"], bob["id"]} <= {i["user_id"] for i in both}
    only_bob = admin.get("/api/v1/admin/history", params={"user_id": bob["id"]}).json()["items"]
    assert [i["number"] for i in only_bob] == ["+39 02 222"]
    export = admin.get("/api/v1/admin/history/export", params={"user_id": alice["id"]})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["number"], r["direction"], r["duration"]) for r in rows] == [("+39 02 111", "incoming", "30")]
    assert rows[0]["name"] == "'=cmd|' /C calc'!A0", "a formula-looking name is exported as text"


def test_the_same_call_recorded_twice_is_kept_once_and_impossible_records_are_refused(
    cti: CtiServer, make_user: Any
) -> None:
    user, api = make_user()
    history = cti.feature("history")
    record = _call(user["id"], "0721 555")
    first = history.record_call(record)
    assert history.record_call(record)["id"] == first["id"]
    assert len(api.get("/api/v1/history").json()["items"]) == 1
    backwards = CallRecord(
        call_id="x1", user_id=user["id"], direction=Direction.incoming, other_number="1",
        started_at=T0, ended_at=T0 - timedelta(seconds=1), disposition=Disposition.missed,
    )
    answered_without_answer = CallRecord(
        call_id="x2", user_id=user["id"], direction=Direction.incoming, other_number="1",
        started_at=T0, ended_at=T0, disposition=Disposition.answered,
    )
    for bad in (backwards, answered_without_answer):
        try:
            history.record_call(bad)
        except Exception as exc:
            assert getattr(exc, "error", None) == "invalid-call-record", exc
        else:
            raise AssertionError("an impossible call record was accepted")
