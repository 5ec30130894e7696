"""Write-behind of the switch's call records: collected on the event loop, stored in batches in a thread.

Owns when call records reach the database. The switch ends calls on the event loop; storing each record
there (or a thread hop and a transaction per record) costs more than carrying the call did. Records wait
at most ``delay`` seconds (or until ``max_batch`` are waiting), then one worker-thread transaction stores
the whole batch (:meth:`~callto.history.service.HistoryService.record_calls`) and tells each user with a
``history.new`` (or, for an answered call's end, ``history.updated``) event a few milliseconds later. One
batch is written at a time, in order, so a call's answer is always written before its end.

Shutdown loses nothing: :meth:`stop` writes whatever is waiting, and a record handed in after that (the
switch hanging up its calls as it stops) is written at once. A failed write is retried a few times, then
logged with the calls it held; only a crash of the process loses the records of the last ``delay`` (an
answered call's end is then written by the node that ends the call after the crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callto.history.service import CallRecord, HistoryService

log = logging.getLogger(__name__)

DELAY = 0.1
MAX_BATCH = 500
RETRIES = 3
RETRY_PAUSE = 0.2


class HistoryWriter:
    """A server component (``start`` / ``stop``); :meth:`submit` from the event loop."""

    def __init__(self, service: HistoryService, *, delay: float = DELAY, max_batch: int = MAX_BATCH) -> None:
        self.service = service
        self.delay = delay
        self.max_batch = max_batch
        self._queue: list[CallRecord] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy: asyncio.Future[None] | None = None
        self.written = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    async def stop(self) -> None:
        """Write everything still waiting; from now on, records are written as they come."""
        await self.flush()
        self._loop = None

    async def flush(self) -> None:
        """Return once every record submitted so far is stored (or given up on)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._busy is not None or self._queue:
            if self._loop is None:
                batch, self._queue = self._queue, []
                self._write(batch)
                continue
            busy = self._busy
            if busy is not None:
                if not busy.done():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(busy)
                # Awaiting a finished future does not yield to the loop, so its done-callback (which clears
                # _busy) may not have run yet: clear it here, or this loop would spin forever.
                if self._busy is busy:
                    self._busy = None
                continue
            self._kick()

    def submit(self, record: CallRecord) -> None:
        loop = self._loop
        if loop is None:
            self._write([record])  # not running (yet, or any more): nothing would write it later
            return
        if threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self.submit, record)
            return
        self._queue.append(record)
        if self._busy is None:
            if len(self._queue) >= self.max_batch:
                self._kick()
            elif self._timer is None:
                self._timer = loop.call_later(self.delay, self._kick)

    # --- on the loop -----------------------------------------------------------------------------------
    def _kick(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = self._loop
        if self._busy is not None or not self._queue or loop is None:
            return
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        self._busy = loop.run_in_executor(None, self._write, batch)
        self._busy.add_done_callback(self._done)

    def _done(self, _future: asyncio.Future[None]) -> None:
        self._busy = None
        loop = self._loop
        if not self._queue or loop is None:
            return
        if len(self._queue) >= self.max_batch:
            self._kick()
        elif self._timer is None:
            self._timer = loop.call_later(self.delay, self._kick)

    # --- in the worker thread --------------------------------------------------------------------------
    def _write(self, batch: list[CallRecord]) -> None:
        for attempt in range(RETRIES + 1):
            try:
                self.service.record_calls(batch)
                self.written += len(batch)
                return
            except Exception as exc:
                if attempt == RETRIES:
                    calls = ", ".join(f"{r.call_id}/{r.user_id}" for r in batch[:20])
                    log.error("storing %d calls in the history failed (%s): %s", len(batch), exc, calls)
                    return
                log.warning("storing %d calls in the history failed, retrying: %s", len(batch), exc)
                time.sleep(RETRY_PAUSE * (attempt + 1))
