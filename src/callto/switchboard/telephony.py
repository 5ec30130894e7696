"""Where calls meet the rest of callto: the switch's call events and records become history entries
(an answered call's at its answer, completed at its end), presence, the click-to-call calls' progress and
``call.*`` events (with the caller's name) for the users involved.

The switch reports in its own terms (string ids, Unix times, its dispositions); this module translates,
so neither the switch nor the history and presence packages know about each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from callto.dialer.calls import CallBook
from callto.events.bus import Event, EventBus
from callto.events.hub import SessionHub
from callto.history.service import CallRecord, Direction, Disposition, HistoryService
from callto.phonebook.caller_names import CallerNames
from callto.phonebook.cards import CardService
from callto.presence.service import PresenceService
from callto.sip.ports import ActiveCall
from callto.switchboard.events import CALL_DETAILS, CallMove, CallProgress

log = logging.getLogger(__name__)

Listening = Callable[[int], bool]

# The longest a call's first event waits for the caller's name (normally a millisecond query) before it is
# sent without one; and how many calls' names are kept until their end.
NAME_WAIT = 0.3
# a call moving between a user's devices (callto.sip.move): told to that user alone, in their own shape
MOVE_EVENTS = frozenset({"moving", "moved", "move_failed"})
MAX_NAMED = 10_000


def audience(bus: EventBus, hub: SessionHub) -> Listening:
    """Whether an event for a user would reach anyone: on one node, when the user has a session open here;
    with Redis between nodes their session may be on another node, so always. Work done only to be sent to
    a user (a customer card, a ``call.*`` event) is skipped when nobody would receive it. A listener inside
    the server (a webhook) counts as someone for every user."""
    if bus.redis_url:
        return lambda _user: True
    return lambda user: bool(hub.sessions_of(user)) or hub.server_listening()


class _Record(Protocol):
    """A finished call as the switch reports it (``callto.sip.b2bua.CallRecord``), read-only here."""

    @property
    def call_id(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def caller_user_id(self) -> str | None: ...
    @property
    def caller_device_id(self) -> str | None: ...
    @property
    def callee_user_id(self) -> str | None: ...
    @property
    def from_number(self) -> str: ...
    @property
    def to_number(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def answered_at(self) -> float | None: ...
    @property
    def ended_at(self) -> float: ...
    @property
    def disposition(self) -> str: ...
    @property
    def hangup_cause(self) -> str: ...
    @property
    def answered_device_id(self) -> str | None: ...


def _int(value: str | int | None) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None  # a trunk peer or an unknown party, not one of our users


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class Telephony:
    """Receives ``on_call_event`` / ``on_call_answered`` / ``on_call_record`` from the switch and hands each
    feature its part; a feature given as None is not told (a tool, a test with only some of them)."""

    def __init__(
        self,
        bus: EventBus,
        *,
        listening: Listening | None = None,
        calls: CallBook | None = None,
        caller_names: CallerNames | None = None,
        cards: CardService | None = None,
        presence: PresenceService | None = None,
        history: HistoryService | None = None,
    ) -> None:
        self.bus = bus
        self.listening = listening
        self.calls = calls
        self.caller_names = caller_names
        self.cards = cards
        self.presence = presence
        self.history = history
        self._carded: dict[str, set[int]] = {}  # call_id -> users who got a card for it
        self._tasks: set[asyncio.Task[Any]] = set()
        self._names: dict[str, str | None] = {}  # call_id -> the caller's name, once looked up
        self._held: dict[str, list[Event]] = {}  # call_id -> its events waiting for that look-up, in order

    # live progress
    def on_call_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind in MOVE_EVENTS:
            self._move_event(kind, data)
            return
        call_id = str(data.get("call_id", ""))
        caller, callee = _int(data.get("caller_user_id")), _int(data.get("callee_user_id"))
        calls = self.calls
        # An originated click has the click's id; a web phone's or Link's call names its click in a header.
        click_id = str(data.get("click_id") or call_id)
        click = calls.get(click_id) if calls is not None else None
        if click is not None and click_id != call_id and str(click.device_id) != str(data.get("caller_device_id")):
            click = None  # only the device the click went to can speak for it
        if click is not None and calls is not None:
            stage = data.get("stage")
            if kind == "ringing" and stage == "device":
                calls.update(click_id, "ringing", device_ringing=True, sip_call_id=call_id)
            elif kind == "ringing":
                calls.update(click_id, "ringing", destination_ringing=True, sip_call_id=call_id)
            elif kind == "answered" and stage != "device":
                calls.update(click_id, "answered", sip_call_id=call_id)
            elif kind == "ended":
                cause = str(data.get("cause") or data.get("disposition") or "ended")
                calls.update(click_id, "ended", cause, disposition=data.get("disposition"), sip_call_id=call_id)
        users = {u for u in (caller, callee) if u is not None}
        if click is not None:
            users.discard(click.user_id)  # the dialer already told the clicking user
        if users and self.listening is not None:
            users = {u for u in users if self.listening(u)}
        if users:
            # the caller's name as the called user knows them: filled in by _publish, None when unknown
            progress = CallProgress(
                phase=kind, call_id=call_id, direction=data.get("direction"), from_number=data.get("from"),
                to_number=data.get("to"), details={k: data[k] for k in CALL_DETAILS if k in data},
            )
            self._publish(Event.of(progress, frozenset(users)), callee, caller, data)
        elif kind == "ended":
            self._names.pop(call_id, None)
        self._presence(kind, call_id, caller, callee, data)
        self._cards(kind, call_id, caller, callee, data)

    def _move_event(self, kind: str, data: dict[str, Any]) -> None:
        """``call.moving`` / ``call.moved`` / ``call.move_failed``: for the user who moves their call only
        (the other party is not told); the devices are callto's device ids."""
        user = _int(data.get("user_id"))
        if user is None:
            return
        move = CallMove(
            phase=kind, call_id=str(data.get("call_id", "")), device_id=_int(data.get("device_id")),
            from_device_id=_int(data.get("from_device_id")), reason=data.get("reason"), has_reason="reason" in data,
        )
        self.bus.publish(Event.of(move, frozenset({user})))

    def _publish(self, event: Event, callee: int | None, caller: int | None, data: dict[str, Any]) -> None:
        """Send a ``call.*`` event with the caller's name. The first event of a call to a user waits for the
        name's look-up (a worker thread, bounded by ``NAME_WAIT``), and the call's later events queue behind
        it so each user sees them in order; the switch never waits."""
        call_id = str(event.data["call_id"])
        held = self._held.get(call_id)
        if held is not None:
            held.append(event)
            return
        if call_id in self._names:
            event.data["caller_name"] = self._names[call_id]
            if event.type == "call.ended":
                self._names.pop(call_id, None)
            self.bus.publish(event)
            return
        names = self.caller_names
        number = str(data.get("from") or "")
        if names is None or callee is None or event.type == "call.ended" or not (number or caller is not None):
            self.bus.publish(event)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the server's loop (a tool, a test): no look-up
            self.bus.publish(event)
            return
        self._held[call_id] = [event]
        if len(self._names) > MAX_NAMED:  # calls whose end never came (a node restart): forget the oldest
            for old in list(self._names)[: len(self._names) - MAX_NAMED]:
                del self._names[old]
        task = loop.create_task(self._name_then_publish(call_id, names, callee, number, caller))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _name_then_publish(
        self, call_id: str, names: CallerNames, callee: int, number: str, caller: int | None
    ) -> None:
        name: str | None = None
        try:
            name = await asyncio.wait_for(names.name(callee, number, caller), NAME_WAIT)
        except TimeoutError:
            log.info("the caller's name for %s took over %s s: sent without it", call_id, NAME_WAIT)
        except Exception as exc:
            log.warning("the caller's name for %s: %s", call_id, exc)
        finally:
            held = self._held.pop(call_id, [])
            ended = any(e.type == "call.ended" for e in held)
            if not ended:
                self._names[call_id] = name
            for event in held:
                event.data["caller_name"] = name
                self.bus.publish(event)

    def _cards(self, kind: str, call_id: str, caller: int | None, callee: int | None, data: dict[str, Any]) -> None:
        """When a call starts ringing, each user in it gets the customer card of the other party."""
        if kind == "ended":
            self._carded.pop(call_id, None)
            return
        cards = self.cards
        if kind != "ringing" or cards is None or data.get("stage") == "device":
            return
        wanted = [(caller, data.get("to"), "outgoing"), (callee, data.get("from"), "incoming")]
        carded = self._carded.get(call_id)
        for user, number, direction in wanted:
            if user is None or not number or (carded is not None and user in carded):
                continue
            if self.listening is not None and not self.listening(user):
                continue  # a card is an event and nothing else: building it for nobody costs queries
            if carded is None:
                carded = self._carded[call_id] = set()
            carded.add(user)
            task = asyncio.get_running_loop().create_task(
                cards.push_card(user, str(number), call_id=call_id, direction=direction)
            )
            self._tasks.add(task)
            task.add_done_callback(self._card_done)

    def _card_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("customer card push failed: %s", task.exception())

    def _presence(
        self, kind: str, call_id: str, caller: int | None, callee: int | None, data: dict[str, Any]
    ) -> None:
        presence = self.presence
        if presence is None:
            return
        try:
            if kind == "ringing":
                if callee is not None and data.get("stage") != "device":
                    presence.call_state(callee, "ringing", call_id)
                if caller is not None:
                    presence.call_state(caller, "busy", call_id)
            elif kind == "answered":
                for user in (caller, callee):
                    if user is not None:
                        presence.call_state(user, "busy", call_id)
            elif kind == "ended":
                for user in (caller, callee):
                    if user is not None:
                        presence.call_state(user, "idle", call_id)
        except Exception:
            log.exception("presence update for %s failed", call_id)

    # the records: at the answer, and at the end
    def on_call_answered(self, call: ActiveCall) -> None:
        """An answered call enters the history of its users now, ``ended_at`` empty until its end (the same
        rows are completed then, by :meth:`on_call_record`, on whichever node ends the call)."""
        answered = _time(call.answered_at)
        assert answered is not None
        self._record(call, "answered", answered, None, "")

    def on_call_record(self, record: _Record) -> None:
        disposition = str(record.disposition)  # the switch's StrEnum: its value
        answered, ended = _time(record.answered_at), _time(record.ended_at)
        if answered is not None:
            # Answered, then ended by a failure (media, a lost connection): it was answered, and its row
            # was written so at the answer; the cause says what ended it.
            disposition = "answered"
        self._record(record, disposition, answered, ended, record.hangup_cause)

    def _record(
        self, call: ActiveCall | _Record, disposition: str, answered: datetime | None, ended: datetime | None,
        cause: str,
    ) -> None:
        history = self.history
        if history is None:
            return
        started = _time(call.started_at)
        assert started is not None
        entries: list[CallRecord] = []
        caller, callee = _int(call.caller_user_id), _int(call.callee_user_id)
        if caller is not None:
            direction = Direction.click_to_call if call.direction == "originate" else Direction.outgoing
            entries.append(
                CallRecord(
                    call_id=call.call_id, user_id=caller, direction=direction,
                    other_number=call.to_number, started_at=started, ended_at=ended,
                    disposition=_disposition(disposition), answered_at=answered,
                    device_id=_int(call.caller_device_id), hangup_cause=cause,
                )
            )
        if callee is not None and callee != caller:
            # For the one called, an unanswered call is missed, whoever gave up.
            mine = disposition if disposition in ("answered", "busy") else "missed"
            entries.append(
                CallRecord(
                    call_id=call.call_id, user_id=callee, direction=Direction.incoming,
                    other_number=call.from_number, started_at=started, ended_at=ended,
                    disposition=_disposition(mine), answered_at=answered if mine == "answered" else None,
                    device_id=_int(call.answered_device_id), hangup_cause=cause,
                )
            )
        # The switch calls this on the event loop: the history's write-behind stores the entries in batches
        # in a worker thread (see callto.history.writer).
        for entry in entries:
            history.record_later(entry)


def _disposition(value: str) -> Disposition:
    """The history's disposition of the switch's (the same words); one it does not know counts as failed."""
    try:
        return Disposition(value)
    except ValueError:
        log.warning("a call with the unknown disposition %r is recorded as failed", value)
        return Disposition.failed
