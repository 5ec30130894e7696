"""Several nodes on the real Redis: a device session held by one node is online on the other, a command
sent to the other node reaches it and comes back with the same acknowledgement or the same error, a node
that dies takes its sessions with it within their TTL, and a click-to-call call is readable from every
node, its news seen by another node's switch reaching the node that owns it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from callto.dialer.calls import CallBook, ClickCall
from callto.dialer.dialplan import DialPlan
from callto.dialer.numbers import normalize
from callto.directory.online import DeviceStatus
from callto.events.bus import EventBus
from callto.events.cluster import Cluster, SessionEntry
from callto.events.hub import ClientSession, CommandTimeout, NoSession, SessionHub

pytestmark = pytest.mark.timeout(30)

USER, DEVICE = 7, 70


@dataclass
class Node:
    bus: EventBus
    hub: SessionHub
    status: DeviceStatus
    cluster: Cluster


async def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


@asynccontextmanager
async def _node(redis_url: str, prefix: str, name: str, ttl: float = 15.0) -> AsyncIterator[Node]:
    bus = EventBus(redis_url, prefix)
    hub = SessionHub()
    status = DeviceStatus(bus)
    cluster = Cluster(bus, hub, status, name, session_ttl=ttl, refresh_seconds=ttl / 3)
    hub.on_device_session(lambda u, d, s, online: status.set(u, d, f"session:{s}", online))
    await bus.start()
    await cluster.start()
    await asyncio.wait_for(bus.subscribed.wait(), 5)
    try:
        yield Node(bus, hub, status, cluster)
    finally:
        await cluster.stop()
        await bus.stop()


async def _next_command(session: ClientSession, timeout: float = 5.0) -> dict[str, Any]:
    import json

    text = await asyncio.wait_for(session.queue.get(), timeout)
    assert text is not None
    message: dict[str, Any] = json.loads(text)
    return message


def _prefix() -> str:
    return f"callto:test-cluster-{secrets.token_hex(4)}"


def test_a_session_on_one_node_is_online_on_the_other_and_gets_its_commands(redis_url: str) -> None:
    async def scenario() -> None:
        prefix = _prefix()
        async with _node(redis_url, prefix, "node-a") as a, _node(redis_url, prefix, "node-b") as b:
            session = a.hub.open(USER)
            a.hub.bind_device(session, DEVICE)
            assert await _until(lambda: b.status.is_online(DEVICE), 3), "node B sees the session held by A"
            (info,) = b.status.sources(DEVICE).values()
            assert info["node"] == "node-a" and info["via"] == "events"
            assert b.hub.reachable(USER, DEVICE) and not b.hub.reachable(USER + 1, DEVICE)

            # A command on B: delivered to the session on A, and A's acknowledgement comes back.
            sent = asyncio.ensure_future(b.hub.command(USER, DEVICE, "dial", {"to": "100"}, 2.0))
            message = await _next_command(session)
            assert message["type"] == "dial" and message["data"]["to"] == "100"
            assert a.hub.acknowledge(session, {"command_id": message["data"]["command_id"], "ok": True})
            ack = await asyncio.wait_for(sent, 5)
            assert ack["ok"] is True and ack["session_id"] == session.id

            # No acknowledgement: the same error as on A, in about the command's own time.
            started = time.monotonic()
            with pytest.raises(CommandTimeout) as remote:
                await b.hub.command(USER, DEVICE, "dial", {"to": "101"}, 0.3)
            assert time.monotonic() - started < 1.5
            await _next_command(session)
            with pytest.raises(CommandTimeout) as local:
                await a.hub.command(USER, DEVICE, "dial", {"to": "102"}, 0.3)
            assert remote.value.message == local.value.message and remote.value.status == 504

            # A device with no session anywhere: device-offline, at once.
            with pytest.raises(NoSession):
                await asyncio.wait_for(b.hub.command(USER, DEVICE + 1, "dial", {}, 2.0), 1)

            # The session closes: offline on B, and a command for it is device-offline.
            a.hub.close(session)
            assert await _until(lambda: not b.status.is_online(DEVICE), 2), "closing reaches node B"
            with pytest.raises(NoSession):
                await asyncio.wait_for(b.hub.command(USER, DEVICE, "dial", {}, 2.0), 1)

    asyncio.run(asyncio.wait_for(scenario(), 25))


def test_the_sessions_of_a_node_that_dies_are_gone_within_their_ttl(redis_url: str) -> None:
    async def scenario() -> None:
        prefix = _prefix()
        async with _node(redis_url, prefix, "node-b", ttl=1.5) as b:
            bus = EventBus(redis_url, prefix)
            hub = SessionHub()
            cluster = Cluster(bus, hub, DeviceStatus(bus), "node-a", session_ttl=1.5, refresh_seconds=0.5)
            await bus.start()
            await cluster.start()
            hub.bind_device(hub.open(USER), DEVICE)
            assert await _until(lambda: b.status.is_online(DEVICE), 3)
            # Node A dies: no goodbye, its entries stay in Redis until they expire.
            for task in (cluster._task, cluster._put_task):
                assert task is not None
                task.cancel()
            await bus.stop()
            started = time.monotonic()
            with pytest.raises(NoSession) as dead:  # its node no longer listens: offline, not a wait
                await asyncio.wait_for(b.hub.command(USER, DEVICE, "dial", {}, 2.0), 1)
            assert dead.value.details["node"] == "node-a"
            assert await _until(lambda: not b.status.is_online(DEVICE), 4), "gone within the TTL"
            assert time.monotonic() - started < 4

    asyncio.run(asyncio.wait_for(scenario(), 25))


def test_a_restarted_node_removes_the_sessions_its_previous_run_left(redis_url: str) -> None:
    async def scenario() -> None:
        import redis.asyncio as aioredis

        prefix = _prefix()
        client = aioredis.from_url(redis_url)
        left = SessionEntry("node-a", "old", USER, DEVICE)
        await client.zadd(f"{prefix}:sessions", {left.member: time.time() + 60})
        try:
            async with _node(redis_url, prefix, "node-b") as b:
                assert await _until(lambda: b.status.is_online(DEVICE), 3), "the entry looks alive to B"
                async with _node(redis_url, prefix, "node-a"):
                    assert await _until(lambda: not b.status.is_online(DEVICE), 3), "A's restart removed it"
                    assert await client.zscore(f"{prefix}:sessions", left.member) is None
        finally:
            await client.delete(f"{prefix}:sessions")
            await client.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 25))


def test_a_call_is_readable_from_another_node_and_its_news_there_reaches_its_owner(redis_url: str) -> None:
    async def scenario() -> None:
        prefix = _prefix()
        async with _node(redis_url, prefix, "node-b") as b, _node(redis_url, prefix, "node-c") as c:
            owner, other = CallBook(b.bus, b.cluster), CallBook(c.bus, c.cluster)
            heard: list[tuple[str, str]] = []
            b.bus.subscribe(lambda e: heard.append((e.type, e.data.get("state", ""))))
            number = normalize("502", DialPlan())
            call = ClickCall(user_id=USER, to="502", number=number, device_id=DEVICE, device_kind="webphone")
            owner.add(call)
            assert await _until(lambda: other.get(call.id) is not None, 3), "C learns of B's call from its event"
            seen = other.get(call.id)
            assert seen is not None and seen.user_id == USER and seen.device_id == DEVICE
            assert other.local(call.id) is None

            async def record_state() -> str | None:
                record = await other.record(call.id)
                return None if record is None else str(record["call"]["state"])

            assert await record_state() == "dialing"
            assert (await other.record(call.id) or {}).get("node") == "node-b"

            # C's switch sees the call ring and end: B, the owner, moves it on and reports it.
            other.update(call.id, "ringing", device_ringing=True)
            other.update(call.id, "ringing", device_ringing=True)  # repeated news goes once
            other.update(call.id, "ended", "normal")
            assert await _until(lambda: call.state == "ended", 3), call.state
            assert call.reason == "normal"
            news = [h for h in heard if h[0] != "call.dialing"]
            assert news == [("call.ringing", "ringing"), ("call.ended", "ended")]
            deadline = time.monotonic() + 3
            while await record_state() != "ended" and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert await record_state() == "ended"
            assert other.get(call.id) is None, "an ended call is forgotten by the other nodes"

    asyncio.run(asyncio.wait_for(scenario(), 25))
