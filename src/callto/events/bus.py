"""The event bus: publish from any thread, deliver on the event loop, optionally through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "callto:events"


@dataclass(frozen=True)
class Event:
    """A typed event for some users (``users=None``: every connected user, e.g. presence)."""

    type: str
    data: dict[str, Any]
    users: frozenset[int] | None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def wire(self) -> dict[str, Any]:
        return {"type": self.type, "at": self.at.isoformat(), "data": self.data}

    def encode(self) -> str:
        users = None if self.users is None else sorted(self.users)
        return json.dumps({"event": self.wire(), "users": users}, separators=(",", ":"), default=str)

    @classmethod
    def decode(cls, raw: str | bytes) -> Event:
        doc = json.loads(raw)
        ev = doc["event"]
        users = doc.get("users")
        return cls(
            type=ev["type"],
            data=ev["data"],
            users=None if users is None else frozenset(int(u) for u in users),
            at=datetime.fromisoformat(ev["at"]),
        )


Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers on the loop; with ``redis_url`` every node sees every event."""

    def __init__(self, redis_url: str = "") -> None:
        self.redis_url = redis_url
        self._subscribers: list[Subscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._pending: list[Event] = []

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url)
            pubsub = self._redis.pubsub()
            await pubsub.subscribe(CHANNEL)
            self._listener = asyncio.create_task(self._listen(pubsub), name="events-redis")
        pending, self._pending = self._pending, []
        for event in pending:
            self.publish(event)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._redis is not None:
            await self._redis.aclose()
        self._loop = None

    def publish(self, event: Event) -> None:
        """Publish from the loop or from any worker thread; never blocks and never raises."""
        loop = self._loop
        if loop is None:
            self._pending.append(event)
            return
        if threading.get_ident() == self._loop_thread:
            self._dispatch(event)
        else:
            loop.call_soon_threadsafe(self._dispatch, event)

    def _dispatch(self, event: Event) -> None:
        if self._redis is not None:
            task = asyncio.ensure_future(self._redis.publish(CHANNEL, event.encode()))
            task.add_done_callback(_log_failure)
            return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed on %s", event.type)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    self._deliver(Event.decode(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis event listener failed; retrying")
                await asyncio.sleep(1.0)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("publishing an event to redis failed: %s", task.exception())
