"""Call bookkeeping of the B2BUA: what a call and its legs are, and the table that keeps them.

Owns the data types (:class:`Call`, :class:`Leg`, :class:`Target`, :class:`CallRecord`,
:class:`Disposition`), the :class:`CallController` hooks a feature implements to drive a call the B2BUA
does not run alone, and :class:`CallBook`: the calls, the transactions and dialogs that lead to their legs,
every call's deadlines on one heap and the transactions of finished calls kept a while (linger). States
move only through :mod:`callto.sip.call_states`. Nothing here sends a message or reads a clock.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callto.sip.call_states import CallState, LegState
from callto.sip.dialog import Dialog
from callto.sip.endpoint import Source
from callto.sip.media import MediaProfile
from callto.sip.message import Request, Response, new_tag
from callto.sip.trunk import TrunkConfig

if TYPE_CHECKING:
    from callto.sip.dialog_relay import Relay

LINGER = 40.0  # past Timer B/M: nothing more can arrive for a finished call's transactions


class Disposition(enum.StrEnum):
    ANSWERED = "answered"
    MISSED = "missed"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class CallRecord:
    """What the history keeps of one call (times are the clock's seconds: Unix time in the switch)."""

    call_id: str
    direction: str  # "internal" | "outbound" | "inbound" | "originate"
    caller_user_id: str | None
    caller_device_id: str | None
    callee_user_id: str | None
    devices_rung: list[str]
    from_number: str
    to_number: str
    started_at: float
    answered_at: float | None
    ended_at: float
    disposition: Disposition
    hangup_cause: str
    answered_device_id: str | None = None
    trunk_id: str | None = None
    click_id: str = ""


@dataclass(eq=False)
class Leg:
    call: Call
    role: str  # "a" (the caller side, or the device in an origination) | "b" (a branch of the fork)
    uac: bool  # we sent the INVITE on this leg
    dest: Source
    device_id: str | None = None
    user_id: str | None = None
    trunk: TrunkConfig | None = None
    invite: Request | None = None
    tx_id: int | None = None
    dialog: Dialog | None = None
    state: LegState = LegState.CALLING
    profile: MediaProfile | None = None
    media_tag: str = field(default_factory=new_tag)
    local_tag: str = field(default_factory=new_tag)
    relayed_media: bool = False  # got an SDP rewritten by rtpengine
    ack: Request | None = None  # the ACK we sent for its 2xx (re-sent on retransmissions)
    final: int | None = None
    auth_tries: int = 0
    ringing: bool = False


@dataclass
class Target:
    """Where one branch of a fork goes."""

    dest: Source
    ruri: str
    to: str
    device_id: str | None = None
    user_id: str | None = None
    profile: MediaProfile = MediaProfile.PLAIN
    trunk: TrunkConfig | None = None
    route: tuple[str, ...] = ()  # preloaded Route set: the binding's Path (RFC 3327)


class CallController:
    """What drives a call the B2BUA does not run alone (origination, blind transfer, moving a call).

    Each hook returns True when it took the event over; False lets the B2BUA do what it does for a plain
    call. ``call_ended`` is told after the record is written."""

    def leg_ringing(self, leg: Leg, response: Response, now: float) -> bool:
        return False

    def leg_answered(self, leg: Leg, response: Response, now: float) -> bool:
        return False

    def leg_failed(self, leg: Leg, response: Response, now: float) -> bool:
        return False

    def before_end(self, call: Call, status: int, reason: str | None, cause: str, now: float) -> bool:
        """``call`` is about to end; True keeps it."""
        return False

    def call_ended(self, call: Call, cause: str, now: float) -> None:
        return None


@dataclass(eq=False)
class Call:
    id: str
    kind: str  # "internal" | "outbound" | "inbound" | "originate"
    started_at: float
    from_number: str
    to_number: str
    caller_user_id: str | None = None
    caller_device_id: str | None = None
    callee_user_id: str | None = None
    a: Leg | None = None
    b: list[Leg] = field(default_factory=list)
    winner: Leg | None = None
    state: CallState = CallState.ROUTING
    answered_at: float | None = None
    ring_deadline: float | None = None
    ack_deadline: float | None = None
    retransmit_at: float | None = None
    retransmit_interval: float = 0.5
    final_to_a: Response | None = None
    offer: bytes = b""
    offer_profile: MediaProfile | None = None
    relay_profile: MediaProfile | None = None  # branches of this profile got rtpengine's rewritten offer
    media_active: bool = False
    devices_rung: list[str] = field(default_factory=list)
    trunk_id: str | None = None
    sent_ringing: bool = False
    click_id: str = ""
    ended_reason: str = ""
    controller: CallController | None = None  # a feature driving this call (origination, transfer, ...)

    def legs(self) -> list[Leg]:
        return ([self.a] if self.a is not None else []) + self.b


class _Deadline:
    """``Call.ring_deadline`` / ``ack_deadline`` / ``retransmit_at``: a deadline set anywhere reaches the
    book's timer heap, so the next timer is found without looking at every call."""

    def __init__(self, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, call: Call | None, owner: type | None = None) -> float | None:
        if call is None:
            return None  # the dataclass default
        value: float | None = call.__dict__.get(self.slot)
        return value

    def __set__(self, call: Call, value: float | None) -> None:
        call.__dict__[self.slot] = value
        if value is not None:
            schedule = call.__dict__.get("_schedule")
            if schedule is not None:
                schedule(value, call)


for _name in ("ring_deadline", "ack_deadline", "retransmit_at"):
    setattr(Call, _name, _Deadline(_name))


class _CallTable(dict[str, Call]):
    """``CallBook.calls``: a call put in it has its deadlines, now and later, on the timer heap."""

    def __init__(self, schedule: Callable[[float, Call], None]) -> None:
        super().__init__()
        self._schedule = schedule

    def __setitem__(self, key: str, call: Call) -> None:
        super().__setitem__(key, call)
        call.__dict__["_schedule"] = self._schedule
        for when in (call.ring_deadline, call.ack_deadline, call.retransmit_at):
            if when is not None:
                self._schedule(when, call)


class CallBook:
    """The calls and every index leading to them."""

    def __init__(self) -> None:
        # every deadline of every call, soonest first: (when, sequence, call)
        self._timers: list[tuple[float, int, Call]] = []
        self._timer_seq = itertools.count()
        self.calls: dict[str, Call] = _CallTable(self._schedule)
        self.client: dict[int, Leg] = {}  # INVITE client transaction -> the leg it creates
        self.server: dict[int, Leg] = {}  # INVITE server transaction -> the caller's leg
        self.dialogs: dict[tuple[str, str], Leg] = {}  # (Call-ID, our tag) -> leg
        self.relays: dict[int, Relay] = {}
        self.byes: set[int] = set()
        # client transactions a controller started (re-INVITE, NOTIFY): final response (None: timed out)
        self.owned: dict[int, Callable[[Response | None, float], None]] = {}
        # transactions of finished calls stay known a while (late 487s, a 2xx crossing our CANCEL), then go
        self._linger: deque[tuple[float, list[int]]] = deque()

    def _schedule(self, when: float, call: Call) -> None:
        heapq.heappush(self._timers, (when, next(self._timer_seq), call))
        if len(self._timers) > 4 * len(self.calls) + 1024:
            # stale entries pile up (every answered call leaves its ring and ACK deadlines): drop them
            self._timers = [e for e in self._timers if self._live_timer(e[0], e[2])]
            heapq.heapify(self._timers)

    def _live_timer(self, when: float, call: Call) -> bool:
        return self.calls.get(call.id) is call and when in (call.ring_deadline, call.ack_deadline, call.retransmit_at)

    def next_deadline(self) -> float | None:
        timers = self._timers
        while timers and not self._live_timer(timers[0][0], timers[0][2]):
            heapq.heappop(timers)
        first = timers[0][0] if timers else None
        if self._linger and (first is None or self._linger[0][0] < first):
            first = self._linger[0][0]
        return first

    def due(self, now: float) -> list[Call]:
        """Forget the lingering transactions whose time is up; the calls with a deadline due."""
        while self._linger and self._linger[0][0] <= now:
            _when, tx_ids = self._linger.popleft()
            for tx_id in tx_ids:
                self.client.pop(tx_id, None)
                self.relays.pop(tx_id, None)
                self.byes.discard(tx_id)
        due: dict[int, Call] = {}
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _seq, call = heapq.heappop(timers)
            if self._live_timer(when, call):
                due.setdefault(id(call), call)
        return list(due.values())

    def forget(self, call: Call, now: float) -> None:
        """``call`` is finished: drop it and its dialogs; its transactions linger a while."""
        self.calls.pop(call.id, None)
        # a call's INVITE client transactions are its legs' (a leg moved to another call is that one's);
        # looking them up, not scanning client, which holds every call of the last LINGER seconds
        stale = [leg.tx_id for leg in call.legs() if leg.tx_id is not None and self.client.get(leg.tx_id) is leg]
        if self.relays:
            stale += [t for t, relay in self.relays.items() if relay.call is call]
        # forgotten in whole seconds: the calls ending within one second share one timer wake-up
        when = float(math.ceil(now + LINGER))
        if self._linger and self._linger[-1][0] == when:
            self._linger[-1][1].extend(stale)
        else:
            self._linger.append((when, stale))
        for leg in call.legs():
            if leg.dialog is not None:
                self.dialogs.pop(leg.dialog.key, None)
            if leg.tx_id is not None:
                self.server.pop(leg.tx_id, None)


def best_failure(statuses: list[int], last: Response) -> tuple[int, str | None]:
    """RFC 3261 16.7 in short: a 6xx wins, then busy, then the lowest class, 480 when nothing better."""
    six = [s for s in statuses if s >= 600]
    if six:
        return six[0], None
    if 486 in statuses:
        return 486, None
    if all(s in (408, 487, 480) for s in statuses):
        return 480, "Temporarily Unavailable (no answer)"
    four = [s for s in statuses if 400 <= s < 500 and s not in (401, 407, 408, 487)]
    if four:
        status = four[0]
        return status, last.reason if last.status == status else None
    return (statuses[0] if statuses else 480), None


def looks_like_number(dialed: str) -> bool:
    text = dialed.lstrip("+")
    return bool(text) and text.replace("*", "").replace("#", "").isdigit()
