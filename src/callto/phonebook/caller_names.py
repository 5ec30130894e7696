"""The caller's name for the ``call.*`` events of a call to a user, looked up off the event loop.

A call from a colleague (the switch knows their user id) is named by the directory (its users are cached
in memory, see :meth:`callto.directory.service.DirectoryService.user`); any other caller by the called
user's phonebook, as the history names it (:meth:`PhonebookService.batch_names`: the user's private
contact first, then a shared one). Phonebook look-ups run in one worker thread at a time: the numbers asked
for while a query runs go together in the next one, so a burst of calls costs a few queries, never a thread
each, and the switch's loop never waits for the database.

The events wait at most ``NAME_WAIT`` (0.3 s) for a name, and the first query of a fresh server is the
slow one (the worker thread, a new database connection, the statement's first compile): :meth:`start`
runs one query on the worker when the server starts, so the first call is named like the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callto.phonebook.batch_names import NamesFor
    from callto.phonebook.service import PhonebookService

log = logging.getLogger(__name__)

WARM_TIMEOUT = 10.0  # seconds: a database that does not answer at start-up must not hold the server back
WARM_PAIR = (0, "0000000")  # no user, a number with a key: the query runs in full and finds nothing

Pair = tuple[int, str]  # (the called user, the caller's number as it came)


class CallerNames:
    """``await name(callee, number, caller_user)``: the name the called user knows the caller by, or None."""

    def __init__(self, phonebook: PhonebookService | None, directory: Any = None) -> None:
        self.phonebook = phonebook
        self.directory = directory
        self._names_for: NamesFor | None = phonebook.batch_names() if phonebook is not None else None
        self._waiting: dict[Pair, asyncio.Future[str | None]] = {}
        self._queue: list[Pair] = []
        self._runner: asyncio.Task[None] | None = None
        self.queries = 0  # phonebook queries run (a burst of calls shares them)
        self.warm_seconds: float | None = None  # how long the warm-up query took; None: not run or failed

    async def start(self) -> None:
        """A server component: one look-up on the worker before the first call (see the module's text)."""
        if self._names_for is None:
            return
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._lookup, [WARM_PAIR]), WARM_TIMEOUT)
        except Exception as exc:  # an outage at start-up: the calls are named once the database answers
            log.warning("warming the caller names' look-up failed: %s", exc.__class__.__name__)
            return
        self.warm_seconds = time.monotonic() - started
        log.debug("caller names warmed in %.3f s", self.warm_seconds)

    async def stop(self) -> None:
        return None

    async def name(self, callee: int, number: str, caller_user: int | None = None) -> str | None:
        if caller_user is not None and self.directory is not None:
            try:
                user = await self.directory.user(caller_user)
            except Exception as exc:  # a user removed mid-call, a storage outage: the call goes on unnamed
                log.debug("no directory name for user %s: %s", caller_user, exc)
            else:
                name = str(getattr(user, "display_name", "") or "")
                if name:
                    return name
        if not number or self._names_for is None:
            return None
        # shielded: another call waiting for the same pair must not lose its answer to this one's timeout
        return await asyncio.shield(self._contact(callee, number))

    def _contact(self, callee: int, number: str) -> asyncio.Future[str | None]:
        pair = (callee, number)
        fut = self._waiting.get(pair)
        if fut is None:
            fut = self._waiting[pair] = asyncio.get_running_loop().create_future()
            self._queue.append(pair)
            if self._runner is None:
                self._runner = asyncio.get_running_loop().create_task(self._drain())
        return fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    names = await asyncio.to_thread(self._lookup, batch)
                except Exception as exc:
                    log.warning("caller names unavailable: %s", exc)
                    names = {}
                for pair in batch:
                    fut = self._waiting.pop(pair, None)
                    if fut is not None and not fut.done():
                        fut.set_result(names.get(pair))
        finally:
            self._runner = None

    def _lookup(self, pairs: list[Pair]) -> dict[Pair, str]:
        assert self.phonebook is not None and self._names_for is not None
        self.queries += 1
        with self.phonebook.db.session() as s:
            return self._names_for(s, pairs)
