"""The in-memory reads on the click path never answer with what another process has since changed.

The directory caches users (and the dialer its settings, provisioning its phones) under the directory
generation; these tests write through a second, independent set of services on the same database, as
the ``callto admin`` CLI or another node would, and check the first set sees it at its next read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callto.app import Services, build_services
from callto.config import load_settings
from callto.dialer.calls import KEEP_ENDED_SECONDS, CallBook, ClickCall
from callto.dialer.idempotency import IdempotencyCache
from callto.dialer.numbers import normalize
from callto.directory.errors import InvalidToken
from callto.directory.schemas import DeviceCreate, DeviceKind, UserCreate
from callto.events.bus import EventBus
from callto.store.secretbox import new_key_text

SHARED_SECRET_KEY = new_key_text()


def _services(tmp_path: Path, database_url: str) -> Services:
    settings = load_settings({
        "CALLTO_DATA_DIR": str(tmp_path),
        "CALLTO_DATABASE_URL": database_url,
        "CALLTO_ADMIN_PASSWORD": "admin-secret-1",
        # two nodes on one database share the key of its encrypted secrets (their data folders differ)
        "CALLTO_SECRET_KEY": SHARED_SECRET_KEY,
    })
    return build_services(settings)


def test_another_process_resetting_a_password_ends_the_session_at_once(tmp_path: Path, database_url: str) -> None:
    node, cli = _services(tmp_path / "a", database_url), _services(tmp_path / "b", database_url)
    try:
        user = node.directory.create_user(UserCreate(username="carla", display_name="Carla", password="password-123"))
        token, _ = node.auth.signer.issue(user.id, user.token_version)
        assert asyncio.run(node.auth.authenticate_async(token)).user.id == user.id  # now cached
        cli.directory.reset_password(user.id)
        with pytest.raises(InvalidToken) as caught:
            asyncio.run(node.auth.authenticate_async(token))
        assert caught.value.details == {"reason": "password-changed"}
    finally:
        node.db.dispose()
        cli.db.dispose()


def test_another_process_adding_a_device_or_deleting_the_user_is_seen_at_once(
    tmp_path: Path, database_url: str
) -> None:
    node, cli = _services(tmp_path / "a", database_url), _services(tmp_path / "b", database_url)
    try:
        user = node.directory.create_user(UserCreate(username="dario", display_name="Dario", password="password-123"))
        token, _ = node.auth.signer.issue(user.id, user.token_version)
        assert asyncio.run(node.directory.user(user.id)).devices == ()
        device = cli.directory.add_device(user.id, DeviceCreate(kind=DeviceKind.deskphone))
        seen = asyncio.run(node.directory.user(user.id))
        assert [d.id for d in seen.devices] == [device.id] and seen.main_device_id == device.id
        assert node.directory.get_user(user.id).devices[0].id == device.id
        cli.directory.delete_user(user.id)
        with pytest.raises(InvalidToken) as caught:
            asyncio.run(node.auth.authenticate_async(token))
        assert caught.value.details == {"reason": "no-user"}
    finally:
        node.db.dispose()
        cli.db.dispose()


def test_a_cached_user_still_shows_whether_its_devices_are_online_now(tmp_path: Path, database_url: str) -> None:
    node = _services(tmp_path, database_url)
    try:
        user = node.directory.create_user(UserCreate(username="elia", display_name="Elia", password="password-123"))
        device = node.directory.add_device(user.id, DeviceCreate(kind=DeviceKind.webphone))
        assert asyncio.run(node.directory.user(user.id)).devices[0].online is False
        node.status.set(user.id, device.id, "test", True)
        assert asyncio.run(node.directory.user(user.id)).devices[0].online is True
    finally:
        node.db.dispose()


def test_a_dial_plan_set_by_another_node_applies_to_the_next_click(tmp_path: Path, database_url: str) -> None:
    node, other = _services(tmp_path / "a", database_url), _services(tmp_path / "b", database_url)
    try:
        from callto.dialer.service import DialerService

        mine = DialerService(node.directory, node.hub, CallBook(node.bus))
        theirs = DialerService(other.directory, other.hub, CallBook(other.bus))
        assert mine.dial_plan().country == "IT"
        theirs.set_dial_plan({"country": "DE"})
        assert mine.dial_plan().country == "DE"
        theirs.set_desk_strategies(["lan_relay"])
        assert mine.desk_strategies() == ("lan_relay", "originate")
    finally:
        node.db.dispose()
        other.db.dispose()


def test_a_token_is_refused_once_expired_even_after_being_accepted(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from callto.directory.security import TokenSigner

    signer = TokenSigner("k" * 48, 3600)
    # exp is whole seconds rounded up: this token expires between 0.5 and 1.5 s from now
    token, _ = signer.issue(7, 0, now=datetime.now(UTC) - timedelta(seconds=3599.5))
    assert signer.check(token).user_id == 7  # accepted and remembered
    import time

    time.sleep(1.6)
    with pytest.raises(InvalidToken) as caught:
        signer.check(token)
    assert caught.value.details == {"reason": "expired"}


def test_idempotency_keys_expire_oldest_first_and_a_live_key_still_answers() -> None:
    async def scenario() -> None:
        cache = IdempotencyCache(window=60)
        runs = []

        async def work() -> int:
            runs.append(1)
            return len(runs)

        assert await cache.run(1, "old", work) == 1
        cache._entries[(1, "old")] = (cache._entries[(1, "old")][0] - 120, cache._entries[(1, "old")][1])
        assert await cache.run(1, "new", work) == 2
        assert (1, "old") not in cache._entries
        assert await cache.run(1, "new", work) == 2  # same key, same answer, not run again
        assert await cache.run(1, "old", work) == 3  # expired: runs again

    asyncio.run(scenario())


def test_ended_calls_are_forgotten_after_the_keep_time_and_live_ones_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    import callto.dialer.calls as calls_module

    now = [1000.0]
    monkeypatch.setattr(calls_module.time, "monotonic", lambda: now[0])
    book = CallBook(EventBus())
    from callto.dialer.dialplan import DialPlan

    number = normalize("0721405516", DialPlan.from_settings({}))
    ended, live = (ClickCall(user_id=1, to="x", number=number, device_id=1, device_kind="deskphone") for _ in range(2))
    book.add(ended)
    book.add(live)
    book.update(ended.id, "failed", "test")
    now[0] += KEEP_ENDED_SECONDS + 1
    book.add(ClickCall(user_id=1, to="x", number=number, device_id=1, device_kind="deskphone"))
    assert book.get(ended.id) is None and book.get(live.id) is live


def test_the_generation_read_once_per_loop_turn_still_sees_another_process_at_the_next_turn(tmp_path: Path) -> None:
    """On SQLite the click path reads the generation once per loop turn: requests served in one turn all
    arrived before its read; a write by another process (here a raw connection, which bumps no counter
    of this process) is seen in the next turn, and a write by this process at once."""
    import sqlite3

    from callto.directory.generation import KEY

    node = _services(tmp_path, f"sqlite:///{tmp_path / 'callto.db'}")
    try:
        generation = node.directory.generation
        assert generation.inline

        def other_process_writes(value: str) -> None:
            with sqlite3.connect(tmp_path / "callto.db") as conn:
                conn.execute("UPDATE settings SET value = ? WHERE key = ?", (value, KEY))

        async def scenario(value: str) -> None:
            first = await node.directory.token()
            other_process_writes(value)
            assert await node.directory.token() == first  # the same turn: one read for all of it
            await asyncio.sleep(0)
            assert (await node.directory.token())[1] == value  # the next turn reads again
            before = await node.directory.token()
            node.directory.put_setting("test.turn", {"x": 1})  # this process: seen without waiting a turn
            assert await node.directory.token() != before

        asyncio.run(scenario("written-elsewhere"))
        asyncio.run(scenario("written-again"))  # a new loop does not inherit the last turn of the old one
    finally:
        node.db.dispose()


def test_reads_asked_for_at_once_share_one_that_began_after_each_asked() -> None:
    """PostgreSQL's generation read (a round trip, in a worker thread) is shared by the requests asking at
    the same time, but never answers a request with a read that began before it asked."""
    import threading

    from callto.directory.generation import SharedRead

    started: list[int] = []
    release = threading.Event()

    def read() -> int:
        started.append(len(started))
        release.wait(5)
        return len(started) - 1

    async def scenario() -> None:
        shared = SharedRead(read)
        first = asyncio.ensure_future(shared())
        await asyncio.sleep(0.05)  # the first read is under way
        assert started == [0]
        later = [asyncio.ensure_future(shared()) for _ in range(50)]
        await asyncio.sleep(0.05)
        assert started == [0]  # they wait for the next read, all together
        release.set()
        assert await first == 0
        assert await asyncio.gather(*later) == [1] * 50  # the read that began after they asked
        assert started == [0, 1]

    asyncio.run(scenario())
