"""Click-to-call calls in flight: their state, their attempts, and the events that report them.

With several nodes, each call is also a record in Redis (``<prefix>:call:<id>``: the owning node, the
user and the call as the API shows it), rewritten on every change, so any node can answer for it and
send its hang-up to the owner (see :class:`~callto.dialer.service.DialerService`). A call's progress may
be seen by the switch of another node (a web phone registered there places the clicked call): that
node knows the call from its ``call.dialing`` event and passes the news on to the owner, which alone
changes the call and reports it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from callto.dialer.events import ClickProgress
from callto.dialer.numbers import Number, NumberKind
from callto.events.bus import Event, EventBus

if TYPE_CHECKING:
    from callto.events.cluster import Cluster

log = logging.getLogger(__name__)

TERMINAL = {"ended", "failed"}
KEEP_ENDED_SECONDS = 600
# A call's record while it is not over: long enough for any call, and gone by itself if its node dies.
KEEP_ACTIVE_SECONDS = 12 * 3600
REMOTE_KEPT = 10_000  # other nodes' calls known here (oldest forgotten first)
FORWARD_TIMEOUT = 3.0


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

    def __init__(self, bus: EventBus, cluster: Cluster | None = None) -> None:
        self.bus = bus
        self.cluster = cluster
        self._calls: dict[str, ClickCall] = {}
        self._ended: deque[tuple[float, str]] = deque()  # (ended_monotonic, id), oldest first
        self._lock = threading.Lock()
        self._unannounced: set[str] = set()  # added with announce=False, ``call.dialing`` not yet sent
        # Other nodes' calls, as their ``call.dialing`` told (with a cluster): news of them is forwarded.
        self._remote: dict[str, ClickCall] = {}
        self._forwards: asyncio.Queue[tuple[str, str, str, dict[str, Any]]] | None = None
        self._forwarder: asyncio.Task[None] | None = None
        if cluster is not None:
            bus.subscribe(self._on_event)
            cluster.link.handle("call.update", self._update_for_node)

    def add(self, call: ClickCall, *, announce: bool = True) -> None:
        """Keep ``call`` and publish ``call.dialing``; with ``announce=False`` the event waits for
        :meth:`announce` (or goes out first thing before the call's next event), so a click's INVITE can
        leave before the event is built: with 50 clicks at once every microsecond before the INVITE
        delays all the clicks behind it."""
        with self._lock:
            self._prune()
            self._calls[call.id] = call
        self.share(call)
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
        """A call of this node or, with a cluster, one another node placed (as far as its events told)."""
        return self._calls.get(call_id) or self._remote.get(call_id)

    def local(self, call_id: str) -> ClickCall | None:
        """A call placed through this node."""
        return self._calls.get(call_id)

    def update(self, call_id: str, state: str, reason: str = "", **data: Any) -> ClickCall | None:
        """Move a call on (``ringing``, ``answered``, ``ended``, ``failed``); late or repeated news is ignored.
        News of another node's call goes to that node."""
        call = self._calls.get(call_id)
        if call is None:
            remote = self._remote.get(call_id)
            if remote is not None and remote.state not in TERMINAL and remote.state != state:
                remote.state = state
                self._forward(call_id, state, reason, data)
            return remote
        if call.state in TERMINAL or call.state == state:
            return call
        call.state = state
        if reason:
            call.reason = reason
        if state in TERMINAL:
            call.ended_monotonic = time.monotonic()
            self._ended.append((call.ended_monotonic, call.id))
        self.share(call)
        self._publish(call, "call.ended" if state == "failed" else f"call.{state}", **data)
        return call

    def share(self, call: ClickCall) -> None:
        """Write the call's record for the other nodes (with a cluster; on one node, nothing)."""
        cluster = self.cluster
        if cluster is None:
            return
        node = cluster.node

        def record() -> tuple[dict[str, Any], float]:
            # built when written: a click shares its call three or four times before the writer runs
            # (added, ringing, as the 202 says), and only the latest is ever written
            ttl = KEEP_ENDED_SECONDS if call.state in TERMINAL else KEEP_ACTIVE_SECONDS
            return {"node": node, "user_id": call.user_id, "call": call.to_json()}, ttl

        cluster.put_latest(self.record_key(call.id), record)

    # other nodes' calls
    def _on_event(self, event: Event) -> None:
        if not event.type.startswith("call."):
            return
        data = event.data
        call_id = data.get("call_id")
        if not isinstance(call_id, str) or call_id in self._calls:
            return
        if event.type == "call.ended":
            self._remote.pop(call_id, None)
        elif event.type == "call.dialing" and event.users is not None and len(event.users) == 1:
            try:
                doc = data["number"]
                number = Number(
                    kind=NumberKind(doc["kind"]), dialed=str(doc["dialed"]), e164=doc.get("e164"),
                    display=str(doc.get("display", "")), extension=doc.get("extension"),
                )
            except (KeyError, TypeError, ValueError):
                return
            if len(self._remote) >= REMOTE_KEPT:
                self._remote.pop(next(iter(self._remote)))
            (user_id,) = event.users
            self._remote[call_id] = ClickCall(
                user_id=user_id, to=str(data.get("to", "")), number=number,
                device_id=data.get("device_id", ""), device_kind="", id=call_id,
            )

    def _forward(self, call_id: str, state: str, reason: str, data: dict[str, Any]) -> None:
        if state in TERMINAL:
            self._remote.pop(call_id, None)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("news of call %s from outside the event loop is dropped", call_id)
            return
        if self._forwards is None:
            self._forwards = asyncio.Queue()
        if self._forwarder is None or self._forwarder.done():
            self._forwarder = loop.create_task(self._forward_loop(self._forwards), name="calls-forward")
        self._forwards.put_nowait((call_id, state, reason, data))

    async def _forward_loop(self, queue: asyncio.Queue[tuple[str, str, str, dict[str, Any]]]) -> None:
        """One at a time, so the owner hears a call's news in the order it happened."""
        while True:
            call_id, state, reason, data = await queue.get()
            try:
                record = await self.record(call_id)
                if record is None or self.cluster is None:
                    continue
                await self.cluster.link.request(
                    str(record["node"]), "call.update",
                    {"call_id": call_id, "state": state, "reason": reason, "data": data}, FORWARD_TIMEOUT,
                )
            except Exception as exc:
                log.warning("passing on news of call %s to its node failed: %s", call_id, exc)

    async def _update_for_node(self, request: dict[str, Any]) -> dict[str, Any]:
        data = request.get("data")
        call_id = str(request.get("call_id"))
        if call_id not in self._calls:
            return {"ok": False}
        extra = {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}
        self.update(call_id, str(request.get("state")), str(request.get("reason") or ""), **extra)
        return {"ok": True}

    def record_key(self, call_id: str) -> str:
        assert self.cluster is not None
        return self.cluster.key("call", call_id)

    async def record(self, call_id: str) -> dict[str, Any] | None:
        """The shared record of a call placed through any node, or None (also on one node)."""
        if self.cluster is None:
            return None
        return await self.cluster.get(self.record_key(call_id))

    def _publish(self, call: ClickCall, kind: str, **data: Any) -> None:
        if self._unannounced and kind != "call.dialing" and call.id in self._unannounced:
            self.announce(call.id)  # events keep their order: dialing before anything else
        # "state" and "strategy" in data stand for the call's own (a held-back call.dialing: as it was)
        state = str(data.pop("state", call.state))
        strategy = data.pop("strategy") if "strategy" in data else call.strategy
        event = ClickProgress(
            phase=kind.removeprefix("call."), call_id=call.id, state=state, to=call.to,
            number=call.number.to_json(), device_id=call.device_id, strategy=strategy,
            reason=call.reason or call.state, details=data,
        )
        self.bus.publish(Event.of(event, frozenset({call.user_id})))

    def _prune(self) -> None:
        # Oldest ended calls first: this costs nothing when there is nothing to drop, instead of a scan
        # of every call kept (thousands under load) on every click.
        now = time.monotonic()
        ended = self._ended
        while ended and now - ended[0][0] > KEEP_ENDED_SECONDS:
            self._calls.pop(ended.popleft()[1], None)
