"""The directory generation: one token that changes whenever users, devices, settings or phones change.

Owns the rule that lets the click path answer from memory without ever serving stale identity data.
Every write that can change what a cached read returns (users, devices, token versions, settings,
provisioned phones) calls :func:`bump` inside its own transaction: it stores a fresh random token in the
``settings`` row :data:`KEY`. Readers take :meth:`Generation.current` *before* reading, and keep what they
read under that token; an entry is good only while the token is the same. So a write by any process on
the same database (another node, the ``callto admin`` CLI) is seen by the very next request, with no
bus message to lose and no time-to-live to wait out.

Reading the token costs one primary-key lookup. On SQLite it is done on a dedicated connection in a few
microseconds, cheap enough to do inline on the event loop (:attr:`Generation.inline`); on PostgreSQL it is
a network round trip, so async callers read it in a worker thread, and share it: callers that ask while
a read is under way get the next one, which begins after they asked (:class:`SharedRead`), so 200 clicks
at once cost two reads, not 200 thread hops queued on the pool. On SQLite one read serves a whole loop
turn (:meth:`Generation.current_on_loop`): 200 clicks arriving at once are 200 requests in one turn,
and none of them can have arrived after a read made in that turn. Writes made by this process also bump
a local counter after they commit, which keeps caches correct where the row does not exist (a database
nobody ran ``build_services`` on, unit tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from callto.directory.models import Setting
from callto.store.database import Database

KEY = "cache.generation"
_CHANGED = "callto.generation.changed"

# Bumped after every commit of a session that called bump() (any Database of this process).
_local = itertools.count(1)
_local_value = 0
_local_lock = threading.Lock()

Token = tuple[int, Any]


def bump(session: Session) -> None:
    """Mark, inside the writer's transaction, that cached directory reads are no longer valid."""
    session.execute(update(Setting).where(Setting.key == KEY).values(value=secrets.token_hex(8)))
    session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        global _local_value
        with _local_lock:
            _local_value = next(_local)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)


def local_generation() -> int:
    return _local_value


class Generation:
    """Reads the current generation token of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        path = db.url.database if db.is_sqlite else None
        # A file database can be read on its own connection; ":memory:" (one database per connection)
        # and other backends go through the engine.
        self._path = path if path and path != ":memory:" and not path.startswith("file:") else None
        self._conn: sqlite3.Connection | None = None
        # (loop, token) read in the loop's current turn; cleared by a callback at the start of the next turn
        self._turn: tuple[asyncio.AbstractEventLoop, Token] | None = None

    @property
    def inline(self) -> bool:
        """Whether :meth:`current` is cheap enough (no network) to call on the event loop."""
        return self._path is not None

    def ensure(self) -> None:
        """Create the row once (at start; every process that writes calls this through build_services)."""
        with contextlib.suppress(Exception), self.db.session() as s:
            if s.get(Setting, KEY) is None:
                s.add(Setting(key=KEY, value=secrets.token_hex(8)))

    def current(self) -> Token:
        return (_local_value, self._read())

    def current_on_loop(self) -> Token:
        """:meth:`current`, read once per turn of the running event loop (call it on the loop only).

        Why that is as fresh as a read per request: whatever the loop runs in a turn was started by
        something it learnt before the turn began (the poll for sockets and timers comes first), so a
        read made in the turn began after every request served in it had arrived. The clearing callback
        is queued behind the turn's work and ahead of anything the next poll brings. A write by this
        process bumps the local counter, which is checked on every call, so it is seen at once."""
        loop = asyncio.get_running_loop()
        turn = self._turn
        if turn is not None and turn[0] is loop and turn[1][0] == _local_value:
            return turn[1]
        token = self.current()
        if turn is None or turn[0] is not loop:
            loop.call_soon(self._end_turn)
        self._turn = (loop, token)
        return token

    def _end_turn(self) -> None:
        self._turn = None

    def _read(self) -> Any:
        if self._path is None:
            with self.db.engine.connect() as conn:
                return conn.execute(select(Setting.value).where(Setting.key == KEY)).scalar()
        with self._lock:
            try:
                if self._conn is None:
                    # autocommit (isolation_level=None): no read transaction is left open between reads,
                    # which would hold back WAL checkpoints.
                    self._conn = sqlite3.connect(self._path, timeout=2.0, isolation_level=None,
                                                 check_same_thread=False)
                row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (KEY,)).fetchone()
            except sqlite3.Error:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                # Unknown: a fresh token, so that nothing cached is trusted.
                return secrets.token_hex(8)
        return None if row is None else row[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


class SharedRead(Generic[R]):
    """A blocking read run in a worker thread for every caller on the loop that asks at about the same
    time, each caller answered by a read that began after it asked: one that asks while a read is under
    way waits for the next read, which all the callers of that moment share. As fresh as a read per
    caller, with at most two reads (the one under way and the next) however many ask at once."""

    def __init__(self, read: Callable[[], R]) -> None:
        self._read = read
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: asyncio.Future[R] | None = None
        self._next: asyncio.Future[R] | None = None

    async def __call__(self) -> R:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests run several): nothing of the old one is shared
            self._loop, self._running, self._next = loop, None, None
        if self._running is None:
            future = self._running = loop.create_future()
            self._launch(loop, future)
        else:
            if self._next is None:
                self._next = loop.create_future()
            future = self._next
        # shielded: a caller that gives up does not cancel the read the others wait for
        return await asyncio.shield(future)

    def _launch(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[R]) -> None:
        task = loop.create_task(asyncio.to_thread(self._read))
        task.add_done_callback(lambda done: self._finished(loop, future, done))

    def _finished(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[R], done: asyncio.Task[R]) -> None:
        if not future.done():
            if done.cancelled():
                future.cancel()
            elif done.exception() is not None:
                future.set_exception(done.exception())  # type: ignore[arg-type]
            else:
                future.set_result(done.result())
        if self._loop is not loop or self._running is not future:
            return
        self._running, self._next = self._next, None
        if self._running is not None:
            self._launch(loop, self._running)


class GenerationCache(Generic[K, V]):
    """Values read under a generation token, good only while the token is unchanged.

    Used from the event loop and from worker threads: the token and its values are swapped as one
    tuple, so a reader never pairs a new token with values read under an old one."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._state: tuple[Token | None, dict[K, V]] = (None, {})

    def get(self, key: K, token: Token) -> tuple[bool, V | None]:
        current, values = self._state
        if token != current or key not in values:
            return False, None
        return True, values[key]

    def put(self, key: K, token: Token, value: V) -> None:
        current, values = self._state
        if token != current:
            # A newer token drops everything read before it; an older one (a slow reader) is not kept.
            if current is not None and _older(token, current):
                return
            values = {}
            self._state = (token, values)
        elif len(values) >= self.max_entries:
            values = {}
            self._state = (token, values)
        values[key] = value

    def clear(self) -> None:
        self._state = (None, {})

    def load(self, key: K, token: Token, read: Callable[[], V]) -> V:
        hit, value = self.get(key, token)
        if hit:
            return value  # type: ignore[return-value]
        value = read()
        self.put(key, token, value)
        return value


def _older(token: Token, than: Token) -> bool:
    # Only the local counter is ordered; database tokens are random, so an unequal one is taken as newer.
    return token[0] < than[0]
