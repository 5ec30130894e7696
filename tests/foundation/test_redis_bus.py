"""Events between nodes through Redis: deployments kept apart by their prefix, and an outage that
silences nobody towards their own node and heals by itself (a throwaway redis-server for the outage)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable

import pytest

from callto.config import Settings
from callto.events.bus import Event, EventBus
from support.procs import ProcessGroup
from support.throwaway_redis import ThrowawayRedis


async def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def _event(n: int) -> Event:
    return Event("presence.changed", {"user_id": n, "presence": "busy"}, frozenset({2}))


def test_two_deployments_on_one_redis_do_not_see_each_others_events(redis_url: str) -> None:
    async def scenario() -> tuple[list[Event], list[Event], list[Event]]:
        a = EventBus(redis_url, "callto:test-deploy-a")
        a_peer = EventBus(redis_url, "callto:test-deploy-a")
        b = EventBus(redis_url, "callto:test-deploy-b")
        own: list[Event] = []
        peer: list[Event] = []
        other: list[Event] = []
        a.subscribe(own.append)
        a_peer.subscribe(peer.append)
        b.subscribe(other.append)
        for bus in (a, a_peer, b):
            await bus.start()
        try:
            await asyncio.sleep(0.3)  # the listeners subscribe
            a.publish(_event(1))
            assert await _until(lambda: bool(peer), 5)
            await asyncio.sleep(0.3)  # time for a wrong delivery to show
        finally:
            for bus in (a, a_peer, b):
                await bus.stop()
        return own, peer, other

    own, peer, other = asyncio.run(asyncio.wait_for(scenario(), 15))
    assert [e.data["user_id"] for e in own] == [1], "the publishing node delivers its own event once"
    assert [e.data["user_id"] for e in peer] == [1], "a node of the same deployment gets it once"
    assert other == [], "another deployment on the same Redis must not see it"


def test_redis_prefix_is_derived_from_the_database_and_ignores_its_password() -> None:
    one = Settings(database_url="postgresql://callto:secret@db1/callto").effective_redis_prefix
    same = Settings(database_url="postgresql://callto:other@db1/callto").effective_redis_prefix
    two = Settings(database_url="postgresql://callto:secret@db2/callto").effective_redis_prefix
    assert one == same and one != two and one.startswith("callto:")
    assert Settings(redis_prefix="acme").effective_redis_prefix == "acme"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server (Debian redis-server) not installed")
def test_a_redis_outage_keeps_local_events_and_heals_by_itself(procs: ProcessGroup) -> None:
    redis = ThrowawayRedis(procs)
    redis.start()
    url = redis.url

    async def scenario() -> None:
        a, b = EventBus(url, "callto:outage"), EventBus(url, "callto:outage")
        at_a: list[Event] = []
        at_b: list[Event] = []
        a.subscribe(at_a.append)
        b.subscribe(at_b.append)
        await a.start()
        await b.start()
        try:
            await asyncio.sleep(0.3)
            a.publish(_event(1))
            assert await _until(lambda: len(at_b) == 1, 5)

            redis.stop()
            a.publish(_event(2))
            # The node's own sessions still get the event while Redis is down.
            assert [e.data["user_id"] for e in at_a] == [1, 2]
            assert await _until(lambda: not a.healthy and not b.healthy, 10), "health must say Redis is down"

            await asyncio.to_thread(redis.start)
            assert await _until(lambda: a.healthy and b.healthy, 15), "the buses must reconnect by themselves"
            a.publish(_event(3))
            assert await _until(lambda: [e.data["user_id"] for e in at_b] == [1, 3], 5), at_b
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 45))
