"""The call history's behaviour: recording a finished call, listing, missed-call counting, CSV export.

The SIP switch calls :meth:`HistoryService.record_call` with a :class:`CallRecord` once per user and call
when the call ends (the same call_id twice is recorded once). The user gets a ``history.new`` event with
the entry and the number of missed calls not yet seen; ``mark_seen`` resets that count (``history.seen``).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from callto.events.bus import Event, EventBus
from callto.history.errors import BadHistoryQuery, InvalidCallRecord
from callto.history.models import CallEntry
from callto.phonebook.numbers import DEFAULT_COUNTRY, number_key
from callto.store.database import Database

MAX_LIMIT = 200
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
    """A finished call as one user saw it; what the switch hands to :meth:`HistoryService.record_call`."""

    call_id: str
    user_id: int
    direction: Direction
    other_number: str
    started_at: datetime
    ended_at: datetime
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
    ) -> None:
        self.db = db
        self.bus = bus
        self._name_for = name_for
        self._country = country

    def _key(self, number: str) -> str:
        return number_key(number, self._country() if self._country else DEFAULT_COUNTRY)

    # writing (the switch)
    def record_call(self, record: CallRecord) -> dict[str, Any]:
        """Store a finished call for its user and tell them; idempotent per (user_id, call_id)."""
        direction = Direction(record.direction)
        disposition = Disposition(record.disposition)
        started, ended = _aware(record.started_at), _aware(record.ended_at)
        answered = None if record.answered_at is None else _aware(record.answered_at)
        if not record.call_id or len(record.call_id) > 128:
            raise InvalidCallRecord("call_id must be 1 to 128 characters")
        if ended < started:
            raise InvalidCallRecord("a call cannot end before it starts", details={"call_id": record.call_id})
        if answered is not None and not started <= answered <= ended:
            raise InvalidCallRecord("answered_at must lie between start and end", details={"call_id": record.call_id})
        if (disposition == Disposition.answered) != (answered is not None):
            raise InvalidCallRecord(
                "a call is answered exactly when it has answered_at", details={"call_id": record.call_id}
            )
        number = record.other_number.strip()[:64]
        name = self._name_for(record.user_id, number) if self._name_for and number else None
        missed = direction == Direction.incoming and disposition != Disposition.answered
        entry = CallEntry(
            call_id=record.call_id,
            user_id=record.user_id,
            direction=direction.value,
            other_number=number,
            other_key=self._key(number)[:24],
            other_name=(name or record.other_name or None),
            device_id=record.device_id,
            started_at=started,
            answered_at=answered,
            ended_at=ended,
            duration=0 if answered is None else int((ended - answered).total_seconds()),
            disposition=disposition.value,
            hangup_cause=record.hangup_cause[:128],
            missed=missed,
            seen=not missed,
        )
        try:
            with self.db.session() as s:
                s.add(entry)
                s.flush()
                out = public(entry)
                unseen = self._unseen(s, record.user_id)
        except IntegrityError:
            # Already recorded (the switch retried): answer with what is stored, tell nobody twice.
            with self.db.session() as s:
                existing = s.scalar(
                    select(CallEntry).where(CallEntry.user_id == record.user_id, CallEntry.call_id == record.call_id)
                )
                if existing is None:
                    raise
                return public(existing)
        self.bus.publish(
            Event("history.new", {"entry": _jsonable(out), "missed_unseen": unseen}, frozenset({record.user_id}))
        )
        return out

    # reading
    @staticmethod
    def _unseen(s: Session, user_id: int) -> int:
        q = select(func.count()).select_from(CallEntry).where(
            CallEntry.user_id == user_id, CallEntry.missed.is_(True), CallEntry.seen.is_(False)
        )
        return int(s.scalar(q) or 0)

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
        self.bus.publish(Event("history.seen", {"missed_unseen": 0}, frozenset({user_id})))
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


def _csv_value(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _csv_safe(value: str) -> str:
    # Spreadsheets run cells starting with these as formulas; a leading ' keeps them text.
    if value.startswith(("=", "-", "@", "\t", "\r")) or (value.startswith("+") and not value[1:2].isdigit()):
        return "'" + value
    return value


def _jsonable(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in entry.items()}
