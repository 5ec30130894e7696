"""Revocation reaches open event sessions: when the directory says an account or device changed, the
sessions it concerns are checked again and closed if what let them in no longer holds.

It listens to the events the directory already publishes on the bus (so with Redis every node hears
them): ``auth.logged_out``, ``directory.user_changed`` (password, role, reset), ``directory.user_removed``
and ``device.removed``. A session whose token no longer authenticates is closed with 4401 (log in again);
one whose role changed, or whose declared device was removed, with 4409 (reconnect: the new session gets
the new rights). A storage outage closes nothing: a session is never ended because it could not be checked.

Logouts are also kept in the database (:mod:`callto.directory.revoked`), read at start; with other nodes
:class:`RevocationSync` reads them again every few seconds, so a logout whose bus event a node missed
(Redis down) reaches it anyway, and it writes the logouts an outage of the database kept from being saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from callto.directory.auth import AuthService
from callto.directory.events import LoggedOut
from callto.directory.revoked import Revoked, RevokedTokens
from callto.errors import CalltoError
from callto.events.bus import Event
from callto.events.hub import CLOSE_CHANGED, CLOSE_REVOKED, ClientSession, SessionHub
from callto.store.database import utcnow

log = logging.getLogger(__name__)

USER_EVENTS = frozenset({"auth.logged_out", "directory.user_changed", "directory.user_removed"})


class Revocation:
    """Subscribe :meth:`on_event` to the bus, after the hub."""

    def __init__(self, hub: SessionHub, auth: AuthService) -> None:
        self.hub = hub
        self.auth = auth
        self._tasks: set[asyncio.Task[None]] = set()

    def on_event(self, event: Event) -> None:
        if event.type in USER_EVENTS:
            user_id = event.data.get("user_id")
            sessions = self.hub.sessions_of(user_id) if isinstance(user_id, int) else []
            if sessions:
                task = asyncio.get_running_loop().create_task(self._recheck(sessions))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif event.type == "device.removed":
            device_id = event.data.get("device_id")
            for user_id in event.users or ():
                for session in self.hub.sessions_of(user_id):
                    if session.device_id == device_id:
                        log.info("closing event session %s: its device %s was removed", session.id, device_id)
                        session.close(CLOSE_CHANGED, _farewell("device-removed", "this device was removed"))

    async def _recheck(self, sessions: list[ClientSession]) -> None:
        for session in sessions:
            if session.closed:
                continue
            try:
                principal = await self.auth.authenticate_async(session.token)
            except CalltoError as exc:
                if exc.status != 401:
                    continue  # storage unavailable and the like: keep the session
                log.info("closing event session %s of user %s: %s", session.id, session.user_id, exc.message)
                session.close(CLOSE_REVOKED, exc.to_json())
                continue
            except Exception:
                log.exception("re-checking event session %s failed; keeping it", session.id)
                continue
            if principal.user.role != session.role:
                log.info("closing event session %s of user %s: role changed", session.id, session.user_id)
                session.close(CLOSE_CHANGED, _farewell("role-changed", "your role changed; reconnecting"))


class RevocationSync:
    """A component: every ``interval`` seconds, saves the logouts the database could not take, and with
    ``read_others`` (several nodes) takes in the logouts other nodes saved that this one did not hear of."""

    def __init__(self, auth: AuthService, revocation: Revocation, *, interval: float = 5.0,
                 read_others: bool = True) -> None:
        self.auth = auth
        self.revocation = revocation
        self.interval = interval
        self.read_others = read_others
        self._since = utcnow()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._since = utcnow()
        self._task = asyncio.create_task(self._loop(), name="revocation-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.interval)
            if not self.read_others and not self.auth.unsaved:
                continue  # one node with nothing to save: no thread, no query
            try:
                await self.sync_once()
                failing = False
            except Exception as exc:
                if not failing:  # once per outage
                    log.warning("reading the logouts from the database failed (%s); retrying", exc)
                failing = True

    async def sync_once(self) -> list[Revoked]:
        """One round: save what is unsaved, take in what is new; the logouts taken in."""
        learnt = await asyncio.to_thread(self._sync)
        for row in learnt:
            log.info("a logout made on another node reached this one through the database")
            self.revocation.on_event(
                Event.of(LoggedOut(row.user_id, row.jti, row.expires_at), frozenset())
            )
        return learnt

    def _sync(self) -> list[Revoked]:
        store = self.auth.revoked_store
        while self.auth.unsaved:
            jti, user_id, expires_at = self.auth.unsaved[0]
            store.add(jti, user_id, expires_at)
            self.auth.unsaved.pop(0)
        if not self.read_others:
            return []
        started = utcnow()
        # read again from a while back: rows committed late, and clocks of the nodes a little apart
        rows = store.live(since=RevokedTokens.overlap(self._since, 120))
        self._since = started
        learnt = [row for row in rows if not self.auth.is_revoked(row.jti)]
        for row in learnt:
            self.auth.revoke(row.jti, row.expires_at)
        return learnt


def _farewell(error: str, message: str) -> dict[str, Any]:
    return {"error": error, "message": message, "details": {}}
