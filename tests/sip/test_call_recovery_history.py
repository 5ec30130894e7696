"""The records a switch hands over when it ends the calls of a dead node (or of its own previous run) complete
the history rows written at those calls' answers, once: a second ending changes nothing, and a call whose
answer never reached the history gets its row then. The real switch's ``end_calls``, the real translation
(:class:`~callto.switchboard.telephony.Telephony`) and history, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from calls_harness import running_switch
from sqlalchemy import insert, select

from callto.directory.models import User
from callto.events.bus import EventBus
from callto.history.models import CallEntry
from callto.history.service import HistoryService
from callto.sip.ports import ActiveCall, ActiveLeg, InMemoryActiveCalls
from callto.store import migrate
from callto.store.database import Database
from callto.switchboard.telephony import Telephony

ALICE, BOB = 801, 802


def _leg(call_id: str, port: int) -> ActiveLeg:
    return ActiveLeg(
        call_id=call_id, local_tag="ours", remote_tag="theirs", local_uri="sip:callto@callto.test",
        remote_uri="sip:x@callto.test", remote_target=f"sip:x@127.0.0.1:{port}", local_contact="<sip:callto@127.0.0.1>",
        route_set=(), local_seq=1, transport="udp", host="127.0.0.1", port=port,
    )


def _active(call_id: str) -> ActiveCall:
    now = time.time()
    return ActiveCall(
        call_id=call_id, node="dead-node", direction="internal", from_number="201", to_number="202",
        started_at=now - 30, answered_at=now - 25, caller_user_id=str(ALICE), caller_device_id="1",
        callee_user_id=str(BOB), answered_device_id="2", legs=(_leg(f"{call_id}-a", 9), _leg(f"{call_id}-b", 9)),
    )


def test_ending_a_dead_nodes_calls_completes_their_rows_once_and_writes_a_missing_one(database_url: str) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    with db.session() as s:
        s.execute(insert(User), [
            {"id": uid, "username": f"u{uid}", "display_name": f"U {uid}", "role": "user", "outbound": "any",
             "password_hash": "x", "dnd": False, "totp_enabled": False, "token_version": 0}
            for uid in (ALICE, BOB)
        ])
    telephony = Telephony(EventBus(), history=HistoryService(db, EventBus()))
    up, lost = _active("was-up"), _active("answer-lost")
    telephony.on_call_answered(up)  # what the dead node wrote at the answer; "answer-lost" never got there

    def rows() -> list[tuple[int, str, bool, str, int]]:
        with db.session() as s:
            return [(e.user_id, e.call_id, e.ended_at is None, e.hangup_cause, e.duration)
                    for e in s.scalars(select(CallEntry).order_by(CallEntry.call_id, CallEntry.user_id))]

    assert rows() == [(ALICE, "was-up", True, "", 0), (BOB, "was-up", True, "", 0)]
    try:
        with running_switch(active_calls=InMemoryActiveCalls()) as sw:
            assert sw.call(lambda: sw.switch.end_calls([up, lost], "node-died")) == 2
            for record in sw.wait_records(2):
                telephony.on_call_record(record)
            # claimed again (a second survivor, a restart finding it still listed): its end is there already
            assert sw.call(lambda: sw.switch.end_calls([up], "server-restart")) == 1
            for record in sw.wait_records(3)[2:]:
                telephony.on_call_record(record)
        done = rows()
        assert [(u, c, open_, cause) for u, c, open_, cause, _ in done] == [
            (ALICE, "answer-lost", False, "node-died"), (BOB, "answer-lost", False, "node-died"),
            (ALICE, "was-up", False, "node-died"), (BOB, "was-up", False, "node-died"),
        ], "one row per user and call, completed once"
        assert all(24 <= talk <= 27 for *_, talk in done), done
    finally:
        db.dispose()
