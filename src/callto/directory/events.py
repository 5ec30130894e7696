"""The events the directory publishes: users and devices added, changed, removed; a user's do-not-disturb,
preferences and main device; a device online or offline; a logout (for no client: the sessions opened with
that token close). ``kind`` is the wire name; :meth:`to_dict` the event's ``data``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class UserAdded:
    kind: ClassVar[str] = "directory.user_added"
    user_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id}


@dataclass(frozen=True)
class UserChanged:
    """The user's record changed (or their tokens were revoked: sessions check theirs again)."""

    kind: ClassVar[str] = "directory.user_changed"
    user_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id}


@dataclass(frozen=True)
class UserRemoved:
    kind: ClassVar[str] = "directory.user_removed"
    user_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id}


@dataclass(frozen=True)
class DndChanged:
    kind: ClassVar[str] = "presence.dnd"
    user_id: int
    dnd: bool

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "dnd": self.dnd}


@dataclass(frozen=True)
class PreferencesChanged:
    """The user's preferences as ``GET /me/preferences`` answers them."""

    kind: ClassVar[str] = "me.preferences"
    preferences: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.preferences)


@dataclass(frozen=True)
class MainDeviceChanged:
    kind: ClassVar[str] = "me.main_device"
    device_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id}


@dataclass(frozen=True)
class DeviceAdded:
    kind: ClassVar[str] = "device.added"
    device_id: int
    device_kind: str

    def to_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "kind": self.device_kind}


@dataclass(frozen=True)
class DeviceRemoved:
    kind: ClassVar[str] = "device.removed"
    device_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id}


@dataclass(frozen=True)
class DeviceOnline:
    kind: ClassVar[str] = "device.online"
    device_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id}


@dataclass(frozen=True)
class DeviceOffline:
    kind: ClassVar[str] = "device.offline"
    device_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id}


@dataclass(frozen=True)
class LoggedOut:
    """A token was logged out: its id (``jti``, not a secret) and when it would have expired (``exp``)."""

    kind: ClassVar[str] = "auth.logged_out"
    user_id: int
    jti: str
    exp: float

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "jti": self.jti, "exp": self.exp}
