"""The switch's call records go through the history's write-behind (``record_later``, batched): every
entry lands, with the contact name ``name_for`` would give, the right missed count in each event, a
repeated record kept once, and nothing lost when the server stops (the writer flushes, later records are
written at once), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cti_fixtures import CtiServer, admin, cti, make_user, next_event, open_events
from sqlalchemy import func, insert, select

from callto.directory.models import User
from callto.events.bus import EventBus
from callto.history.models import CallEntry
from callto.history.service import CallRecord, Direction, Disposition, HistoryService
from callto.history.writer import HistoryWriter
from callto.store import migrate
from callto.store.database import Database
from support.server import Api

__all__ = ["admin", "cti", "make_user"]

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _call(user_id: int, number: str, disposition: Disposition, call_id: str | None = None) -> CallRecord:
    answered = T0 + timedelta(seconds=3) if disposition == Disposition.answered else None
    return CallRecord(
        call_id=call_id or secrets.token_hex(8), user_id=user_id, direction=Direction.incoming,
        other_number=number, started_at=T0, ended_at=T0 + timedelta(seconds=20), disposition=disposition,
        answered_at=answered, hangup_cause="caller-hangup",
    )


def _items(api: Api, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = api.get("/api/v1/history", params={"limit": 50}).json()["items"]
        if len(items) >= count:
            return items
        time.sleep(0.05)
    raise AssertionError(f"expected {count} entries, got {items}")


def test_records_handed_in_together_are_stored_named_counted_and_told_once(
    cti: CtiServer, make_user: Any, admin: Api
) -> None:
    alice, alice_api = make_user()
    bob, bob_api = make_user()
    shared = {"name": "Hardware Shop", "numbers": [{"type": "work", "number": "+39 333 123 4567"}], "shared": True}
    assert admin.post("/api/v1/phonebook", json=shared).status_code == 201
    office = {"name": "Office Pesaro", "numbers": [{"type": "work", "number": "0721 555"}], "shared": True}
    assert admin.post("/api/v1/phonebook", json=office).status_code == 201
    mine = {"name": "Mum", "numbers": [{"type": "mobile", "number": "333 1234567"}], "shared": False}
    assert alice_api.post("/api/v1/phonebook", json=mine).status_code == 201
    history = cti.feature("history")
    first = _call(alice["id"], "3331234567", Disposition.missed)
    records = [
        first,
        _call(alice["id"], "0721555", Disposition.missed),
        _call(bob["id"], "3331234567", Disposition.missed),
        _call(alice["id"], "0721 999", Disposition.answered),
        first,  # the same call again (a retried record): kept once, told once
    ]
    with open_events(cti, alice_api.token) as ws:
        for record in records:
            history.record_later(record)  # from this thread: the writer hands it to the server's loop
        events = [next_event(ws, "history.new")["data"] for _ in range(3)]
        try:
            extra = next_event(ws, "history.new", timeout=0.5)
        except TimeoutError:
            extra = None
    assert extra is None, f"a repeated record was announced twice: {extra}"
    assert [(e["entry"]["number"], e["entry"]["name"], e["missed_unseen"]) for e in events] == [
        ("3331234567", "Mum", 1),
        ("0721555", "Office Pesaro", 2),
        ("0721 999", None, 2),
    ]
    # newest first: same start, so the last stored first
    assert [(i["number"], i["name"]) for i in _items(alice_api, 3)] == [
        ("0721 999", None), ("0721555", "Office Pesaro"), ("3331234567", "Mum")
    ]
    [bobs] = _items(bob_api, 1)
    assert (bobs["name"], bobs["missed"]) == ("Hardware Shop", True), "bob does not see alice's private contact"
    time.sleep(0.3)
    assert len(alice_api.get("/api/v1/history").json()["items"]) == 3


def test_stopping_the_writer_stores_everything_waiting_and_later_records_are_stored_at_once(
    database_url: str,
) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    with db.session() as s:
        s.execute(insert(User), [{"id": 500, "username": "wb", "display_name": "W B", "role": "user",
                                  "outbound": "any", "password_hash": "x", "dnd": False, "totp_enabled": False,
                                  "token_version": 0}])
    history = HistoryService(db, EventBus())
    writer = HistoryWriter(history, delay=60.0, max_batch=100)  # nothing is written by the timer in this test
    history.writer = writer

    async def run() -> tuple[int, int]:
        await writer.start()
        for i in range(250):
            history.record_later(_call(500, f"0721 {i}", Disposition.missed, call_id=f"c{i}"))
        for _ in range(100):  # full batches go at once, the rest waits for the timer (or the stop)
            if writer.written >= 200:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        during = writer.written
        await writer.stop()
        return during, writer.written

    during, after_stop = asyncio.run(run())
    assert during == 200 and after_stop == 250
    history.record_later(_call(500, "0721 late", Disposition.missed, call_id="late"))
    db.dispose()
    again = Database(database_url)  # what a restarted server reads
    with again.session() as s:
        stored = s.scalar(select(func.count()).select_from(CallEntry).where(CallEntry.user_id == 500))
    again.dispose()
    assert stored == 251


def test_flush_returns_when_the_batch_in_flight_finished_before_its_callback_ran() -> None:
    """A finished write whose done-callback has not run yet must not make flush spin (awaiting a finished
    future never yields to the loop, so the callback would never get its turn)."""

    class Stored:
        def __init__(self) -> None:
            self.batches: list[list[CallRecord]] = []

        def record_calls(self, batch: list[CallRecord]) -> None:
            self.batches.append(batch)

    store = Stored()
    writer = HistoryWriter(store, delay=10)  # type: ignore[arg-type]
    outcome: list[str] = []

    async def scenario() -> None:
        await writer.start()
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        finished.set_result(None)
        writer._busy = finished
        finished.add_done_callback(writer._done)  # scheduled, not run: the state flush can meet
        writer.submit(_call(1, "3001", Disposition.missed))
        await writer.flush()
        outcome.append("flushed")

    import threading

    runner = threading.Thread(target=lambda: asyncio.run(scenario()), daemon=True)
    runner.start()
    runner.join(5)
    assert outcome == ["flushed"], "flush is still spinning after 5 s"
    assert [len(b) for b in store.batches] == [1]
