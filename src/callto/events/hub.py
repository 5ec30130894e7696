"""Connected client sessions: who is online on the event stream, delivery, and acknowledged commands.

The hub holds this node's sessions. With several nodes, a command for a device whose session another
node holds goes there through the attached :class:`RemoteSessions` (:mod:`callto.events.cluster`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from callto.errors import CalltoError
from callto.events.bus import Event

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
CLOSE_GONE = 4408
CLOSE_REVOKED = 4401
CLOSE_CHANGED = 4409


class NoSession(CalltoError):
    status = 409
    error = "device-offline"


class CommandTimeout(CalltoError):
    status = 504
    error = "command-timeout"


@dataclass(eq=False)
class ClientSession:
    """One WebSocket of one user; ``device_id`` once the client said which web phone / Link it is."""

    user_id: int
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    device_id: int | None = None
    # What the session was let in with, so a revocation can check it again (see events.revocation).
    token: str = field(default="", repr=False)
    role: str = ""
    last_active: float = field(default_factory=time.monotonic)
    # Messages are queued already encoded: an event for a thousand sessions is serialized once.
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT))
    closed: bool = False
    # The WebSocket close code once closed: 4408 (gone quiet / too slow), 4401 (revoked: log in again),
    # 4409 (the account or device changed: reconnect).
    close_code: int = CLOSE_GONE
    close_reason: str = ""

    def send(self, message: dict[str, Any]) -> bool:
        return self.send_text(json.dumps(message, default=str))

    def send_text(self, text: str) -> bool:
        """Queue an encoded message; a client too slow to drain its queue is cut off rather than grow memory."""
        if self.closed:
            return False
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            log.warning("session %s of user %s is not reading; closing it", self.id, self.user_id)
            self.close()
            return False

    def close(self, code: int = CLOSE_GONE, farewell: dict[str, Any] | None = None) -> None:
        """End the session: undelivered messages are dropped, ``farewell`` (an error body) is sent last,
        then the socket is closed with ``code``."""
        if not self.closed:
            self.closed = True
            self.close_code = code
            while not self.queue.empty():
                self.queue.get_nowait()
            if farewell is not None:
                self.close_reason = str(farewell.get("error", ""))
                self.queue.put_nowait(json.dumps({"type": "session.closed", "at": None, "data": farewell}))
            self.queue.put_nowait(None)


DeviceSessionHook = Callable[[int, int, str, bool], None]


class RemoteSessions(Protocol):
    """The device sessions other nodes hold (the cluster)."""

    def holds(self, user_id: int, device_id: int) -> bool: ...

    async def command(
        self, user_id: int, device_id: int, kind: str, data: dict[str, Any], timeout: float
    ) -> dict[str, Any]: ...


class SessionHub:
    """Holds this node's sessions; subscribe :meth:`deliver` to the bus."""

    def __init__(self) -> None:
        self._by_user: dict[int, set[ClientSession]] = {}
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._counter = itertools.count(1)
        self._device_hooks: list[DeviceSessionHook] = []
        # Listeners inside the server that want every user's events, sessions or not (webhooks).
        self._server_listeners: list[Callable[[], bool]] = []
        self._remote: RemoteSessions | None = None

    def attach_cluster(self, remote: RemoteSessions) -> None:
        """Send commands for devices with no session here to the node that holds one."""
        self._remote = remote

    def listen_server_side(self, wants_events: Callable[[], bool]) -> None:
        """Register a listener inside the server (webhooks): while ``wants_events()`` is true, events are
        built for every user, even one with no session open (see ``callto.switchboard.telephony.audience``)."""
        self._server_listeners.append(wants_events)

    def server_listening(self) -> bool:
        return any(wants() for wants in self._server_listeners)

    def on_device_session(self, hook: DeviceSessionHook) -> None:
        """``hook(user_id, device_id, session_id, online)`` when a session declares or drops a device."""
        self._device_hooks.append(hook)

    # sessions
    def open(self, user_id: int, *, token: str = "", role: str = "") -> ClientSession:
        session = ClientSession(user_id=user_id, token=token, role=role)
        self._by_user.setdefault(user_id, set()).add(session)
        return session

    def close(self, session: ClientSession) -> None:
        session.close()
        sessions = self._by_user.get(session.user_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_user[session.user_id]
        if session.device_id is not None:
            self._device_changed(session.user_id, session.device_id, session.id, False)

    def bind_device(self, session: ClientSession, device_id: int) -> None:
        if session.device_id == device_id:
            return
        if session.device_id is not None:
            self._device_changed(session.user_id, session.device_id, session.id, False)
        session.device_id = device_id
        self._device_changed(session.user_id, device_id, session.id, True)

    def _device_changed(self, user_id: int, device_id: int, session_id: str, online: bool) -> None:
        for hook in self._device_hooks:
            try:
                hook(user_id, device_id, session_id, online)
            except Exception:
                log.exception("device session hook failed")

    def sessions_of(self, user_id: int) -> list[ClientSession]:
        return list(self._by_user.get(user_id, ()))

    def session_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def connected_users(self) -> set[int]:
        return set(self._by_user)

    # delivery
    def deliver(self, event: Event) -> None:
        by_user = self._by_user
        if event.users is None:
            targets: list[int] = list(by_user)
        else:
            # Most events are for one user, often with no session open here (a desk phone user, another
            # node's user): then there is nothing to encode.
            targets = [u for u in event.users if u in by_user]
        if not targets:
            return
        text = json.dumps(event.wire(), default=str)
        for user_id in targets:
            for session in list(by_user.get(user_id, ())):
                session.send_text(text)

    # commands
    def device_session(self, user_id: int, device_id: int) -> ClientSession | None:
        """The most recently active open session of that device, or None."""
        candidates = [
            s for s in self._by_user.get(user_id, ()) if s.device_id == device_id and not s.closed
        ]
        return max(candidates, key=lambda s: s.last_active, default=None)

    def reachable(self, user_id: int, device_id: int) -> bool:
        """Whether a command for the device has a session to go to, on this node or another."""
        if self.device_session(user_id, device_id) is not None:
            return True
        return self._remote is not None and self._remote.holds(user_id, device_id)

    async def command(
        self, user_id: int, device_id: int, kind: str, data: dict[str, Any], timeout: float,
        *, local_only: bool = False,
    ) -> dict[str, Any]:
        """Send a command to exactly one session of the device and wait for its acknowledgement. A session
        on this node is preferred; with none here, the command goes to the node holding one (unless
        ``local_only``: the request came from another node)."""
        session = self.device_session(user_id, device_id)
        if session is None:
            if self._remote is not None and not local_only:
                return await self._remote.command(user_id, device_id, kind, data, timeout)
            raise NoSession(
                "the device has no connected session", details={"device_id": device_id}
            )
        command_id = f"c{next(self._counter)}-{secrets.token_hex(4)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        try:
            message = Event(type=kind, data={**data, "command_id": command_id}, users=None).wire()
            if not session.send(message):
                raise NoSession("the device session went away", details={"device_id": device_id})
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise CommandTimeout(
                f"the device did not acknowledge the {kind} command in {timeout:g} s",
                details={"device_id": device_id, "session_id": session.id},
            ) from exc
        finally:
            self._waiting.pop(command_id, None)

    def acknowledge(self, session: ClientSession, data: dict[str, Any]) -> bool:
        command_id = data.get("command_id")
        future = self._waiting.get(command_id) if isinstance(command_id, str) else None
        if future is None or future.done():
            return False
        future.set_result({**data, "session_id": session.id})
        return True
