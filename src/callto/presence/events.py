"""The event presence publishes (to every connected user): a user's presence changed, or the user is gone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class PresenceChanged:
    """``presence`` and ``previous`` are :class:`~callto.presence.service.Presence` values; a removed user
    is ``presence`` None with ``removed`` true (and no ``previous``)."""

    kind: ClassVar[str] = "presence.changed"
    user_id: int
    presence: str | None
    previous: str | None = None
    removed: bool = False

    def to_dict(self) -> dict[str, Any]:
        if self.removed:
            return {"user_id": self.user_id, "presence": None, "removed": True}
        return {"user_id": self.user_id, "presence": self.presence, "previous": self.previous}
