"""Noticing directory changes written by another process (the ``callto`` CLI, another node).

Caches that read through :class:`~callto.directory.generation.Generation` already see such a change at
their next read. Others do not read the generation on their hot path: the switch's SIP accounts are held
in memory and dropped only on a ``directory.*`` event. This watcher polls the generation row (one
primary-key read; on SQLite a few microseconds on a dedicated connection, on PostgreSQL one round trip
in a worker thread) every :data:`INTERVAL` seconds and, when the stored token changed, publishes
``directory.changed`` for nobody's session (``users`` empty): subscribers in this process drop and reload
what they hold. So a change made with the CLI reaches a running server within a second, with or without
Redis, and without the switch knowing anything about the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from callto.directory.generation import Generation
from callto.events.bus import Event, EventBus

log = logging.getLogger(__name__)

INTERVAL = 0.25
EVENT = "directory.changed"


class GenerationWatch:
    """A server component: polls the stored generation token and announces changes on the bus."""

    def __init__(self, generation: Generation, bus: EventBus, interval: float = INTERVAL) -> None:
        self.generation = generation
        self.bus = bus
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last: Any = None
        self.changes = 0  # how many changes were announced (diagnostics and tests)

    async def _read(self) -> Any:
        if self.generation.inline:
            return self.generation.current()[1]
        return (await asyncio.to_thread(self.generation.current))[1]

    async def start(self) -> None:
        self._last = await self._read()
        self._task = asyncio.create_task(self._run(), name="directory-generation-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def poll_once(self) -> bool:
        """Read the token once; announce and return True when it changed since the last read."""
        try:
            token = await self._read()
        except Exception as exc:  # a database outage: keep polling, say it once per failure
            log.warning("reading the directory generation failed: %s", exc.__class__.__name__)
            return False
        if token == self._last:
            return False
        self._last = token
        self.changes += 1
        # Our own writes change the token too; announcing them again costs one extra reload, while
        # telling them apart would need the writer's token, which bump() keeps inside its transaction.
        self.bus.publish(Event(EVENT, {"source": "database"}, frozenset()))
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.poll_once()
