"""An answered call is in the history from its answer (``ended_at`` null while it is up) and its end completes
that same row, once: through the write-behind's batches, one record at a time, when the end is handed in
twice (a restarted node or a survivor ending a call whose end had landed) and when the answer's write never
landed (the end writes the row). Real SQLite and PostgreSQL, real HTTP and event stream."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cti_fixtures import CtiServer, admin, cti, make_user, next_event, open_events
from sqlalchemy import insert, select

from callto.directory.models import User
from callto.events.bus import Event, EventBus
from callto.history.models import CallEntry
from callto.history.service import CallRecord, Direction, Disposition, HistoryService
from callto.history.writer import HistoryWriter
from callto.store import migrate
from callto.store.database import Database
from support.server import Api

__all__ = ["admin", "cti", "make_user"]

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
USER = 700


def _answered(call_id: str, user_id: int = USER) -> CallRecord:
    """The record the switch hands in when the call is answered: no end yet."""
    return CallRecord(
        call_id=call_id, user_id=user_id, direction=Direction.outgoing, other_number="0721 555",
        started_at=T0, ended_at=None, disposition=Disposition.answered, answered_at=T0 + timedelta(seconds=4),
        device_id=3,
    )


def _ended(call_id: str, cause: str = "caller-hangup", talk: int = 60, user_id: int = USER) -> CallRecord:
    return CallRecord(
        call_id=call_id, user_id=user_id, direction=Direction.outgoing, other_number="0721 555",
        started_at=T0, ended_at=T0 + timedelta(seconds=4 + talk), disposition=Disposition.answered,
        answered_at=T0 + timedelta(seconds=4), device_id=3, hangup_cause=cause,
    )


def _missed(call_id: str) -> CallRecord:
    return CallRecord(
        call_id=call_id, user_id=USER, direction=Direction.incoming, other_number="333 1234567",
        started_at=T0, ended_at=T0 + timedelta(seconds=20), disposition=Disposition.missed,
    )


class _Service:
    """A history service on a fresh database with its write-behind running on a loop of this test, and the
    events it publishes."""

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url)
        migrate.upgrade(self.db)
        with self.db.session() as s:
            s.execute(insert(User), [{"id": USER, "username": "ans", "display_name": "A N", "role": "user",
                                      "outbound": "any", "password_hash": "x", "dnd": False,
                                      "totp_enabled": False, "token_version": 0}])
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.history = HistoryService(self.db, self.bus)
        self.writer = HistoryWriter(self.history, delay=60.0)  # batches go when the test flushes
        self.history.writer = self.writer

    def rows(self) -> list[CallEntry]:
        with self.db.session() as s:
            return list(s.scalars(select(CallEntry).where(CallEntry.user_id == USER).order_by(CallEntry.id)))

    def run(self, *steps: list[CallRecord]) -> None:
        """Each step's records handed in together and written as one batch."""

        async def scenario() -> None:
            await self.bus.start()
            await self.writer.start()
            for step in steps:
                for record in step:
                    self.history.record_later(record)
                await self.writer.flush()
                await asyncio.sleep(0)  # the events published from the worker thread reach the subscriber
            await self.writer.stop()
            await self.bus.stop()

        asyncio.run(asyncio.wait_for(scenario(), 10))

    def close(self) -> None:
        self.db.dispose()


def test_an_answered_call_is_stored_open_at_its_answer_and_its_end_completes_the_same_row(
    database_url: str,
) -> None:
    svc = _Service(database_url)
    try:
        svc.run([_answered("up-1")])
        [row] = svc.rows()
        assert (row.ended_at, row.duration, row.disposition, row.hangup_cause) == (None, 0, "answered", "")
        assert row.answered_at == T0 + timedelta(seconds=4)
        [new] = svc.events
        assert new.type == "history.new" and new.data["entry"]["ended_at"] is None

        svc.run([_ended("up-1", talk=75)])
        [done] = svc.rows()
        assert done.id == row.id, "the end completes the row of the answer, no second row"
        assert (done.ended_at, done.duration, done.hangup_cause) == (T0 + timedelta(seconds=79), 75, "caller-hangup")
        assert [e.type for e in svc.events] == ["history.new", "history.updated"]
        updated = svc.events[1].data
        assert updated["entry"]["id"] == row.id and updated["entry"]["duration"] == 75
        assert updated["missed_unseen"] == 0
    finally:
        svc.close()


def test_an_end_handed_in_again_by_recovery_changes_nothing_and_tells_nobody(database_url: str) -> None:
    svc = _Service(database_url)
    try:
        svc.run([_answered("rec-1")], [_ended("rec-1", cause="callee-hangup")])
        # a restarted node (or a survivor) ending the call again: its end had landed, so it stays as it was
        svc.run([_ended("rec-1", cause="server-restart", talk=300)])
        svc.history.record_call(_ended("rec-1", cause="node-died", talk=400))  # one at a time, the same
        [row] = svc.rows()
        assert (row.hangup_cause, row.duration) == ("callee-hangup", 60)
        assert [e.type for e in svc.events] == ["history.new", "history.updated"]
    finally:
        svc.close()


def test_recovery_completes_an_open_row_once_and_writes_the_row_whose_answer_never_landed(
    database_url: str,
) -> None:
    svc = _Service(database_url)
    try:
        svc.run([_answered("left-over")])  # the node died with this call up
        # on restart: the left-over call's end, and one whose answer-time write was lost with the process
        svc.run([_ended("left-over", cause="server-restart"), _ended("never-landed", cause="server-restart")])
        rows = {r.call_id: r for r in svc.rows()}
        assert set(rows) == {"left-over", "never-landed"}
        assert all(r.ended_at is not None and r.hangup_cause == "server-restart" for r in rows.values())
        kinds = {(e.type, e.data["entry"]["call_id"]) for e in svc.events}
        assert kinds == {("history.new", "left-over"), ("history.updated", "left-over"),
                         ("history.new", "never-landed")}
    finally:
        svc.close()


def test_answer_and_end_in_one_batch_write_one_complete_row_told_once_beside_other_calls(
    database_url: str,
) -> None:
    svc = _Service(database_url)
    try:
        svc.run([_answered("open-a")])
        svc.run([
            _missed("m-1"),
            _answered("short"),
            _ended("open-a", talk=10),
            _ended("short", talk=2),  # answered and ended within one write-behind delay
            _answered("open-b"),
            _missed("m-1"),  # a repeated record
        ])
        rows = {r.call_id: r for r in svc.rows()}
        assert sorted(rows) == ["m-1", "open-a", "open-b", "short"]
        assert rows["short"].duration == 2 and rows["open-a"].duration == 10 and rows["open-b"].ended_at is None
        told = [(e.type, e.data["entry"]["call_id"], e.data["missed_unseen"]) for e in svc.events[1:]]
        assert sorted(told) == sorted([
            ("history.new", "m-1", 1), ("history.updated", "open-a", 1), ("history.new", "short", 1),
            ("history.new", "open-b", 1),
        ])
        [short] = [e for e in svc.events if e.data["entry"]["call_id"] == "short"]
        assert short.data["entry"]["ended_at"] is not None
    finally:
        svc.close()


def test_one_at_a_time_the_end_completes_the_open_row(database_url: str) -> None:
    svc = _Service(database_url)
    try:
        opened = svc.history.record_call(_answered("single"))
        assert opened["ended_at"] is None
        done = svc.history.record_call(_ended("single", talk=30))
        assert done["id"] == opened["id"] and done["duration"] == 30
        [row] = svc.rows()
        assert row.ended_at is not None
    finally:
        svc.close()


def _items(api: Api, where: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = api.get("/api/v1/history", params={"limit": 50}).json()["items"]
        if where(items):
            return items
        time.sleep(0.05)
    raise AssertionError(f"not as expected within {timeout} s: {items}")


def test_a_call_that_is_up_is_listed_with_no_end_then_once_complete(
    cti: CtiServer, make_user: Any, admin: Api
) -> None:
    user, api = make_user()
    history = cti.feature("history")
    with open_events(cti, api.token) as ws:
        history.record_later(_answered("http-up", user_id=user["id"]))
        new = next_event(ws, "history.new")["data"]["entry"]
        [up] = _items(api, lambda items: len(items) == 1)
        assert (up["ended_at"], up["duration"], up["disposition"]) == (None, 0, "answered")
        assert new["id"] == up["id"] and new["ended_at"] is None
        # everyone's history and its export show it too
        mine = admin.get("/api/v1/admin/history", params={"user_id": user["id"]}).json()["items"]
        assert [i["ended_at"] for i in mine] == [None]
        csv_rows = admin.get("/api/v1/admin/history/export", params={"user_id": user["id"]}).text.splitlines()
        assert len(csv_rows) == 2 and ",answered," in csv_rows[1]

        history.record_later(_ended("http-up", talk=42, user_id=user["id"]))
        updated = next_event(ws, "history.updated")["data"]["entry"]
        [done] = _items(api, lambda items: items[0]["ended_at"] is not None)
    assert done["id"] == up["id"] == updated["id"] and done["duration"] == 42 == updated["duration"]


def test_a_webhook_hears_the_answered_call_enter_the_history_then_its_end(
    cti: CtiServer, make_user: Any, admin: Api
) -> None:
    from integrations.receiver import Receiver

    user, _api = make_user()
    receiver = Receiver().start()
    created = admin.post("/api/v1/admin/webhooks", json={"url": receiver.url,
                                                         "events": ["history.new", "history.updated"]})
    assert created.status_code == 201, created.text
    try:
        history = cti.feature("history")
        history.record_later(_answered("hook-up", user_id=user["id"]))
        new = receiver.wait_for("history.new", timeout=10)
        history.record_later(_ended("hook-up", talk=12, user_id=user["id"]))
        updated = receiver.wait_for("history.updated", timeout=10)
        first, last = new.json["data"]["entry"], updated.json["data"]["entry"]
        assert (first["call_id"], first["ended_at"]) == ("hook-up", None)
        assert last["id"] == first["id"] and last["duration"] == 12 and last["ended_at"] is not None
        assert [r.json["type"] for r in receiver.requests] == ["history.new", "history.updated"]
    finally:
        assert admin.delete(f"/api/v1/admin/webhooks/{created.json()['webhook']['id']}").status_code == 204
        receiver.stop()
