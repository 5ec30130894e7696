"""Idempotency keys: the same key from the same user within the window returns the same answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

WINDOW_SECONDS = 60.0
MAX_ENTRIES = 10_000


class IdempotencyCache:
    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._entries: dict[tuple[int, str], tuple[float, asyncio.Future[Any]]] = {}

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
            result = await work()
        except BaseException as exc:
            self._entries.pop((user_id, key), None)
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        future.set_result(result)
        return result

    def _expire(self, now: float) -> None:
        # Entries are added in time order (a dict keeps insertion order): drop from the front until the
        # first live one, instead of scanning up to MAX_ENTRIES on every click.
        entries = self._entries
        while entries:
            first = next(iter(entries))
            if now - entries[first][0] <= self.window and len(entries) <= MAX_ENTRIES:
                break
            del entries[first]
