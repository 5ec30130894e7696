"""Which devices are online right now, from every source that can tell (SIP registrations, sessions).

A device is online while at least one source says so. Changes are published as ``device.online`` /
``device.offline`` events to the device's owner, and to listeners inside the server (presence). A source
another node holds (a session there, see :mod:`callto.events.cluster`) is set with ``announce=False``:
that node told the users already, and this one only keeps its state (and presence) in step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from callto.directory.events import DeviceOffline, DeviceOnline
from callto.events.bus import Event, EventBus

# listener(user_id, device_id, online, announce): announce is False when another node told the users.
Listener = Callable[[int, int, bool, bool], None]


class DeviceStatus:
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._sources: dict[int, dict[str, dict[str, Any]]] = {}
        self._owners: dict[int, int] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def on_change(self, listener: Listener) -> None:
        """``listener(user_id, device_id, online, announce)`` after a device goes online or offline."""
        self._listeners.append(listener)

    def set(
        self, user_id: int, device_id: int, source: str, online: bool, info: dict[str, Any] | None = None,
        *, announce: bool = True,
    ) -> None:
        with self._lock:
            sources = self._sources.setdefault(device_id, {})
            was_online = bool(sources)
            if online:
                sources[source] = {**(info or {}), "since": datetime.now(UTC).isoformat()}
                self._owners[device_id] = user_id
            else:
                sources.pop(source, None)
                if not sources:
                    self._sources.pop(device_id, None)
            now_online = bool(sources)
        if was_online != now_online:
            if announce:
                change = DeviceOnline(device_id) if now_online else DeviceOffline(device_id)
                self._bus.publish(Event.of(change, frozenset({user_id})))
            for listener in self._listeners:
                listener(user_id, device_id, now_online, announce)

    def forget_device(self, device_id: int) -> None:
        with self._lock:
            self._sources.pop(device_id, None)
            self._owners.pop(device_id, None)

    def is_online(self, device_id: int) -> bool:
        return bool(self._sources.get(device_id))

    def sources(self, device_id: int) -> dict[str, dict[str, Any]]:
        return dict(self._sources.get(device_id, {}))
