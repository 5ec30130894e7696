"""The SIP digest throttle's failure counts shared by the nodes of a deployment (through Redis).

Lives outside :mod:`callto.sip` (which knows nothing of Redis): :mod:`callto.switchboard.wiring` puts it behind the
throttle's :class:`~callto.sip.throttle.FailureCounter` when the nodes share a Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from callto.sip.throttle import InMemoryFailureCounter
from callto.store.shared import SharedState

# Failures on their way to Redis at once; beyond, a flood is counted here only until Redis catches up.
MAX_PENDING = 1000


class SharedFailureCounter:
    """The SIP digest throttle's :class:`~callto.sip.throttle.FailureCounter` for several nodes.

    The throttle runs on the event loop and asks for a count on every REGISTER, so this never waits for
    Redis: it counts here at once (an :class:`~callto.sip.throttle.InMemoryFailureCounter`) and sends each
    failure to Redis in the background; Redis's answer, the deployment's count, is remembered for the key
    until its oldest failure leaves the window. A count is the larger of the two. So a guesser moving to
    another node is slowed and blocked there from its first or second failure on, and with Redis down each
    node still counts its own (never "no limit").
    """

    def __init__(self, shared: SharedState, window: float = 300.0, *, max_keys: int = 100_000) -> None:
        self.shared = shared
        self.window = window
        self.max_keys = max_keys
        self.local = InMemoryFailureCounter(window, max_keys=max_keys)
        self._heard: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (count, valid until, monotonic)
        self._tasks: set[asyncio.Task[None]] = set()

    def _redis_key(self, key: str) -> str:
        return self.shared.key("throttle", "sip", key)

    def _deployment(self, key: str) -> int:
        heard = self._heard.get(key)
        if heard is None:
            return 0
        if heard[1] <= time.monotonic():
            del self._heard[key]
            return 0
        return heard[0]

    def add(self, key: str, now: float) -> int:
        count = self.local.add(key, now)
        known = self._deployment(key)
        self._background(self._send(key))
        return max(count, known + 1 if known else 0)

    def count(self, key: str, now: float) -> int:
        return max(self.local.count(key, now), self._deployment(key))

    def clear(self, key: str) -> None:
        self.local.clear(key)
        self._heard.pop(key, None)
        self._background(self._clear(key))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test of the policy alone): local counts only
            work.close()
            return
        if not self.shared.available or len(self._tasks) >= MAX_PENDING:
            work.close()  # Redis down, or a flood: this node's own count holds meanwhile
            return
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, key: str) -> None:
        answer = await self.shared.awindow(self._redis_key(key), self.window, add=True)
        if answer is None:
            return
        count, wait = answer
        self._heard[key] = (count, time.monotonic() + wait)
        self._heard.move_to_end(key)
        if len(self._heard) > self.max_keys:
            self._heard.popitem(last=False)

    async def _clear(self, key: str) -> None:
        await self.shared.acall("delete", self._redis_key(key))

    async def flush(self) -> None:
        """Wait until what was sent to Redis has been answered (for tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
