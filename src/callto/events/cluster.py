"""Several nodes as one: which node holds which device session, and requests addressed to one node.

Runs only with Redis (``CALLTO_REDIS_URL``); without it a node is alone and none of this exists. Each node:

- writes the device sessions it holds (an event session of a web phone or Link that said ``hello``) to
  the registry: the sorted set ``<prefix>:sessions`` (and ``<prefix>:sessions:device:<id>`` per device),
  each entry scored with the time it expires. The holder refreshes its entries every
  :data:`REFRESH_SECONDS` and removes them when the session closes; a node that dies stops refreshing,
  so its sessions are gone from every view within :data:`SESSION_TTL` seconds;
- reads the other nodes' entries (every :data:`SYNC_SECONDS`, and at once when a node announces a change
  on ``<prefix>:sessions:changed``) into its :class:`~callto.directory.online.DeviceStatus`, so device
  online state, ``/api/v1/me``, presence and the directory agree on every node;
- answers requests addressed to it on ``<prefix>:node:<node id>`` (a command for one of its sessions, the
  hang-up of a call it placed), each on the asker's own channel and matched by a request id; the asker
  waits a bounded time (:class:`NodeLink`);
- keeps small JSON records for other nodes to read (a click-to-call call and the node that owns it),
  written in order by one writer and expiring by themselves (:meth:`Cluster.put`); a record changed
  several times before the writer runs (a click: added, ringing, answered as the 202 says) is built and
  encoded once, as it is when written (:meth:`Cluster.put_latest`);
- tells every other node what they should know at once, in order, on ``<prefix>:cluster``
  (:meth:`Cluster.broadcast`: e.g. the call states presence is derived from), and runs periodic work of
  other packages on its loop (:meth:`Cluster.every`).

Expiry times are the writers' wall clocks: the nodes' clocks must agree within a few seconds (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from callto.directory.online import DeviceStatus
from callto.errors import CalltoError
from callto.events.bus import EventBus
from callto.events.hub import CommandTimeout, NoSession, SessionHub

log = logging.getLogger(__name__)

SESSION_TTL = 15.0
REFRESH_SECONDS = 5.0
SYNC_SECONDS = 1.0
# What a node asking another waits beyond the command's own timeout: the holder answers within the
# command's timeout (an acknowledgement or command-timeout), so only a node that is gone runs into this.
REPLY_GRACE = 2.0
MAX_COMMAND_TIMEOUT = 30.0

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
BroadcastHandler = Callable[[str, dict[str, Any]], None]
# A record's value and time to live, built when it is written (see Cluster.put_latest)
RecordBuilder = Callable[[], tuple[dict[str, Any], float]]


class NodeUnreachable(CalltoError):
    status = 503
    error = "node-unreachable"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={**(details or {}), "retry_after": 2})


class NodeLink:
    """Requests addressed to one node by its id, answered on the asker's channel within a bounded wait."""

    def __init__(self, bus: EventBus, node: str) -> None:
        self.bus = bus
        self.node = node
        self.channel = self.channel_of(node)
        self._handlers: dict[str, Handler] = {}
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        bus.listen(self.channel, self._on_message)

    def channel_of(self, node: str) -> str:
        return f"{self.bus.prefix}:node:{node}"

    def handle(self, kind: str, handler: Handler) -> None:
        """Answer requests of ``kind`` with ``await handler(data)``: its result, or the CalltoError it raises."""
        self._handlers[kind] = handler

    async def request(
        self,
        node: str,
        kind: str,
        data: dict[str, Any],
        timeout: float,
        errors: dict[str, type[CalltoError]] | None = None,
    ) -> dict[str, Any]:
        """Ask ``node`` and wait at most ``timeout`` s. The holder's error comes back as the same error id,
        message and details (as the class in ``errors`` for its id); a node that is not listening, or
        does not answer in time, raises :class:`NodeUnreachable`."""
        if node == self.node:  # a record naming this node (e.g. from before its restart): answer here
            handler = self._handlers.get(kind)
            if handler is None:
                raise NodeUnreachable(f"no handler for {kind}", details={"node": node})
            return await handler(data)
        redis = self.bus.redis
        if redis is None or not self.bus.subscribed.is_set():
            raise NodeUnreachable("redis between the nodes is unreachable", details={"node": node})
        request_id = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            doc = json.dumps({"id": request_id, "from": self.node, "kind": kind, "data": data}, default=str)
            try:
                receivers = await redis.publish(self.channel_of(node), doc)
            except Exception as exc:
                raise NodeUnreachable(
                    f"redis between the nodes is unreachable ({exc.__class__.__name__})", details={"node": node}
                ) from exc
            if not receivers:
                raise NodeUnreachable(f"node {node} is not listening", details={"node": node})
            try:
                reply = await asyncio.wait_for(future, timeout)
            except TimeoutError as exc:
                raise NodeUnreachable(
                    f"node {node} did not answer in {timeout:g} s", details={"node": node}
                ) from exc
        finally:
            self._waiting.pop(request_id, None)
        error = reply.get("error")
        if isinstance(error, dict):
            cls = (errors or {}).get(str(error.get("error")), CalltoError)
            raise cls(
                str(error.get("message", "")),
                error=str(error.get("error", "bad-request")),
                status=int(reply.get("status", 400)),
                details=error.get("details") if isinstance(error.get("details"), dict) else {},
            )
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    def _on_message(self, raw: bytes) -> None:
        try:
            doc = json.loads(raw)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        if "reply_to" in doc:
            future = self._waiting.get(str(doc["reply_to"]))
            if future is not None and not future.done():
                future.set_result(doc)
            return
        task = asyncio.get_running_loop().create_task(self._answer(doc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, doc: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"reply_to": doc.get("id")}
        handler = self._handlers.get(str(doc.get("kind")))
        data = doc.get("data")
        try:
            if handler is None or not isinstance(data, dict):
                raise CalltoError(f"node {self.node} cannot answer {doc.get('kind')!r}", error="bad-request")
            reply["result"] = await handler(data)
        except CalltoError as exc:
            reply["error"], reply["status"] = exc.to_json(), exc.status
        except Exception as exc:
            log.exception("answering %s from node %s failed", doc.get("kind"), doc.get("from"))
            reply["error"] = {"error": "node-failed", "message": f"node {self.node} failed: {exc}", "details": {}}
            reply["status"] = 503
        redis = self.bus.redis
        if redis is None:
            return
        try:
            await redis.publish(self.channel_of(str(doc.get("from"))), json.dumps(reply, default=str))
        except Exception as exc:
            log.warning("answering node %s failed: %s", doc.get("from"), exc)


@dataclass(frozen=True)
class SessionEntry:
    """A device session in the registry: which node holds it."""

    node: str
    session_id: str
    user_id: int
    device_id: int

    @property
    def member(self) -> str:
        return f"{self.node}\t{self.session_id}\t{self.user_id}\t{self.device_id}"

    @property
    def source(self) -> str:
        """Its name among the device's online sources (a local session is ``session:<id>``)."""
        return f"session:{self.node}:{self.session_id}"

    @classmethod
    def parse(cls, member: str | bytes) -> SessionEntry | None:
        text = member.decode() if isinstance(member, bytes) else member
        parts = text.split("\t")
        if len(parts) != 4:
            return None
        try:
            return cls(parts[0], parts[1], int(parts[2]), int(parts[3]))
        except ValueError:
            return None


class Cluster:
    """This node's part of the cluster (started and stopped with the server, after the bus)."""

    def __init__(
        self, bus: EventBus, hub: SessionHub, status: DeviceStatus, node: str, *,
        session_ttl: float = SESSION_TTL, refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.bus = bus
        self.session_ttl = session_ttl
        self.refresh_seconds = refresh_seconds
        self.hub = hub
        self.status = status
        self.node = node
        self.link = NodeLink(bus, node)
        self.sessions_key = f"{bus.prefix}:sessions"
        self.changed_channel = f"{bus.prefix}:sessions:changed"
        self._local: dict[str, SessionEntry] = {}  # session id -> this node's entry
        self._gone: dict[str, SessionEntry] = {}  # members to remove from the registry
        self._local_dirty = False
        self._view: dict[str, tuple[SessionEntry, float]] = {}  # other nodes' entries -> expiry
        self._held: Counter[tuple[int, int]] = Counter()  # (user, device) -> entries in _view, for holds()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        # Records for other nodes (put): key -> what builds (value, ttl), written in order by one task.
        self._puts: dict[str, RecordBuilder] = {}
        self._put_wake = asyncio.Event()
        self._put_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # Broadcasts to the other nodes, sent in order by one task; handlers of theirs by kind.
        self.broadcast_channel = f"{bus.prefix}:cluster"
        self._broadcasts: asyncio.Queue[str] | None = None
        self._broadcast_task: asyncio.Task[None] | None = None
        self._broadcast_handlers: dict[str, BroadcastHandler] = {}
        self._periodic: list[tuple[float, Callable[[], None]]] = []
        self._due: list[float] = []
        hub.on_device_session(self._device_session)
        hub.attach_cluster(self)
        bus.listen(self.changed_channel, self._on_changed)
        bus.listen(self.broadcast_channel, self._on_broadcast)
        self.link.handle("session.command", self._remote_command)

    def device_key(self, device_id: int) -> str:
        return f"{self.bus.prefix}:sessions:device:{device_id}"

    def key(self, *parts: str) -> str:
        return ":".join((self.bus.prefix, *parts))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        # fresh ones on this loop (an asyncio.Event belongs to the loop it was first awaited on)
        self._wake, self._put_wake = asyncio.Event(), asyncio.Event()
        self._local_dirty = self._local_dirty or bool(self._local or self._gone)
        if self._puts:
            self._put_wake.set()
        self._task = asyncio.create_task(self._run(), name="cluster-sessions")
        self._put_task = asyncio.create_task(self._write_records(), name="cluster-records")
        self._broadcasts = asyncio.Queue()
        self._broadcast_task = asyncio.create_task(self._send_broadcasts(self._broadcasts), name="cluster-broadcast")

    async def stop(self) -> None:
        for task in (self._task, self._put_task, self._broadcast_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        # A node that stops takes its sessions out at once (one that dies: within SESSION_TTL).
        for entry in self._local.values():
            self._gone[entry.member] = entry
        self._local.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._write(), 2)
        self._loop = None

    # the registry: this node's sessions
    def _device_session(self, user_id: int, device_id: int, session_id: str, online: bool) -> None:
        entry = SessionEntry(self.node, session_id, user_id, device_id)
        if online:
            self._local[session_id] = entry
            self._gone.pop(entry.member, None)
        else:
            known = self._local.get(session_id)
            if known is not None and known.device_id == device_id:
                del self._local[session_id]
            self._gone[entry.member] = entry
        self._local_dirty = True
        self._wake.set()

    async def _run(self) -> None:
        next_refresh = 0.0
        while True:
            self._wake.clear()
            try:
                if self._local_dirty or time.monotonic() >= next_refresh:
                    changed, self._local_dirty = self._local_dirty, False
                    await self._write(announce=changed)
                    next_refresh = time.monotonic() + self.refresh_seconds
                await self._sync()
                if self._failing:
                    log.warning("the session registry in redis is reachable again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._local_dirty = True  # written again once Redis is back
                if not self._failing:
                    log.error("the session registry in redis failed (%s); retrying", exc)
                self._failing = True
            self._expire_view()
            self._run_periodic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SYNC_SECONDS)

    async def _write(self, announce: bool = True) -> None:
        """Write this node's sessions with a new expiry and remove the closed ones; with ``announce``
        (something changed, not only a refresh), tell the other nodes to read the registry now."""
        redis = self.bus.redis
        if redis is None:
            return
        gone = dict(self._gone)
        local = list(self._local.values())
        now = time.time()
        expires = now + self.session_ttl
        pipe = redis.pipeline(transaction=False)
        for member, entry in gone.items():
            pipe.zrem(self.sessions_key, member)
            pipe.zrem(self.device_key(entry.device_id), member)
        for entry in local:
            pipe.zadd(self.sessions_key, {entry.member: expires})
            pipe.zadd(self.device_key(entry.device_id), {entry.member: expires})
            pipe.expire(self.device_key(entry.device_id), int(self.session_ttl) + 5)
        pipe.zremrangebyscore(self.sessions_key, "-inf", now - 60)  # entries of nodes long gone
        await pipe.execute()
        for member in gone:
            if self._gone.get(member) is gone[member]:
                del self._gone[member]
        if announce and (gone or local):
            await redis.publish(self.changed_channel, self.node)

    # periodic work and broadcasts
    def every(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the loop about every ``seconds`` (at least a second) while started."""
        self._periodic.append((max(seconds, SYNC_SECONDS), callback))
        self._due.append(0.0)

    def _run_periodic(self) -> None:
        now = time.monotonic()
        for index, (seconds, callback) in enumerate(self._periodic):
            if now >= self._due[index]:
                self._due[index] = now + seconds
                try:
                    callback()
                except Exception:
                    log.exception("periodic cluster work failed")

    def on_broadcast(self, kind: str, handler: BroadcastHandler) -> None:
        """``handler(node, data)`` on the loop for each broadcast of ``kind`` from another node."""
        self._broadcast_handlers[kind] = handler

    def broadcast(self, kind: str, data: dict[str, Any]) -> None:
        """Tell every other node, soon and in the order of the calls; from any thread. Lost while Redis
        is down (what is broadcast again periodically heals by itself)."""
        text = json.dumps({"from": self.node, "kind": kind, "data": data}, default=str)
        loop, queue = self._loop, self._broadcasts
        if loop is None or queue is None:
            return
        if threading.get_ident() == self._loop_thread:
            queue.put_nowait(text)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, text)

    async def _send_broadcasts(self, queue: asyncio.Queue[str]) -> None:
        while True:
            text = await queue.get()
            redis = self.bus.redis
            if redis is None:
                continue
            try:
                await redis.publish(self.broadcast_channel, text)
            except Exception as exc:
                log.debug("broadcast lost (%s)", exc)

    def _on_broadcast(self, raw: bytes) -> None:
        try:
            doc = json.loads(raw)
        except ValueError:
            return
        if not isinstance(doc, dict) or doc.get("from") == self.node or not isinstance(doc.get("data"), dict):
            return
        handler = self._broadcast_handlers.get(str(doc.get("kind")))
        if handler is not None:
            handler(str(doc.get("from")), doc["data"])

    # the registry: the other nodes' sessions
    def _on_changed(self, data: bytes) -> None:
        if data.decode(errors="replace") != self.node:
            self._wake.set()

    async def _sync(self) -> None:
        redis = self.bus.redis
        if redis is None:
            return
        rows = await redis.zrangebyscore(self.sessions_key, time.time(), "+inf", withscores=True)
        seen: dict[str, tuple[SessionEntry, float]] = {}
        for raw, score in rows:
            entry = SessionEntry.parse(raw)
            if entry is None:
                continue
            if entry.node == self.node:
                if self._local.get(entry.session_id) != entry and entry.member not in self._gone:
                    # left by this node's previous run (its sessions died with it)
                    self._gone[entry.member] = entry
                    self._local_dirty = True
                continue
            seen[entry.member] = (entry, float(score))
        self._apply(seen)

    def _apply(self, seen: dict[str, tuple[SessionEntry, float]]) -> None:
        """Take in the other nodes' sessions. Their own node told the users of a session opening or closing
        (``device.online`` / ``device.offline`` reach every node): this node only updates its state, except
        for sessions that expired, whose node can no longer tell anyone."""
        view, now = self._view, time.time()
        held = self._held
        for member in [m for m in view if m not in seen]:
            entry, expires = view.pop(member)
            pair = (entry.user_id, entry.device_id)
            held[pair] -= 1
            if held[pair] <= 0:
                del held[pair]
            self.status.set(entry.user_id, entry.device_id, entry.source, False, announce=expires < now)
        for member, (entry, expires) in seen.items():
            known = member in view
            view[member] = (entry, expires)
            if not known:
                held[(entry.user_id, entry.device_id)] += 1
                self.status.set(
                    entry.user_id, entry.device_id, entry.source, True, {"via": "events", "node": entry.node},
                    announce=False,
                )

    def _expire_view(self) -> None:
        """Sessions not refreshed in time are gone, also while Redis cannot be read."""
        now = time.time()
        if any(v[1] < now for v in self._view.values()):
            self._apply({m: v for m, v in self._view.items() if v[1] >= now})

    def holds(self, user_id: int, device_id: int) -> bool:
        """Whether another node holds a session of this device, as last read."""
        return (user_id, device_id) in self._held  # kept with _view: a look-up, not a scan per command

    async def _sessions_of_device(self, device_id: int) -> list[tuple[SessionEntry, float]]:
        redis = self.bus.redis
        try:
            rows = await redis.zrangebyscore(self.device_key(device_id), time.time(), "+inf", withscores=True)
        except Exception:
            return [v for v in self._view.values() if v[0].device_id == device_id]
        out = []
        for raw, score in rows:
            entry = SessionEntry.parse(raw)
            if entry is not None:
                out.append((entry, float(score)))
        return out

    # commands to a session on another node
    async def command(
        self, user_id: int, device_id: int, kind: str, data: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Send the command to the device's session on the node that holds it (none here): the same
        acknowledgement, or the same error, as on that node."""
        candidates = [
            (entry, expires) for entry, expires in await self._sessions_of_device(device_id)
            if entry.user_id == user_id and entry.node != self.node
        ]
        if not candidates:
            raise NoSession("the device has no connected session", details={"device_id": device_id})
        target = max(candidates, key=lambda c: c[1])[0]
        request = {"user_id": user_id, "device_id": device_id, "kind": kind, "data": data, "timeout": timeout}
        try:
            return await self.link.request(
                target.node, "session.command", request, timeout + REPLY_GRACE,
                errors={NoSession.error: NoSession, CommandTimeout.error: CommandTimeout},
            )
        except NodeUnreachable as exc:
            raise NoSession(
                "the device's session is on a node that does not answer",
                details={"device_id": device_id, "node": target.node},
            ) from exc

    async def _remote_command(self, request: dict[str, Any]) -> dict[str, Any]:
        timeout = min(float(request.get("timeout", 3.0)), MAX_COMMAND_TIMEOUT)
        data = request.get("data")
        return await self.hub.command(
            int(request["user_id"]), int(request["device_id"]), str(request["kind"]),
            data if isinstance(data, dict) else {}, timeout, local_only=True,
        )

    # records for other nodes
    def put(self, key: str, value: dict[str, Any], ttl: float) -> None:
        """Write ``value`` (JSON) under ``key`` for ``ttl`` s, soon and in order; from any thread. A newer
        value of the same key before the write replaces the older one. ``value`` is encoded when written:
        the caller hands it over and does not change it afterwards."""
        self.put_latest(key, lambda: (value, ttl))

    def put_latest(self, key: str, build: RecordBuilder) -> None:
        """Write what ``build()`` returns, (value, ttl), under ``key``, soon and in order; from any thread.
        ``build`` is called on the loop when the record is written (or read through :meth:`get` before),
        so changes made before the write cost one build and one JSON encoding, not one each."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._queue_put(key, build)
        else:
            loop.call_soon_threadsafe(self._queue_put, key, build)

    def _queue_put(self, key: str, build: RecordBuilder) -> None:
        self._puts[key] = build
        self._put_wake.set()

    @staticmethod
    def _encoded(build: RecordBuilder) -> tuple[str, int]:
        value, ttl = build()
        return json.dumps(value, default=str), max(int(ttl), 1)

    async def get(self, key: str) -> dict[str, Any] | None:
        """A record another node (or this one) put; None when there is none. Redis errors propagate."""
        redis = self.bus.redis
        if redis is None:
            return None
        pending = self._puts.get(key)
        if pending is not None:
            value = json.loads(self._encoded(pending)[0])  # a copy, as read back from Redis
        else:
            raw = await redis.get(key)
            value = None if raw is None else json.loads(raw)
        return value if isinstance(value, dict) else None

    async def _write_records(self) -> None:
        backoff = 0.5
        while True:
            await self._put_wake.wait()
            self._put_wake.clear()
            batch, self._puts = self._puts, {}
            if not batch or self.bus.redis is None:
                continue
            try:
                pipe = self.bus.redis.pipeline(transaction=False)
                for key, build in batch.items():
                    try:
                        text, ttl = self._encoded(build)
                    except Exception:  # one bad record must not hold back the others, nor come back forever
                        log.exception("the record %s could not be encoded; not written", key)
                        continue
                    pipe.set(key, text, ex=ttl)
                await pipe.execute()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("writing %d records to redis failed (%s); retrying", len(batch), exc)
                for key, value in batch.items():
                    self._puts.setdefault(key, value)  # unless a newer value came meanwhile
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._put_wake.set()
