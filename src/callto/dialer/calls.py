"""Click-to-call calls in flight: their state, their attempts, and the events that report them."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callto.dialer.numbers import Number
from callto.events.bus import Event, EventBus

TERMINAL = {"ended", "failed"}
KEEP_ENDED_SECONDS = 600


@dataclass
class Attempt:
    strategy: str
    outcome: str = "pending"  # ok | failed | skipped
    reason: str = ""
    elapsed_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "outcome": self.outcome,
            "reason": self.reason,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


@dataclass
class ClickCall:
    user_id: int
    to: str
    number: Number
    device_id: int | str
    device_kind: str
    id: str = field(default_factory=lambda: "c2c-" + secrets.token_hex(8))
    state: str = "dialing"
    strategy: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    reason: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_monotonic: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.id,
            "state": self.state,
            "to": self.to,
            "device_id": self.device_id,
            "device_kind": self.device_kind,
            "strategy": self.strategy,
            "attempts": [a.to_json() for a in self.attempts],
            "number": self.number.to_json(),
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
        }


class CallBook:
    """The calls of this node, and ``call.*`` events as they change."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._calls: dict[str, ClickCall] = {}
        self._ended: deque[tuple[float, str]] = deque()  # (ended_monotonic, id), oldest first
        self._lock = threading.Lock()
        self._unannounced: set[str] = set()  # added with announce=False, ``call.dialing`` not yet sent

    def add(self, call: ClickCall, *, announce: bool = True) -> None:
        """Keep ``call`` and publish ``call.dialing``; with ``announce=False`` the event waits for
        :meth:`announce` (or goes out first thing before the call's next event), so a click's INVITE can
        leave before the event is built: with 50 clicks at once every microsecond before the INVITE
        delays all the clicks behind it."""
        with self._lock:
            self._prune()
            self._calls[call.id] = call
        if announce:
            self._publish(call, "call.dialing")
        else:
            self._unannounced.add(call.id)

    def announce(self, call_id: str) -> None:
        """Publish the ``call.dialing`` held back by ``add(..., announce=False)``, unless already sent."""
        if call_id in self._unannounced:
            self._unannounced.discard(call_id)
            call = self._calls.get(call_id)
            if call is not None:
                # as it was when added: later news is its own event
                self._publish(call, "call.dialing", state="dialing", strategy=None)

    def get(self, call_id: str) -> ClickCall | None:
        return self._calls.get(call_id)

    def update(self, call_id: str, state: str, reason: str = "", **data: Any) -> ClickCall | None:
        """Move a call on (``ringing``, ``answered``, ``ended``, ``failed``); late or repeated news is ignored."""
        call = self._calls.get(call_id)
        if call is None or call.state in TERMINAL or call.state == state:
            return call
        call.state = state
        if reason:
            call.reason = reason
        if state in TERMINAL:
            call.ended_monotonic = time.monotonic()
            self._ended.append((call.ended_monotonic, call.id))
        self._publish(call, "call.ended" if state == "failed" else f"call.{state}", **data)
        return call

    def _publish(self, call: ClickCall, kind: str, **data: Any) -> None:
        if self._unannounced and kind != "call.dialing" and call.id in self._unannounced:
            self.announce(call.id)  # events keep their order: dialing before anything else
        payload = {
            "call_id": call.id,
            "state": call.state,
            "to": call.to,
            "number": call.number.to_json(),
            "device_id": call.device_id,
            "strategy": call.strategy,
            **data,
        }
        if kind == "call.ended":
            payload["reason"] = call.reason or call.state
        self.bus.publish(Event(kind, payload, frozenset({call.user_id})))

    def _prune(self) -> None:
        # Oldest ended calls first: this costs nothing when there is nothing to drop, instead of a scan
        # of every call kept (thousands under load) on every click.
        now = time.monotonic()
        ended = self._ended
        while ended and now - ended[0][0] > KEEP_ENDED_SECONDS:
            self._calls.pop(ended.popleft()[1], None)
