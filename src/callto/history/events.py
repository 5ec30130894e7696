"""The events the call history publishes (to the entry's user): a new entry, an entry completed or
changed, and the missed calls seen. ``kind`` is the event's wire name; :meth:`to_dict` its ``data``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class HistoryNew:
    """An entry entered the user's history; ``missed_unseen`` is their count of unseen missed calls."""

    kind: ClassVar[str] = "history.new"
    entry: dict[str, Any]
    missed_unseen: int

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "missed_unseen": self.missed_unseen}


@dataclass(frozen=True)
class HistoryUpdated:
    """An entry already shown changed (an answered call ended: its end, duration and cause)."""

    kind: ClassVar[str] = "history.updated"
    entry: dict[str, Any]
    missed_unseen: int

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "missed_unseen": self.missed_unseen}


@dataclass(frozen=True)
class HistorySeen:
    """The user has seen their missed calls."""

    kind: ClassVar[str] = "history.seen"
    missed_unseen: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"missed_unseen": self.missed_unseen}
