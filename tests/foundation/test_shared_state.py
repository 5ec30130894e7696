"""What several nodes share through Redis and the database, node by node in one process (real Redis, a unique
key prefix per test; real databases): guess throttles count across nodes and fall back to each node's own
count when Redis is down, an idempotency key gives the first node's answer on another, a logout outlives a
restart and reaches a node that missed it on the bus, and a webhook is delivered once per deployment."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callto.app import Services, build_services
from callto.config import load_settings
from callto.dialer.idempotency import IdempotencyCache, IdempotencyInProgress
from callto.directory.errors import InvalidToken
from callto.directory.ratelimit import FailureWindow, LoginThrottle
from callto.directory.schemas import UserCreate
from callto.events.bus import Event
from callto.events.revocation import RevocationSync
from callto.integrations.events import WebhookDispatcher
from callto.integrations.service import WebhookService
from callto.shared_throttle import SharedFailureCounter
from callto.sip.throttle import DigestThrottle
from callto.store.secretbox import new_key_text
from callto.store.shared import SharedState
from integrations.receiver import Receiver
from support.ports import free_port
from support.procs import ProcessGroup
from support.throwaway_redis import ThrowawayRedis

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"callto:test-shared-{secrets.token_hex(4)}"
    yield name
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _node(redis_url: str, prefix: str) -> SharedState:
    return SharedState(redis_url, prefix)


def _down() -> SharedState:
    # nothing listens there: every call is refused at once, as with a Redis that is down
    return SharedState(f"redis://127.0.0.1:{free_port()}/0", "callto:down")


# --- throttles ----------------------------------------------------------------------------------------------
def test_five_wrong_passwords_on_one_node_lock_the_pair_on_another(redis_url: str, prefix: str) -> None:
    a, b = LoginThrottle(shared=_node(redis_url, prefix)), LoginThrottle(shared=_node(redis_url, prefix))
    for _ in range(4):
        a.failed("alice", "10.0.0.9")
    assert b.wait("alice", "10.0.0.9") == 0
    a.failed("alice", "10.0.0.9")
    assert 290 < b.wait("alice", "10.0.0.9") <= 300, "the fifth failure, made on A, locks the pair on B"
    assert b.wait("alice", "10.0.0.10") == 0, "only that address"
    b.succeeded("alice", "10.0.0.9")  # the right password clears the pair on every node
    assert a.wait("alice", "10.0.0.9") == 0


def test_a_failed_login_asks_redis_twice_and_still_counts_for_every_node(redis_url: str, prefix: str) -> None:
    """The throttle's three windows and the known-address check go in one round trip, the three failures
    in another (a login that fails made seven before)."""
    import redis

    shared, other = _node(redis_url, prefix), LoginThrottle(shared=_node(redis_url, prefix), user_limit=3)
    throttle = LoginThrottle(shared=shared, user_limit=3)
    trips: list[str] = []
    client = shared._client()
    real_execute, real_eval = redis.client.Pipeline.execute, client.eval

    def execute(pipe: redis.client.Pipeline, *args: object, **kwargs: object) -> object:
        trips.append("pipeline")
        return real_execute(pipe, *args, **kwargs)

    def single(*args: object, **kwargs: object) -> object:
        trips.append("eval")
        return real_eval(*args, **kwargs)

    client.eval = single
    redis.client.Pipeline.execute = execute  # type: ignore[method-assign]
    try:
        for n in range(3):
            assert throttle.wait("bruno", f"10.0.1.{n}") == 0
            throttle.failed("bruno", f"10.0.1.{n}")
    finally:
        redis.client.Pipeline.execute = real_execute  # type: ignore[method-assign]
    assert trips == ["pipeline", "pipeline"] * 3
    assert 890 < other.wait("bruno", "10.0.1.9") <= 900, "three addresses' failures lock the user on the other node"
    assert other.wait("carla", "10.0.1.0") == 0


def test_an_address_the_user_logged_in_from_on_one_node_is_known_on_another(redis_url: str, prefix: str) -> None:
    a = LoginThrottle(shared=_node(redis_url, prefix), user_limit=6)
    b = LoginThrottle(shared=_node(redis_url, prefix), user_limit=6)
    a.succeeded("bea", "10.0.0.1")
    for address in ("10.1.0.1", "10.1.0.2", "10.1.0.3"):  # a distributed guesser, on both nodes
        a.failed("bea", address)
        b.failed("bea", address)
    assert b.wait("bea", "10.1.0.4") > 0, "the username is locked from other addresses, on B too"
    assert b.wait("bea", "10.0.0.1") == 0, "but not where bea logged in, even if that was on A"


def test_provisioning_guesses_count_across_nodes(redis_url: str, prefix: str) -> None:
    a = FailureWindow(3, 60, shared=_node(redis_url, prefix), name="provisioning")
    b = FailureWindow(3, 60, shared=_node(redis_url, prefix), name="provisioning")
    a.fail("10.0.0.5")
    a.fail("10.0.0.5")
    assert b.blocked_for("10.0.0.5") == 0 and b.count("10.0.0.5") == 2
    b.fail("10.0.0.5")
    assert a.blocked_for("10.0.0.5") > 55 and b.blocked_for("10.0.0.5") > 55


def test_with_redis_down_each_node_still_counts_its_own_failures_without_waiting_for_it() -> None:
    shared = _down()
    throttle = LoginThrottle(shared=shared)
    started = time.monotonic()
    for _ in range(5):
        assert throttle.wait("carl", "10.0.0.7") == 0
        throttle.failed("carl", "10.0.0.7")
    assert throttle.wait("carl", "10.0.0.7") > 0, "locked by this node's own count: never 'no limit'"
    assert not shared.available, "Redis is left alone for a few seconds after a failure"
    assert time.monotonic() - started < 2


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server (Debian redis-server) not installed")
def test_a_redis_outage_falls_back_to_each_nodes_own_count_and_sharing_resumes_after(procs: ProcessGroup) -> None:
    redis = ThrowawayRedis(procs)
    redis.start()
    url = redis.url
    a = LoginThrottle(shared=SharedState(url, "callto:outage", retry_after=0.2))
    b = LoginThrottle(shared=SharedState(url, "callto:outage", retry_after=0.2))
    for _ in range(5):
        a.failed("eve", "10.0.0.1")
    assert b.wait("eve", "10.0.0.1") > 0, "shared while Redis is up"

    redis.stop()
    assert a.wait("eve", "10.0.0.1") > 0, "A still counts what it saw itself"
    for _ in range(5):
        b.failed("fred", "10.0.0.2")
    assert b.wait("fred", "10.0.0.2") > 0, "and so does B: never 'no limit'"

    redis.start()  # an empty Redis: what was counted in it is gone, not what each node counted meanwhile
    time.sleep(0.25)  # past retry_after: the nodes try Redis again
    for _ in range(5):
        a.failed("gus", "10.0.0.3")
    assert b.wait("gus", "10.0.0.3") > 0, "shared again once Redis is back"


def test_a_sip_guesser_moving_to_another_node_is_slowed_and_blocked_there(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        counters = [SharedFailureCounter(_node(redis_url, prefix)) for _ in range(2)]
        a, b = (DigestThrottle(counter=c) for c in counters)
        now = time.time()
        for _ in range(9):
            a.failed("192.0.2.7", "alice", now)
        await counters[0].flush()
        assert b.delay_for("192.0.2.7", now) == 0, "B has heard nothing of it yet"
        b.failed("192.0.2.7", "alice", now)  # the tenth failure of the deployment, B's first
        await counters[1].flush()
        assert b.delay_for("192.0.2.7", now) > 0, "B slows the source from the deployment's count"
        b.failed("192.0.2.7", "alice", now)
        assert b.blocked("192.0.2.7", now), "and blocks it at its second failure there"
        b.succeeded("192.0.2.8", now)  # another source: its count is its own
        assert b.delay_for("192.0.2.8", now) == 0

    asyncio.run(scenario())


def test_the_sip_counter_counts_on_its_node_when_redis_is_down() -> None:
    async def scenario() -> None:
        counter = SharedFailureCounter(_down())
        throttle = DigestThrottle(counter=counter)
        now = time.time()
        for _ in range(10):
            throttle.failed("192.0.2.9", None, now)
            await counter.flush()
        assert throttle.blocked("192.0.2.9", now)

    asyncio.run(scenario())


# --- idempotency --------------------------------------------------------------------------------------------
def test_the_same_idempotency_key_on_another_node_gets_the_first_answer(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        a = IdempotencyCache(shared=_node(redis_url, prefix))
        b = IdempotencyCache(shared=_node(redis_url, prefix))
        runs: list[str] = []
        release = asyncio.Event()

        async def work(node: str) -> dict[str, Any]:
            runs.append(node)
            await release.wait()
            return {"call_id": f"call-from-{node}", "state": "dialing"}

        first = asyncio.create_task(a.run(7, "k-1", lambda: work("a")))
        while not runs:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(b.run(7, "k-1", lambda: work("b")))  # while A's is in flight: it waits
        await asyncio.sleep(0.1)
        assert not second.done()
        release.set()
        assert await first == await second == {"call_id": "call-from-a", "state": "dialing"}
        assert await b.run(7, "k-1", lambda: work("b")) == {"call_id": "call-from-a", "state": "dialing"}
        assert (await b.run(8, "k-1", lambda: work("b")))["call_id"] == "call-from-b", "keys are per user"
        assert runs == ["a", "b"]

    asyncio.run(scenario())


def test_a_failed_first_try_is_forgotten_and_a_long_one_answers_409_elsewhere(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        a = IdempotencyCache(shared=_node(redis_url, prefix))
        b = IdempotencyCache(shared=_node(redis_url, prefix), wait_seconds=0.3)

        async def fails() -> dict[str, Any]:
            raise RuntimeError("the device is offline")

        with pytest.raises(RuntimeError):
            await a.run(1, "k-2", fails)
        assert await b.run(1, "k-2", lambda: asyncio.sleep(0, {"ok": "b"})) == {"ok": "b"}, "tried again"

        hold = asyncio.Event()

        async def slow() -> dict[str, Any]:
            await hold.wait()
            return {"ok": "a"}

        first = asyncio.create_task(a.run(1, "k-3", slow))
        await asyncio.sleep(0.05)
        with pytest.raises(IdempotencyInProgress) as caught:
            await b.run(1, "k-3", lambda: asyncio.sleep(0, {"ok": "b"}))
        assert (caught.value.status, caught.value.error) == (409, "idempotency-in-progress")
        hold.set()
        assert await first == {"ok": "a"}

    asyncio.run(scenario())


def test_idempotency_keys_hold_on_the_node_when_redis_is_down() -> None:
    async def scenario() -> None:
        cache = IdempotencyCache(shared=_down())
        runs: list[int] = []

        async def work() -> dict[str, Any]:
            runs.append(1)
            return {"call_id": f"c{len(runs)}"}

        assert await cache.run(1, "k", work) == await cache.run(1, "k", work) == {"call_id": "c1"}
        assert runs == [1]

    asyncio.run(scenario())


# --- logout -------------------------------------------------------------------------------------------------
SECRET_KEY = new_key_text()


def _services(folder: Path, database_url: str) -> Services:
    return build_services(load_settings({
        "CALLTO_DATA_DIR": str(folder), "CALLTO_DATABASE_URL": database_url,
        "CALLTO_ADMIN_PASSWORD": "admin-secret-1", "CALLTO_SECRET_KEY": SECRET_KEY,
    }))


def test_a_logout_is_refused_after_a_restart_and_by_a_node_that_missed_it(tmp_path: Path, database_url: str) -> None:
    a = _services(tmp_path / "a", database_url)
    b = _services(tmp_path / "b", database_url)  # up already: it will miss the bus event (no Redis here)
    try:
        user = a.directory.create_user(UserCreate(username="dora", display_name="Dora", password="password-123"))
        token, _, _ = a.auth.login("dora", "password-123", None, "10.0.0.1")
        other, _, _ = a.auth.login("dora", "password-123", None, "10.0.0.1")
        claims = a.auth.authenticate(token).claims
        assert b.auth.authenticate(token).user.id == user.id
        a.auth.logout(claims)
        with pytest.raises(InvalidToken):
            a.auth.authenticate(token)
        assert b.auth.authenticate(token).user.id == user.id, "B has not heard yet"
        sync = RevocationSync(b.auth, _NoSessions(), read_others=True)  # type: ignore[arg-type]
        learnt = asyncio.run(sync.sync_once())
        assert [r.jti for r in learnt] == [claims.jti]
        with pytest.raises(InvalidToken) as caught:
            b.auth.authenticate(token)
        assert caught.value.details == {"reason": "revoked"}
        a.db.dispose()
        restarted = _services(tmp_path / "a", database_url)  # A again, after a restart
        try:
            with pytest.raises(InvalidToken):
                restarted.auth.authenticate(token)
            assert restarted.auth.authenticate(other).user.id == user.id, "only the token logged out"
        finally:
            restarted.db.dispose()
    finally:
        a.db.dispose()
        b.db.dispose()


class _NoSessions:
    def on_event(self, event: Event) -> None:
        pass


def test_expired_logouts_are_pruned_and_a_logout_during_an_outage_is_saved_later(
    tmp_path: Path, database_url: str
) -> None:
    node = _services(tmp_path / "n", database_url)
    try:
        store = node.auth.revoked_store
        store.add("old-token", 1, time.time() - 5)
        store.add("live-token", 1, time.time() + 600)
        store.add("newer-token", 1, time.time() + 600)  # every write prunes what expired
        assert sorted(r.jti for r in store.live()) == ["live-token", "newer-token"]
        with node.db.session() as s:
            from sqlalchemy import func, select

            from callto.directory.revoked import RevokedToken

            assert s.scalar(select(func.count()).select_from(RevokedToken)) == 2
        node.auth.unsaved.append(("outage-token", 1, time.time() + 600))
        sync = RevocationSync(node.auth, _NoSessions(), read_others=False)  # type: ignore[arg-type]
        asyncio.run(sync.sync_once())
        assert node.auth.unsaved == []
        assert "outage-token" in {r.jti for r in store.live()}
    finally:
        node.db.dispose()


# --- webhooks -----------------------------------------------------------------------------------------------
def test_two_nodes_hearing_one_event_deliver_its_webhook_once(tmp_path: Path, redis_url: str, prefix: str) -> None:
    node = _services(tmp_path / "w", f"sqlite:///{tmp_path / 'w.db'}")
    receiver = Receiver().start()
    try:
        webhooks = WebhookService(node.db, node.directory)
        webhooks.create(receiver.url, ["call.ended", "history.new", "call.missed"], "", True, 1)

        async def scenario() -> None:
            a = WebhookDispatcher(webhooks, shared=_node(redis_url, prefix))
            b = WebhookDispatcher(webhooks, shared=_node(redis_url, prefix))
            await a.start()
            await b.start()
            try:
                ended = Event("call.ended", {"call_id": "c1", "reason": "hangup", "at": time.time()}, frozenset({1}))
                missed = Event("history.new", {"entry": {"call_id": "c2", "missed": True}}, frozenset({1}))
                for event in (ended, missed):
                    a.on_event(event)  # the node that made it
                    b.on_event(Event.decode(event.encode("node-a")))  # the node that heard it through Redis
                await asyncio.gather(*a._tasks, *b._tasks)
            finally:
                await a.stop()
                await b.stop()

        asyncio.run(scenario())
        kinds = sorted(r.json["type"] for r in receiver.requests)
        assert kinds == ["call.ended", "call.missed", "history.new"], kinds
    finally:
        receiver.stop()
        node.db.dispose()
