"""Several nodes on the real Redis: a device session held by one node is online on the other, a command
sent to the other node reaches it and comes back with the same acknowledgement or the same error, a node
that dies takes its sessions with it within their TTL, and a click-to-call call is readable from every
node, its news seen by another node's switch reaching the node that owns it, and presence (sessions and
calls) is the same on every node, each change announced once; Phone Link's ``lan_relay`` command and its
answer cross the nodes unchanged, and a logout on one node closes that token's session on another."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callto.app import Services, build_services
from callto.config import load_settings
from callto.dialer.calls import CallBook, ClickCall
from callto.dialer.dialplan import DialPlan
from callto.dialer.numbers import normalize
from callto.directory.online import DeviceStatus
from callto.directory.schemas import DeviceCreate, DeviceKind, UserCreate
from callto.events.bus import EventBus
from callto.events.cluster import Cluster, SessionEntry
from callto.events.hub import CLOSE_REVOKED, ClientSession, CommandTimeout, NoSession, SessionHub
from callto.phones.http import PhoneTarget, build_action_request
from callto.presence.service import Presence, PresenceService
from callto.store.secretbox import new_key_text
from support.procs import ProcessGroup
from support.throwaway_redis import ThrowawayRedis

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


def test_a_lan_relay_command_reaches_the_link_session_on_another_node_and_its_answer_comes_back(
    redis_url: str,
) -> None:
    import json

    desk_phone = 71
    # the payload the dialer's lan_relay strategy sends to Link (see DialerService._lan_relay)
    request = build_action_request(PhoneTarget(vendor="yealink", host="192.0.2.10"), "call", number="0212345678")
    data = {"device_id": desk_phone, "request": request.to_json(), "timeout": 2.0}

    async def scenario() -> None:
        prefix = _prefix()
        async with _node(redis_url, prefix, "node-a") as a, _node(redis_url, prefix, "node-b") as b:
            link = a.hub.open(USER)  # Phone Link, connected to node A
            a.hub.bind_device(link, DEVICE)
            assert await _until(lambda: b.hub.reachable(USER, DEVICE), 3), "node B sees Link's session on A"
            answers = [  # Link's lan_relay.result: the phone answered, and the phone refused
                {"ok": True, "status": 200, "reason": None},
                {"ok": False, "status": 401, "reason": "the phone refused the web password (HTTP 401)"},
            ]
            for answer in answers:
                sent = asyncio.ensure_future(b.hub.command(USER, DEVICE, "lan_relay", data, 3.0))
                message = await _next_command(link)
                assert message["type"] == "lan_relay"
                command_id = message["data"].pop("command_id")
                assert message["data"] == json.loads(json.dumps(data)), "the request reaches Link as sent"
                assert a.hub.acknowledge(link, {"command_id": command_id, **answer})
                ack = await asyncio.wait_for(sent, 5)
                assert ack == {"command_id": command_id, **answer, "session_id": link.id}, "unchanged on B"

    asyncio.run(asyncio.wait_for(scenario(), 25))


def test_a_logout_on_one_node_closes_that_tokens_session_on_another_within_a_second(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = _prefix()
    key = new_key_text()

    def services(name: str) -> Services:
        # build_services wires Revocation(hub, auth).on_event to the bus, as the app does
        return build_services(load_settings({
            "CALLTO_DATA_DIR": str(tmp_path / name), "CALLTO_DATABASE_URL": f"sqlite:///{tmp_path / 'one.db'}",
            "CALLTO_ADMIN_PASSWORD": "admin-secret-1", "CALLTO_SECRET_KEY": key,
            "CALLTO_REDIS_URL": redis_url, "CALLTO_REDIS_PREFIX": prefix,
        }))

    a, b = services("a"), services("b")
    a.directory.create_user(UserCreate(username="alice", display_name="Alice", password="password-123"))

    async def scenario() -> None:
        for s in (a, b):
            await s.bus.start()
        for s in (a, b):
            await asyncio.wait_for(s.bus.subscribed.wait(), 5)
        try:
            token, _, user = a.auth.login("alice", "password-123", None, "127.0.0.1")
            other_token, _, _ = a.auth.login("alice", "password-123", None, "127.0.0.1")
            sessions = []
            for t in (token, other_token):  # two event sessions on node B, as the WebSocket opens them
                principal = await b.auth.authenticate_async(t)
                sessions.append(b.hub.open(user.id, token=t, role=principal.user.role))
            logged_out, still_in = sessions

            a.auth.logout(a.auth.authenticate(token).claims)  # POST /api/v1/auth/logout on node A
            started = time.monotonic()
            assert await _until(lambda: logged_out.closed, 1.0), "the logout reaches node B's session"
            assert time.monotonic() - started < 1.0
            assert logged_out.close_code == CLOSE_REVOKED
            await asyncio.sleep(0.1)  # time for a wrong close of the other session to show
            assert not still_in.closed, "a session of another token of the same user stays open"
        finally:
            for s in (a, b):
                await s.bus.stop()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        a.db.dispose()
        b.db.dispose()


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


def test_presence_is_the_same_on_every_node_and_each_change_is_announced_once(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callto.presence import service as presence_module

    monkeypatch.setattr(presence_module, "CALLS_RESEND_SECONDS", 1.0)
    monkeypatch.setattr(presence_module, "CALLS_FORGET_SECONDS", 2.0)
    prefix = _prefix()
    key = new_key_text()

    def services(name: str) -> Services:
        return build_services(load_settings({
            "CALLTO_DATA_DIR": str(tmp_path / name), "CALLTO_DATABASE_URL": f"sqlite:///{tmp_path / 'one.db'}",
            "CALLTO_ADMIN_PASSWORD": "admin-secret-1", "CALLTO_SECRET_KEY": key,
            "CALLTO_REDIS_URL": redis_url, "CALLTO_REDIS_PREFIX": prefix,
        }))

    a, b = services("a"), services("b")
    user = a.directory.create_user(UserCreate(username="alice", display_name="Alice", password="password-123"))
    device = a.directory.add_device(user.id, DeviceCreate(kind=DeviceKind.webphone))
    second = a.directory.add_device(user.id, DeviceCreate(kind=DeviceKind.link))

    async def scenario() -> None:
        nodes = []
        for name, s in (("node-a", a), ("node-b", b)):
            cluster = Cluster(s.bus, s.hub, s.status, name, session_ttl=1.5, refresh_seconds=0.5)
            presence = PresenceService(s.directory, s.bus, s.status, cluster=cluster)
            presence.load()
            await s.bus.start()
            await cluster.start()
            await asyncio.wait_for(s.bus.subscribed.wait(), 5)
            nodes.append((s, cluster, presence))
        (_, cluster_a, on_a), (_, cluster_b, on_b) = nodes
        announced: list[str] = []  # presence.changed as the sessions of node B get them (both nodes' events)
        b.bus.subscribe(lambda e: announced.append(e.data["presence"]) if e.type == "presence.changed" else None)
        try:
            a.hub.bind_device(a.hub.open(user.id), device.id)
            assert await _until(lambda: on_b.presence_of(user.id) == Presence.available, 3)
            on_a.call_state(user.id, "busy", "call-1")  # node A's switch: the user is in a call there
            assert await _until(lambda: on_b.presence_of(user.id) == Presence.busy, 3)
            on_a.call_state(user.id, "idle", "call-1")
            assert await _until(lambda: on_b.presence_of(user.id) == Presence.available, 3)
            entry = next(u for u in on_b.listing() if u["id"] == user.id)
            assert entry["presence"] == "available" and {"kind": "webphone", "online": True} in entry["devices"]
            assert await _until(lambda: len(announced) >= 3, 2)
            await asyncio.sleep(0.3)  # time for a second announcement to show
            assert announced == ["available", "busy", "available"], "each change announced once, by node A"

            # Node A dies during a call: node B forgets its call and its session by itself (the user has
            # Link connected to node B, so presence is not simply offline).
            b.hub.bind_device(b.hub.open(user.id), second.id)
            on_a.call_state(user.id, "busy", "call-2")
            assert await _until(lambda: on_b.presence_of(user.id) == Presence.busy, 3)
            for task in (cluster_a._task, cluster_a._put_task, cluster_a._broadcast_task):
                assert task is not None
                task.cancel()
            await a.bus.stop()
            assert await _until(lambda: not b.status.is_online(device.id), 4), "A's session expired"
            assert await _until(lambda: on_b.presence_of(user.id) == Presence.available, 4), "A's call forgotten"
        finally:
            await cluster_b.stop()
            await b.bus.stop()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 25))
    finally:
        a.db.dispose()
        b.db.dispose()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server (Debian redis-server) not installed")
def test_after_a_redis_outage_the_sessions_are_written_again_and_commands_flow(procs: ProcessGroup) -> None:
    redis = ThrowawayRedis(procs)
    redis.start()
    url = redis.url

    async def scenario() -> None:
        prefix = _prefix()
        async with _node(url, prefix, "node-a", ttl=1.5) as a, _node(url, prefix, "node-b", ttl=1.5) as b:
            session = a.hub.open(USER)
            a.hub.bind_device(session, DEVICE)
            assert await _until(lambda: b.status.is_online(DEVICE), 3)

            redis.stop()  # Redis gone, and with it every entry (it keeps nothing on disk)
            assert await _until(lambda: not b.bus.subscribed.is_set(), 5), "B's listener notices"
            with pytest.raises(NoSession):  # no way to the session's node: offline, at once
                await asyncio.wait_for(b.hub.command(USER, DEVICE, "dial", {}, 2.0), 1)
            assert await _until(lambda: not b.status.is_online(DEVICE), 4), "B's view expires by itself"
            assert a.status.is_online(DEVICE), "node A still has its own session"

            await asyncio.to_thread(redis.start)
            assert await _until(lambda: b.status.is_online(DEVICE), 10), "A writes its session again"
            assert await _until(lambda: b.bus.subscribed.is_set(), 10)
            sent = asyncio.ensure_future(b.hub.command(USER, DEVICE, "dial", {"to": "100"}, 2.0))
            message = await _next_command(session)
            a.hub.acknowledge(session, {"command_id": message["data"]["command_id"], "ok": True})
            assert (await asyncio.wait_for(sent, 5))["ok"] is True

    asyncio.run(asyncio.wait_for(scenario(), 40))
