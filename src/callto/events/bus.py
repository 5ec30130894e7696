"""The event bus: publish from any thread, deliver on the event loop, optionally through Redis.

With Redis, an event is delivered to this node's subscribers at once and published on the deployment's
channel (``<prefix>:events``) for the other nodes, each message tagged with the sending node so it is not
delivered twice here. A Redis outage therefore never silences a node towards its own sessions; what the
other nodes miss while Redis is down is lost (events are not queued: the database keeps the truth, and
clients re-read it when they reconnect). The listener reconnects by itself, and :attr:`EventBus.healthy`
says whether Redis is reachable.

Other parts of the cluster (:mod:`callto.events.cluster`) ride on the same connection: :meth:`EventBus.listen`
adds a raw channel to the one subscription, and :attr:`EventBus.redis` is the client for their keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "callto"


class FeatureEvent(Protocol):
    """What a feature publishes, as typed in its own ``events.py``: the wire name (``kind``, a ``ClassVar``
    for most) and the fields clients, Link and webhooks read (:meth:`to_dict`, the event's ``data``)."""

    @property
    def kind(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Event:
    """A typed event for some users (``users=None``: every connected user, e.g. presence)."""

    type: str
    data: dict[str, Any]
    users: frozenset[int] | None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of(cls, event: FeatureEvent, users: frozenset[int] | None) -> Event:
        """The bus's envelope of a feature's typed event, for ``users`` (None: every connected user)."""
        return cls(event.kind, event.to_dict(), users)

    def wire(self) -> dict[str, Any]:
        return {"type": self.type, "at": self.at.isoformat(), "data": self.data}

    def encode(self, node: str = "") -> str:
        users = None if self.users is None else sorted(self.users)
        doc = {"event": self.wire(), "users": users, "node": node}
        return json.dumps(doc, separators=(",", ":"), default=str)

    @classmethod
    def decode(cls, raw: str | bytes) -> Event:
        return cls.from_doc(json.loads(raw))

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Event:
        ev = doc["event"]
        users = doc.get("users")
        return cls(
            type=ev["type"],
            data=ev["data"],
            users=None if users is None else frozenset(int(u) for u in users),
            at=datetime.fromisoformat(ev["at"]),
        )


Subscriber = Callable[[Event], None]
ChannelListener = Callable[[bytes], None]


class EventBus:
    """Fan-out of events to subscribers on the loop; with ``redis_url`` every node sees every event."""

    def __init__(self, redis_url: str = "", prefix: str = DEFAULT_PREFIX) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.channel = f"{prefix}:events"
        self.node = secrets.token_hex(6)
        # False while Redis cannot be reached (health reports it); always True without Redis.
        self.healthy = True
        self._subscribers: list[Subscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._pending: list[Event] = []
        self._channels: dict[str, ChannelListener] = {}
        # Set while the listener is subscribed (tests and the cluster wait for it instead of sleeping).
        self.subscribed = asyncio.Event()
        # True while subscribers get an event another node published (it told its own listeners already).
        self.delivering_remote = False

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    def listen(self, channel: str, callback: ChannelListener) -> None:
        """Also subscribe to the raw Redis ``channel`` (before :meth:`start`): ``callback(data)`` on the loop
        for each message, whoever sent it. Without Redis nothing ever arrives."""
        self._channels[channel] = callback

    @property
    def redis(self) -> Any:
        """The Redis client (``redis.asyncio``) once started with a Redis URL, else None."""
        return self._redis

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.subscribed = asyncio.Event()  # of this loop (a restart in another loop gets its own)
        if self.redis_url:
            import redis.asyncio as aioredis
            from redis.exceptions import ConnectionError as RedisConnectionError

            # retry_on_error: after Redis restarted, the pool's first use of each old connection fails
            # ("Connection closed by server"); redis-py retries a command on a fresh one only when told.
            self._redis = aioredis.from_url(
                self.redis_url, socket_timeout=5, socket_connect_timeout=2, retry_on_error=[RedisConnectionError]
            )
            self._listener = asyncio.create_task(self._listen(), name="events-redis")
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
        self._deliver(event)
        if self._redis is not None:
            task = asyncio.ensure_future(self._redis.publish(self.channel, event.encode(self.node)))
            task.add_done_callback(self._published)

    def _published(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            if self.healthy:
                log.error("publishing events to redis failed (%s); other nodes miss them until it is back", error)
            self.healthy = False

    def _deliver(self, event: Event) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed on %s", event.type)

    def _on_channel(self, channel: str, data: bytes) -> None:
        callback = self._channels.get(channel)
        if callback is None:
            return
        try:
            callback(data)
        except Exception:
            log.exception("listener of redis channel %s failed", channel)

    async def _listen(self) -> None:
        """Subscribe and deliver other nodes' events; on any failure, log once, wait and subscribe anew."""
        backoff = 0.5
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel, *self._channels)
                self.subscribed.set()
                if not self.healthy:
                    log.warning("redis is reachable again; events between nodes flow again")
                self.healthy = True
                backoff = 0.5
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        continue
                    channel = message["channel"]
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    if channel != self.channel:
                        self._on_channel(channel, message["data"])
                        continue
                    doc = json.loads(message["data"])
                    if doc.get("node") == self.node:
                        continue  # delivered here already, when it was published
                    self.delivering_remote = True
                    try:
                        self._deliver(Event.from_doc(doc))
                    finally:
                        self.delivering_remote = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.healthy:
                    log.error("redis event listener lost its connection (%s); retrying", exc)
                self.healthy = False
                self.subscribed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
