"""Derives each user's presence and publishes changes.

Inputs: :class:`~callto.directory.online.DeviceStatus` changes (a device went online or offline), bus
events from the directory (``presence.dnd``, users and devices added or removed), and the SIP switch,
which calls :meth:`PresenceService.call_state` when one of a user's calls starts ringing, is answered,
or ends. The state is kept in memory on this node, like device online state.

Precedence: ``offline`` (no device online) > ``busy`` (in a call) > ``ringing`` > ``dnd`` > ``available``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from callto.directory.online import DeviceStatus
from callto.directory.service import DirectoryService, UserView
from callto.errors import InvalidInput
from callto.events.bus import Event, EventBus

log = logging.getLogger(__name__)


class Presence(StrEnum):
    available = "available"
    ringing = "ringing"
    busy = "busy"
    dnd = "dnd"
    offline = "offline"


class CallState(StrEnum):
    ringing = "ringing"
    busy = "busy"
    idle = "idle"


class PresenceService:
    def __init__(
        self,
        directory: DirectoryService,
        bus: EventBus,
        status: DeviceStatus,
        audience: Callable[[], bool] | None = None,
    ) -> None:
        self.directory = directory
        self.bus = bus
        self.status = status
        # Whether anybody at all would receive a presence.changed (None: assume so). Every call changes
        # presence two to four times; with nobody connected, building and encoding those events for no one
        # was a good part of a call's cost. Presence itself is state: whoever connects later reads it.
        self.audience = audience
        self._lock = threading.Lock()
        self._dnd: dict[int, bool] = {}
        self._online: dict[int, set[int]] = {}
        self._calls: dict[int, dict[str, CallState]] = {}
        self._current: dict[int, Presence] = {}
        status.on_change(self._device_changed)
        bus.subscribe(self._on_event)

    def load(self) -> None:
        """Read every user's do-not-disturb flag and online devices (at start-up)."""
        for user in self.directory.list_users():
            self._remember(user)

    def _remember(self, user: UserView) -> None:
        with self._lock:
            self._dnd[user.id] = user.dnd
            self._online[user.id] = {d.id for d in user.devices if d.online}
            self._current[user.id] = self._derive(user.id)

    # inputs
    def call_state(self, user_id: int, state: CallState | str, call_id: str = "") -> Presence:
        """For the switch: one of the user's calls (``call_id``) is ringing, busy (answered) or idle (ended)."""
        try:
            value = CallState(state)
        except ValueError as exc:
            raise InvalidInput(
                "call state must be ringing, busy or idle", details={"state": str(state)[:20]}
            ) from exc
        with self._lock:
            calls = self._calls.setdefault(user_id, {})
            if value == CallState.idle:
                calls.pop(call_id, None)
                if not calls:
                    self._calls.pop(user_id, None)
            else:
                calls[call_id] = value
        return self._update(user_id)

    def _device_changed(self, user_id: int, device_id: int, online: bool) -> None:
        with self._lock:
            devices = self._online.setdefault(user_id, set())
            if online:
                devices.add(device_id)
            else:
                devices.discard(device_id)
        self._update(user_id)

    def _on_event(self, event: Event) -> None:
        data = event.data
        if event.type == "presence.dnd":
            with self._lock:
                self._dnd[int(data["user_id"])] = bool(data["dnd"])
            self._update(int(data["user_id"]))
        elif event.type == "directory.user_removed":
            user_id = int(data["user_id"])
            with self._lock:
                for table in (self._dnd, self._online, self._calls, self._current):
                    table.pop(user_id, None)
            self.bus.publish(Event("presence.changed", {"user_id": user_id, "presence": None, "removed": True}, None))
        elif event.type == "device.removed" and event.users:
            device_id = int(data["device_id"])
            for user_id in event.users:
                with self._lock:
                    self._online.get(user_id, set()).discard(device_id)
                self._update(user_id)

    # output
    def _derive(self, user_id: int) -> Presence:
        if not self._online.get(user_id):
            return Presence.offline
        states = set(self._calls.get(user_id, {}).values())
        if CallState.busy in states:
            return Presence.busy
        if CallState.ringing in states:
            return Presence.ringing
        if self._dnd.get(user_id, False):
            return Presence.dnd
        return Presence.available

    def _update(self, user_id: int) -> Presence:
        with self._lock:
            now = self._derive(user_id)
            before = self._current.get(user_id, Presence.offline)
            self._current[user_id] = now
        if now != before and (self.audience is None or self.audience()):
            self.bus.publish(
                Event(
                    "presence.changed",
                    {"user_id": user_id, "presence": now.value, "previous": before.value},
                    None,
                )
            )
        return now

    def presence_of(self, user_id: int) -> Presence:
        with self._lock:
            return self._derive(user_id)

    def listing(self) -> list[dict[str, Any]]:
        """The company directory: every user with extension, devices (kind, online) and presence."""
        out = []
        for user in self.directory.list_users():
            with self._lock:
                known = user.id in self._dnd
            if not known:
                self._remember(user)
            out.append(
                {
                    "id": user.id,
                    "username": user.username,
                    "display_name": user.display_name,
                    "extension": user.extension,
                    "devices": [{"kind": d.kind, "online": d.online} for d in user.devices],
                    "presence": self.presence_of(user.id).value,
                }
            )
        return out
