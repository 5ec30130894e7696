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

    def add(self, call: ClickCall) -> None:
        with self._lock:
            self._prune()
            self._calls[call.id] = call
        self._publish(call, "call.dialing")

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
