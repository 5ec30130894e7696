"""Derives each user's presence and publishes changes.

Inputs: :class:`~callto.directory.online.DeviceStatus` changes (a device went online or offline), bus
events from the directory (``presence.dnd``, users and devices added or removed), and the SIP switch,
which calls :meth:`PresenceService.call_state` when one of a user's calls starts ringing, is answered,
or ends. The state is kept in memory on this node, like device online state.

With several nodes (a :class:`~callto.events.cluster.Cluster`), each node broadcasts the call states its
switch reports, at once and as a whole every :data:`CALLS_RESEND_SECONDS`; the others take them in, and
forget a node's when it has not been heard for :data:`CALLS_FORGET_SECONDS` (it died), so every node
derives the same presence. ``presence.changed`` goes out once per change: from the node where its cause
happened (the call's node, the session's node, the node the event was published on); the others only
keep their state in step.

Precedence: ``offline`` (no device online) > ``busy`` (in a call) > ``ringing`` > ``dnd`` > ``available``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from callto.directory.online import DeviceStatus
from callto.directory.service import DirectoryService, UserView
from callto.errors import InvalidInput
from callto.events.bus import Event, EventBus
from callto.presence.events import PresenceChanged

if TYPE_CHECKING:
    from callto.events.cluster import Cluster

log = logging.getLogger(__name__)

CALLS_RESEND_SECONDS = 10.0
CALLS_FORGET_SECONDS = 35.0


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
        cluster: Cluster | None = None,
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
        # Other nodes' call states: node -> (when last heard, user -> call id -> state).
        self._remote_calls: dict[str, tuple[float, dict[int, dict[str, CallState]]]] = {}
        self.cluster = cluster
        status.on_change(self._device_changed)
        bus.subscribe(self._on_event)
        if cluster is not None:
            cluster.on_broadcast("presence.call", self._remote_call)
            cluster.on_broadcast("presence.calls", self._remote_snapshot)
            cluster.every(CALLS_RESEND_SECONDS, self._resend_calls)

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
        if self.cluster is not None:
            self.cluster.broadcast("presence.call", {"user_id": user_id, "call_id": call_id, "state": value.value})
        return self._update(user_id)

    # other nodes' calls
    def _remote_call(self, node: str, data: dict[str, Any]) -> None:
        try:
            user_id, call_id, value = int(data["user_id"]), str(data["call_id"]), CallState(data["state"])
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            heard = self._remote_calls.setdefault(node, (0.0, {}))[1]
            self._remote_calls[node] = (time.monotonic(), heard)
            calls = heard.setdefault(user_id, {})
            if value == CallState.idle:
                calls.pop(call_id, None)
                if not calls:
                    heard.pop(user_id, None)
            else:
                calls[call_id] = value
        self._update(user_id, announce=False)  # the call's node announces the change

    def _remote_snapshot(self, node: str, data: dict[str, Any]) -> None:
        heard: dict[int, dict[str, CallState]] = {}
        try:
            for user, calls in dict(data.get("calls") or {}).items():
                heard[int(user)] = {str(c): CallState(v) for c, v in dict(calls).items() if v != "idle"}
        except (TypeError, ValueError):
            return
        with self._lock:
            before = self._remote_calls.get(node, (0.0, {}))[1]
            self._remote_calls[node] = (time.monotonic(), {u: c for u, c in heard.items() if c})
        for user_id in set(before) | set(heard):
            self._update(user_id, announce=False)

    def _resend_calls(self) -> None:
        """Every few seconds: this node's calls as a whole to the others (what a lost broadcast missed),
        and forget the calls of nodes not heard for a while (they died: their calls are over)."""
        assert self.cluster is not None
        now = time.monotonic()
        with self._lock:
            snapshot = {str(u): {c: v.value for c, v in calls.items()} for u, calls in self._calls.items()}
            gone = [n for n, (heard, _) in self._remote_calls.items() if now - heard > CALLS_FORGET_SECONDS]
            users: set[int] = set()
            for node in gone:
                users |= set(self._remote_calls.pop(node)[1])
        self.cluster.broadcast("presence.calls", {"calls": snapshot})
        for user_id in users:
            self._update(user_id)  # its node cannot announce it any more

    def _device_changed(self, user_id: int, device_id: int, online: bool, announce: bool = True) -> None:
        with self._lock:
            devices = self._online.setdefault(user_id, set())
            if online:
                devices.add(device_id)
            else:
                devices.discard(device_id)
        self._update(user_id, announce=announce)

    def _on_event(self, event: Event) -> None:
        data = event.data
        # an event another node published: that node announced what it changed
        announce = not self.bus.delivering_remote
        if event.type == "presence.dnd":
            with self._lock:
                self._dnd[int(data["user_id"])] = bool(data["dnd"])
            self._update(int(data["user_id"]), announce=announce)
        elif event.type == "directory.user_removed":
            user_id = int(data["user_id"])
            with self._lock:
                for table in (self._dnd, self._online, self._calls, self._current):
                    table.pop(user_id, None)
            if announce:
                self.bus.publish(Event.of(PresenceChanged(user_id, None, removed=True), None))
        elif event.type == "device.removed" and event.users:
            device_id = int(data["device_id"])
            for user_id in event.users:
                with self._lock:
                    self._online.get(user_id, set()).discard(device_id)
                self._update(user_id, announce=announce)

    # output
    def _derive(self, user_id: int) -> Presence:
        if not self._online.get(user_id):
            return Presence.offline
        states = set(self._calls.get(user_id, {}).values())
        for _, heard in self._remote_calls.values():
            states.update(heard.get(user_id, {}).values())
        if CallState.busy in states:
            return Presence.busy
        if CallState.ringing in states:
            return Presence.ringing
        if self._dnd.get(user_id, False):
            return Presence.dnd
        return Presence.available

    def _update(self, user_id: int, *, announce: bool = True) -> Presence:
        with self._lock:
            now = self._derive(user_id)
            before = self._current.get(user_id, Presence.offline)
            self._current[user_id] = now
        if now != before and announce and (self.audience is None or self.audience()):
            self.bus.publish(Event.of(PresenceChanged(user_id, now.value, before.value), None))
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
