"""The call history's behaviour: recording calls, listing, missed-call counting, CSV export.

The SIP switch hands a :class:`CallRecord` per user and call to :meth:`HistoryService.record_later`: an
answered call's when it is answered (``ended_at`` None: the call is up) and again when it ends, any other
call's once, at its end. The :class:`~callto.history.writer.HistoryWriter` stores them in batches
(:meth:`HistoryService.record_calls`) a few milliseconds later; :meth:`HistoryService.record_call` stores one
at once. Either way a call is one row per user: the end of an answered call completes the row written at
its answer (or writes it, if that never landed), and a record for a row already complete changes nothing
(a retry, or a node ending after a crash a call whose end was recorded). The user gets a ``history.new``
event with the entry and the number of missed calls not yet seen when a row is written, and
``history.updated`` (same form) when an answered call's row gets its end; ``mark_seen`` resets that count
(``history.seen``).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Integer, Table, bindparam, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from callto.events.bus import Event, EventBus
from callto.history.errors import BadHistoryQuery, InvalidCallRecord
from callto.history.events import HistoryNew, HistorySeen, HistoryUpdated
from callto.history.models import CallEntry
from callto.phonebook.numbers import DEFAULT_COUNTRY, number_key
from callto.store.database import Database, utcnow

if TYPE_CHECKING:
    from callto.history.writer import HistoryWriter
    from callto.phonebook.batch_names import NamesFor

log = logging.getLogger(__name__)

MAX_LIMIT = 200
# the table itself: a Core insert of a batch, without the ORM's per-row work; the batch statements are
# built once (building them cost more than running them at a few calls per batch)
_CALLS = cast(Table, CallEntry.__table__)
_INSERT = insert(_CALLS)
_STORED = select(CallEntry).where(
    CallEntry.user_id.in_(bindparam("users", expanding=True)),
    CallEntry.call_id.in_(bindparam("calls", expanding=True)),
)
# which of a batch's calls are stored already, and whether each one has ended
_KNOWN = select(_CALLS.c.user_id, _CALLS.c.call_id, _CALLS.c.ended_at).where(
    _CALLS.c.user_id.in_(bindparam("users", expanding=True)),
    _CALLS.c.call_id.in_(bindparam("calls", expanding=True)),
)
# the end of an answered call, on the row written at its answer; only while that row is open, so an end
# that comes twice (a retry, a restarted node ending a call whose end had landed) changes nothing
_END = (
    update(_CALLS)
    .where(_CALLS.c.user_id == bindparam("k_user"), _CALLS.c.call_id == bindparam("k_call"),
           _CALLS.c.ended_at.is_(None))
    .values(
        ended_at=bindparam("e_ended"),
        duration=bindparam("e_duration"),
        disposition=bindparam("e_disposition"),
        hangup_cause=bindparam("e_cause"),
        device_id=func.coalesce(bindparam("e_device", type_=Integer), _CALLS.c.device_id),
    )
)
_UNSEEN = (
    select(CallEntry.user_id, func.count())
    .where(CallEntry.user_id.in_(bindparam("users", expanding=True)), CallEntry.missed.is_(True),
           CallEntry.seen.is_(False))
    .group_by(CallEntry.user_id)
)
EXPORT_BATCH = 1000


class Direction(StrEnum):
    incoming = "incoming"
    outgoing = "outgoing"
    click_to_call = "click-to-call"


class Disposition(StrEnum):
    answered = "answered"
    missed = "missed"
    busy = "busy"
    failed = "failed"
    cancelled = "cancelled"


@dataclass(frozen=True)
class CallRecord:
    """A call as one user saw it; what the switch hands to :meth:`HistoryService.record_later`.
    ``ended_at`` None: an answered call that is still up (its end comes as a second record)."""

    call_id: str
    user_id: int
    direction: Direction
    other_number: str
    started_at: datetime
    ended_at: datetime | None
    disposition: Disposition
    answered_at: datetime | None = None
    device_id: int | None = None
    hangup_cause: str = ""
    # The caller's display name from signalling, used when no contact matches the number.
    other_name: str | None = None


@dataclass(frozen=True)
class HistoryFilter:
    user_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    direction: Direction | None = None
    missed: bool | None = None


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def public(entry: CallEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "call_id": entry.call_id,
        "user_id": entry.user_id,
        "direction": entry.direction,
        "number": entry.other_number,
        "name": entry.other_name,
        "device_id": entry.device_id,
        "started_at": entry.started_at,
        "answered_at": entry.answered_at,
        "ended_at": entry.ended_at,
        "duration": entry.duration,
        "disposition": entry.disposition,
        "hangup_cause": entry.hangup_cause,
        "missed": entry.missed,
        "seen": entry.seen,
    }


def _encode_cursor(entry: CallEntry) -> str:
    raw = json.dumps([entry.started_at.isoformat(), entry.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, entry_id = json.loads(raw)
        if not isinstance(entry_id, int):
            raise ValueError("bad cursor")
        return _aware(datetime.fromisoformat(started)), entry_id
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadHistoryQuery("that cursor was not given by this server; list again from the start") from exc


class HistoryService:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        name_for: Callable[[int, str], str | None] | None = None,
        country: Callable[[], str] | None = None,
        names_for: NamesFor | None = None,
        listening: Callable[[int], bool] | None = None,
        write_behind: bool = False,
    ) -> None:
        self.db = db
        self.bus = bus
        self._name_for = name_for
        self._country = country
        # the batch form of name_for (one query for a whole batch), used by record_calls
        self._names_for = names_for
        # whether a user would receive a history.new event; None: assume they would
        self._listening = listening
        # the switch's records go through it (a component of the server: started and stopped with it);
        # without one, record_later writes at once
        self.writer: HistoryWriter | None = None
        if write_behind:
            from callto.history.writer import HistoryWriter

            self.writer = HistoryWriter(self)

    def _key(self, number: str) -> str:
        return number_key(number, self._country() if self._country else DEFAULT_COUNTRY)

    # writing (the switch)
    def record_later(self, record: CallRecord) -> None:
        """For the event loop: store ``record`` soon, batched with others (see :class:`HistoryWriter`)."""
        if self.writer is not None:
            self.writer.submit(record)
        else:
            self.record_calls([record])

    def record_calls(self, records: Sequence[CallRecord]) -> int:
        """Store many call records in one transaction (the write-behind's batches) and tell their users;
        returns how many rows were written or completed.

        Same rules as :meth:`record_call`: an impossible record is refused (logged, the others are kept); the
        end of an answered call completes the row written at its answer (``history.updated``), or writes it
        (``history.new``); a record whose row is stored already as complete as it is changes nothing and is
        told nobody. Two records of one call in one batch (answered and ended within the write-behind's
        delay) become one row, written once. Plain statements, no ORM objects: at hundreds of calls a
        second the unit of work cost more than the calls. Only users somebody listens for (``listening``)
        get their entry read back, counted and sent."""
        checked: list[dict[str, Any]] = []
        for record in records:
            try:
                checked.append(self._row(record, None))
            except InvalidCallRecord as exc:
                log.error("refused a call record: %s %s", exc, getattr(exc, "details", ""))
        rows, opened = _one_per_call(checked)
        if not rows:
            return 0
        names: dict[tuple[int, str], str] = {}
        if self._names_for is None:
            for pair in dict.fromkeys((r["user_id"], r["other_number"]) for r in rows if r["other_number"]):
                name = self._name_for(*pair) if self._name_for is not None else None
                if name:
                    names[pair] = name
        try:
            try:
                out, completed, unseen, written = self._write(rows, opened, names, probe=False)
            except _Unsure:
                out, completed, unseen, written = self._write(rows, opened, names, probe=True)
        except IntegrityError:
            # one of them was stored meanwhile (a retried record, another node): one at a time sorts it out
            done = 0
            for record in records:
                try:
                    self.record_call(record)
                    done += 1
                except InvalidCallRecord:
                    continue
            return done
        fresh = [item for item in out if (item["user_id"], item["call_id"]) not in completed]
        final = dict(unseen)
        # each new entry's event carries the count as it was right after its own entry, as record_call's do
        counts: list[int] = []
        for item in reversed(fresh):
            user = item["user_id"]
            counts.append(unseen[user])
            if item["missed"] and not item["seen"]:
                unseen[user] -= 1
        for item, count in zip(fresh, reversed(counts), strict=True):
            new = HistoryNew(_jsonable(item), count)
            self.bus.publish(Event.of(new, frozenset({item["user_id"]})))
        # then the completed ones (answered: they change no count), with the count as it is now
        for item in out:
            if (item["user_id"], item["call_id"]) in completed:
                updated = HistoryUpdated(_jsonable(item), final[item["user_id"]])
                self.bus.publish(Event.of(updated, frozenset({item["user_id"]})))
        return written

    def _write(
        self, rows: list[dict[str, Any]], opened: set[tuple[int, str]], names: dict[tuple[int, str], str],
        *, probe: bool,
    ) -> tuple[list[dict[str, Any]], set[tuple[int, str]], dict[int, int], int]:
        """One transaction of :meth:`record_calls`: the entries written or completed (read back for the
        users somebody listens for), which of them were completed, the users' unseen counts, how many.

        The end of an answered call whose answer was not in this batch is taken to complete the row of its
        answer: one UPDATE, no look-up first. When fewer rows took it than were meant to (the answer's write
        never landed, the end came twice), :class:`_Unsure` rolls back and the caller asks again with
        ``probe``: the batch's answered calls are looked up first and each record goes where it belongs."""
        listening = self._listening
        with self.db.session() as s:
            new: list[dict[str, Any]] = []
            ends: list[dict[str, Any]] = []
            if probe:
                # Only an answered call can have a row already (written at its answer): look those up.
                known: dict[tuple[int, str], datetime | None] = {}
                answered = [r for r in rows if r["answered_at"] is not None]
                if answered:
                    found = s.execute(_KNOWN, {"users": sorted({r["user_id"] for r in answered}),
                                               "calls": sorted({r["call_id"] for r in answered})})
                    known = {(int(u), str(c)): ended for u, c, ended in found}
                for r in rows:
                    key = (r["user_id"], r["call_id"])
                    if key not in known:
                        new.append(r)
                    elif known[key] is None and r["ended_at"] is not None and r["answered_at"] is not None:
                        ends.append(r)
                    # else stored already as it is: kept once, told nobody
            else:
                for r in rows:
                    ending = r["ended_at"] is not None and r["answered_at"] is not None
                    (ends if ending and (r["user_id"], r["call_id"]) not in opened else new).append(r)
            if ends:
                result = s.execute(_END, [_end_params(r) for r in ends])
                if not probe and int(getattr(result, "rowcount", -1)) != len(ends):
                    raise _Unsure
            if new:
                pairs = [(r["user_id"], r["other_number"]) for r in new if r["other_number"]]
                if self._names_for is not None:
                    names = self._names_for(s, pairs)
                for r in new:
                    r["other_name"] = names.get((r["user_id"], r["other_number"])) or r["other_name"]
                    r["other_key"] = self._key(r["other_number"])[:24]
                s.execute(_INSERT, new)
            written = new + ends
            told = {r["user_id"] for r in written if listening is None or listening(r["user_id"])}
            stored: list[CallEntry] = []
            if told:
                wanted = {(r["user_id"], r["call_id"]) for r in written if r["user_id"] in told}
                found_entries = s.scalars(_STORED, {"users": sorted(told), "calls": sorted({c for _, c in wanted})})
                stored = sorted((e for e in found_entries if (e.user_id, e.call_id) in wanted), key=lambda e: e.id)
            out = [public(e) for e in stored]
            unseen = self._unseen_of(s, told)
        return out, {(r["user_id"], r["call_id"]) for r in ends}, unseen, len(written)

    def _row(self, record: CallRecord, name: str | None) -> dict[str, Any]:
        """The columns of ``record``'s entry, checked (``InvalidCallRecord`` for an impossible one)."""
        direction = Direction(record.direction)
        disposition = Disposition(record.disposition)
        started = _aware(record.started_at)
        ended = None if record.ended_at is None else _aware(record.ended_at)
        answered = None if record.answered_at is None else _aware(record.answered_at)
        if not record.call_id or len(record.call_id) > 128:
            raise InvalidCallRecord("call_id must be 1 to 128 characters")
        if ended is not None and ended < started:
            raise InvalidCallRecord("a call cannot end before it starts", details={"call_id": record.call_id})
        if answered is not None and not (started <= answered and (ended is None or answered <= ended)):
            raise InvalidCallRecord("answered_at must lie between start and end", details={"call_id": record.call_id})
        if (disposition == Disposition.answered) != (answered is not None):
            raise InvalidCallRecord(
                "a call is answered exactly when it has answered_at", details={"call_id": record.call_id}
            )
        if ended is None and answered is None:
            raise InvalidCallRecord(
                "only an answered call is recorded before it ends", details={"call_id": record.call_id}
            )
        number = record.other_number.strip()[:64]
        missed = direction == Direction.incoming and disposition != Disposition.answered
        return {
            "call_id": record.call_id,
            "user_id": record.user_id,
            "direction": direction.value,
            "other_number": number,
            # "other_key" is added by whoever inserts the row: parsing the number is the dearest part of a
            # record, and the end of an answered call only completes a row that has it already
            "other_name": (name or record.other_name or None),
            "device_id": record.device_id,
            "started_at": started,
            "answered_at": answered,
            "ended_at": ended,
            "duration": 0 if answered is None or ended is None else int((ended - answered).total_seconds()),
            "disposition": disposition.value,
            "hangup_cause": record.hangup_cause[:128],
            "missed": missed,
            "seen": not missed,
            "created_at": utcnow(),
        }

    def record_call(self, record: CallRecord) -> dict[str, Any]:
        """Store a call for its user and tell them; one row per (user_id, call_id): the end of an answered
        call completes the row of its answer, and a record adding nothing to the stored row is ignored."""
        number = record.other_number.strip()[:64]
        name = self._name_for(record.user_id, number) if self._name_for and number else None
        row = self._row(record, name)
        entry = CallEntry(**row, other_key=self._key(row["other_number"])[:24])
        kind: type[HistoryNew | HistoryUpdated] = HistoryNew
        try:
            with self.db.session() as s:
                s.add(entry)
                s.flush()
                out = public(entry)
                unseen = self._unseen(s, record.user_id)
        except IntegrityError:
            with self.db.session() as s:
                completed = False
                if row["ended_at"] is not None and row["answered_at"] is not None:
                    result = s.execute(_END, _end_params(row))
                    completed = int(getattr(result, "rowcount", 0) or 0) == 1
                existing = s.scalar(
                    select(CallEntry).where(CallEntry.user_id == record.user_id, CallEntry.call_id == record.call_id)
                )
                if existing is None:
                    raise
                out = public(existing)
                if not completed:
                    # Already recorded as it is (the switch retried): answer with what is stored, tell nobody.
                    return out
                unseen = self._unseen(s, record.user_id)
            kind = HistoryUpdated
        event = kind(_jsonable(out), unseen)
        self.bus.publish(Event.of(event, frozenset({record.user_id})))
        return out

    # reading
    @staticmethod
    def _unseen(s: Session, user_id: int) -> int:
        q = select(func.count()).select_from(CallEntry).where(
            CallEntry.user_id == user_id, CallEntry.missed.is_(True), CallEntry.seen.is_(False)
        )
        return int(s.scalar(q) or 0)

    @staticmethod
    def _unseen_of(s: Session, users: set[int]) -> dict[int, int]:
        if not users:
            return {}
        counts = {user: 0 for user in users}
        counts.update({int(user): int(n) for user, n in s.execute(_UNSEEN, {"users": sorted(users)})})
        return counts

    def missed_unseen(self, user_id: int) -> int:
        with self.db.session() as s:
            return self._unseen(s, user_id)

    def mark_seen(self, user_id: int) -> int:
        with self.db.session() as s:
            result = s.execute(
                update(CallEntry)
                .where(CallEntry.user_id == user_id, CallEntry.missed.is_(True), CallEntry.seen.is_(False))
                .values(seen=True)
            )
            changed = int(getattr(result, "rowcount", 0) or 0)
        self.bus.publish(Event.of(HistorySeen(), frozenset({user_id})))
        return changed

    @staticmethod
    def _where(f: HistoryFilter) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if f.user_id is not None:
            where.append(CallEntry.user_id == f.user_id)
        if f.since is not None:
            where.append(CallEntry.started_at >= _aware(f.since))
        if f.until is not None:
            where.append(CallEntry.started_at < _aware(f.until))
        if f.direction is not None:
            where.append(CallEntry.direction == f.direction.value)
        if f.missed is not None:
            where.append(CallEntry.missed.is_(f.missed))
        if f.since is not None and f.until is not None and f.until < f.since:
            raise BadHistoryQuery("until is before since", details={"since": str(f.since), "until": str(f.until)})
        return where

    def entries(
        self, f: HistoryFilter, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        if not 1 <= limit <= MAX_LIMIT:
            raise BadHistoryQuery(f"limit must be between 1 and {MAX_LIMIT}")
        stmt = select(CallEntry).where(*self._where(f))
        if cursor:
            started, entry_id = _decode_cursor(cursor)
            stmt = stmt.where(tuple_(CallEntry.started_at, CallEntry.id) < tuple_(started, entry_id))
        stmt = stmt.order_by(CallEntry.started_at.desc(), CallEntry.id.desc()).limit(limit + 1)
        with self.db.session() as s:
            rows = list(s.scalars(stmt).all())
            items = [public(e) for e in rows[:limit]]
            nxt = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return items, nxt

    def recent_with_number(self, user_id: int, number: str, limit: int = 5) -> list[dict[str, Any]]:
        """The user's last calls with ``number`` in any format (for customer cards)."""
        key = self._key(number)
        stmt = (
            select(CallEntry)
            .where(CallEntry.user_id == user_id, CallEntry.other_key == key)
            .order_by(CallEntry.started_at.desc(), CallEntry.id.desc())
            .limit(limit)
        )
        with self.db.session() as s:
            return [_jsonable(public(e)) for e in s.scalars(stmt).all()]

    def export_csv(self, f: HistoryFilter) -> Iterator[str]:
        columns = [
            "id", "user_id", "call_id", "direction", "number", "name", "device_id", "started_at",
            "answered_at", "ended_at", "duration", "disposition", "hangup_cause", "missed",
        ]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(columns)
        after: tuple[datetime, int] | None = None
        where = self._where(f)
        while True:
            stmt = select(CallEntry).where(*where)
            if after is not None:
                stmt = stmt.where(tuple_(CallEntry.started_at, CallEntry.id) < tuple_(*after))
            stmt = stmt.order_by(CallEntry.started_at.desc(), CallEntry.id.desc()).limit(EXPORT_BATCH)
            with self.db.session() as s:
                rows = list(s.scalars(stmt).all())
            for e in rows:
                row = public(e)
                row["name"] = _csv_safe(row["name"] or "")
                row["number"] = _csv_safe(row["number"])
                writer.writerow(["" if row[c] is None else _csv_value(row[c]) for c in columns])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(rows) < EXPORT_BATCH:
                return
            after = (rows[-1].started_at, rows[-1].id)


class _Unsure(Exception):
    """Fewer open rows took a batch's ends than expected: the batch is written again, looking first."""


def _one_per_call(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[tuple[int, str]]]:
    """One row per (user, call), in the order first seen: an ended call's row replaces the open row of
    its answer (both in one batch: written once, complete); a repeated record is dropped. Also the calls
    whose answer is in the batch (their row is not stored yet)."""
    out: dict[tuple[int, str], dict[str, Any]] = {}
    opened: set[tuple[int, str]] = set()
    for r in rows:
        key = (r["user_id"], r["call_id"])
        kept = out.get(key)
        if kept is None or (kept["ended_at"] is None and r["ended_at"] is not None):
            out[key] = r
        if r["ended_at"] is None:
            opened.add(key)
    return list(out.values()), opened


def _end_params(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "k_user": row["user_id"], "k_call": row["call_id"], "e_ended": row["ended_at"],
        "e_duration": row["duration"], "e_disposition": row["disposition"], "e_cause": row["hangup_cause"],
        "e_device": row["device_id"],
    }


def _csv_value(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _csv_safe(value: str) -> str:
    # Spreadsheets run cells starting with these as formulas; a leading ' keeps them text.
    if value.startswith(("=", "-", "@", "\t", "\r")) or (value.startswith("+") and not value[1:2].isdigit()):
        return "'" + value
    return value


def _jsonable(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in entry.items()}
