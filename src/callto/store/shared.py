"""Short-lived state the nodes of a deployment share through Redis: failure counts in sliding windows (the
login, provisioning and SIP guess throttles), claims (one webhook delivery per deployment) and cached
answers (idempotency keys).

Every key is ``<prefix>:<what>:...`` under the deployment's prefix (``CALLTO_REDIS_PREFIX``), so two
deployments on one Redis never mix. Windows are counted with Redis's own clock (``TIME`` inside a script),
so the nodes' clocks need not agree.

Redis is a help here, never a dependency: every method answers ``None`` (or the documented fallback) when
Redis cannot be reached, and the callers then count in this process's memory, exactly as one node without
Redis does. After a failure Redis is left alone for ``retry_after`` seconds, so an outage costs one short
time-out per few seconds rather than one per request. Two clients: a blocking one for the code that runs
in worker threads (login, provisioning) and an asyncio one for the code on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

# A sliding window in a sorted set: drop what left the window, maybe add one failure (kept to the newest
# ARGV[4]), answer {count, milliseconds until the oldest failure leaves the window}.
_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if ARGV[2] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1))
  redis.call('PEXPIRE', KEYS[1], window)
end
local n = redis.call('ZCARD', KEYS[1])
if n == 0 then return {0, 0} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {n, math.max(0, tonumber(oldest[2]) + window - now)}
"""

# Members of a set with the time they were last marked: mark (kept to the newest ARGV[3], the key lives
# ARGV[4] ms) or ask whether ARGV[1] was marked within ARGV[2] ms.
_MARK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if seen and tonumber(seen) > now - tonumber(ARGV[2]) then return 1 end
return 0
"""


Command = tuple[str, tuple[Any, ...]]  # a client method's name and its arguments, for SharedState.batch


def window_answer(answer: Any) -> tuple[int, float]:
    """A window script's answer as (failures, seconds until the oldest leaves the window)."""
    return int(answer[0]), float(answer[1]) / 1000


class SharedState:
    """The deployment's Redis for shared counts, claims and answers (see the module docstring)."""

    def __init__(self, url: str, prefix: str, *, timeout: float = 0.5, retry_after: float = 5.0) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.retry_after = retry_after
        self._sync: Any = None
        self._aio: Any = None
        self._aio_loop: asyncio.AbstractEventLoop | None = None
        self._down_until = 0.0
        self._failing = False
        self._lock = threading.Lock()
        self._member = secrets.token_hex(4)
        self._counter = 0

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- health -----------------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """False for ``retry_after`` seconds after a failure (the callers count locally meanwhile)."""
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_after
        if not self._failing:
            log.warning("redis for shared counts and claims failed (%s); counting on this node until it is back",
                        exc.__class__.__name__)
        self._failing = True

    def _ok(self) -> None:
        if self._failing:
            log.warning("redis for shared counts and claims is back")
        self._failing = False

    def unique(self) -> str:
        """A member name no other call (of any node) uses: two failures in one millisecond both count."""
        with self._lock:
            self._counter += 1
            return f"{self._member}.{self._counter}"

    # --- blocking client (worker threads) -----------------------------------------------------------------
    def _client(self) -> Any:
        if self._sync is None:
            import redis

            with self._lock:
                if self._sync is None:
                    self._sync = redis.Redis.from_url(
                        self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
                    )
        return self._sync

    def call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """One blocking command, or None when Redis is down (then left alone for ``retry_after`` s)."""
        if not self.available:
            return None
        try:
            result = getattr(self._client(), fn)(*args, **kwargs)
        except Exception as exc:
            self._failed(exc)
            return None
        self._ok()
        return result

    def window(self, key: str, window: float, *, add: bool, keep: int = 1000) -> tuple[int, float] | None:
        """Failures of ``key`` within the last ``window`` seconds (adding one first when ``add``), and the
        seconds until the oldest of them leaves the window; None when Redis is down."""
        fn, args = self.window_command(key, window, add=add, keep=keep)
        answer = self.call(fn, *args)
        return None if answer is None else window_answer(answer)

    def window_command(self, key: str, window: float, *, add: bool, keep: int = 1000) -> Command:
        """:meth:`window` as a command for :meth:`batch` (its answer read with :func:`window_answer`)."""
        return "eval", (_WINDOW, 1, key, int(window * 1000), "1" if add else "0", self.unique(), keep)

    def marked_command(self, key: str, member: str, within: float) -> Command:
        """:meth:`marked_within` as a command for :meth:`batch` (its answer true or false)."""
        return "eval", (_MARK, 1, key, member, int(within * 1000), 0, 0, "0")

    def batch(self, commands: list[Command]) -> list[Any] | None:
        """Several blocking commands in one round trip (a pipeline, not a transaction): their answers in
        order, or None when Redis is down (as :meth:`call`). A login that fails asks four windows and
        adds to three: two round trips rather than seven."""
        if not self.available:
            return None
        try:
            pipe = self._client().pipeline(transaction=False)
            for fn, args in commands:
                getattr(pipe, fn)(*args)
            answers = pipe.execute()
        except Exception as exc:
            self._failed(exc)
            return None
        self._ok()
        return list(answers)

    def mark(self, key: str, member: str, *, keep: int, ttl: float) -> None:
        self.call("eval", _MARK, 1, key, member, 0, keep, int(ttl * 1000), "1")

    def marked_within(self, key: str, member: str, within: float) -> bool | None:
        fn, args = self.marked_command(key, member, within)
        answer = self.call(fn, *args)
        return None if answer is None else bool(answer)

    def delete(self, key: str) -> None:
        self.call("delete", key)

    # --- asyncio client (the event loop) ------------------------------------------------------------------
    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio_loop is not loop:
            import redis.asyncio as aioredis

            self._aio = aioredis.from_url(self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
            self._aio_loop = loop
        return self._aio

    async def acall(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call` on the event loop: one command, or None when Redis is down."""
        if not self.available:
            return None
        try:
            result = await getattr(self._async_client(), fn)(*args, **kwargs)
        except Exception as exc:
            self._failed(exc)
            return None
        self._ok()
        return result

    async def awindow(self, key: str, window: float, *, add: bool, keep: int = 1000) -> tuple[int, float] | None:
        answer = await self.acall("eval", _WINDOW, 1, key, int(window * 1000), "1" if add else "0", self.unique(), keep)
        if answer is None:
            return None
        return int(answer[0]), float(answer[1]) / 1000

    async def set_new(self, key: str, value: str | bytes, ttl: float) -> bool | None:
        """Set ``key`` only if it does not exist (``ttl`` seconds): True if set, False if it existed,
        None when Redis is down."""
        if not self.available:
            return None
        try:
            answer = await self._async_client().set(key, value, nx=True, px=max(1, int(ttl * 1000)))
        except Exception as exc:
            self._failed(exc)
            return None
        self._ok()
        return bool(answer)

    async def claim(self, key: str, ttl: float) -> bool:
        """True for the first node to claim ``key`` within ``ttl`` seconds, False for every later one; True
        as well when Redis is down (then nothing crosses between nodes anyway: each acts for itself)."""
        return await self.set_new(key, self._member, ttl) is not False

    # --- life ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self._aio is not None:
            with contextlib.suppress(Exception):
                await self._aio.aclose()
            self._aio = None
        if self._sync is not None:
            with contextlib.suppress(Exception):
                self._sync.close()
            self._sync = None
