"""Idempotency keys: the same key from the same user within the window returns the same answer.

On one node the first request's answer is kept in memory; a repeat waits for it (while the first is
still running) or gets it. With ``shared`` (nodes on one Redis) the answer is kept for the deployment:
the first node to take the key marks it pending in Redis, runs the work and stores the answer (JSON) for
the window; a repeat on another node waits for that answer, up to ``wait_seconds``, and then gets
``409 idempotency-in-progress``. A failed first try is forgotten everywhere, so retrying it tries again
(a repeat that was waiting for it tries itself).
If Redis cannot be reached the key is kept on this node only (as with one node).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from callto.errors import Conflict

if TYPE_CHECKING:
    from callto.store.shared import SharedState

WINDOW_SECONDS = 60.0
MAX_ENTRIES = 10_000
# How long a repeat on another node waits for the first one's answer: longer than a click can take (every
# desk phone strategy with its time-out), so it gets the answer rather than a 409 in practice.
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.05
_PENDING = b"pending"


class IdempotencyInProgress(Conflict):
    error = "idempotency-in-progress"


class IdempotencyCache:
    def __init__(
        self, window: float = WINDOW_SECONDS, *, shared: SharedState | None = None, wait_seconds: float = WAIT_SECONDS
    ) -> None:
        self.window = window
        self.shared = shared
        self.wait_seconds = wait_seconds
        self._entries: dict[tuple[int, str], tuple[float, asyncio.Future[Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self, user_id: int, key: str | None, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``work`` once per (user, key); a concurrent or later repeat waits for and gets its result.

        A failed first try is not remembered: retrying the same key after an error tries again.
        """
        if not key:
            return await work()
        now = time.monotonic()
        self._expire(now)
        entry = self._entries.get((user_id, key))
        if entry is not None:
            return await asyncio.shield(entry[1])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._entries[(user_id, key)] = (now, future)
        try:
            result = await self._run_once(user_id, key, work)
        except BaseException as exc:
            self._entries.pop((user_id, key), None)
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        future.set_result(result)
        return result

    async def _run_once(self, user_id: int, key: str, work: Callable[[], Awaitable[Any]]) -> Any:
        shared = self.shared
        if shared is None:
            return await work()
        rkey = shared.key("idempotency", str(user_id), hashlib.sha256(key.encode()).hexdigest()[:32])
        # Pending for as long as a repeat waits: a node that dies mid-click frees the key by then.
        taken = await shared.set_new(rkey, _PENDING, self.wait_seconds + 5)
        if taken is False:
            found, answer = await self._answer_of(rkey)
            if found:
                return answer
            # the first try failed (its key is gone) or Redis went away: this request tries itself
            return await self._run_once(user_id, key, work)
        try:
            result = await work()
        except BaseException:
            if taken:
                self._later(shared.acall("delete", rkey))
            raise
        if taken:
            # not awaited: the click's answer does not wait for Redis a second time (a repeat elsewhere
            # polls for it meanwhile)
            answer = json.dumps(result, separators=(",", ":"))
            self._later(shared.acall("set", rkey, answer, px=int(self.window * 1000)))
        return result

    def _later(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_of(self, rkey: str) -> tuple[bool, Any]:
        """(True, the first request's answer) once it is stored; (False, None) if its key went away."""
        assert self.shared is not None
        deadline = time.monotonic() + self.wait_seconds
        while True:
            stored = await self.shared.acall("get", rkey)
            if stored is None:
                return False, None
            if stored != _PENDING:
                return True, json.loads(stored)
            if time.monotonic() >= deadline:
                raise IdempotencyInProgress(
                    "a request with this Idempotency-Key is still being handled; try again shortly",
                    details={"header": "Idempotency-Key", "retry_after": 1},
                )
            await asyncio.sleep(POLL_SECONDS)

    def _expire(self, now: float) -> None:
        # Entries are added in time order (a dict keeps insertion order): drop from the front until the
        # first live one, instead of scanning up to MAX_ENTRIES on every click.
        entries = self._entries
        while entries:
            first = next(iter(entries))
            if now - entries[first][0] <= self.window and len(entries) <= MAX_ENTRIES:
                break
            del entries[first]
