"""The events the phonebook publishes (to one user): a customer card for a call, and an import's progress.
``kind`` is the wire name; :meth:`to_dict` the event's ``data``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class CardReady:
    """The card of the other party of a call (``GET /cards`` fields), with the call and its direction."""

    kind: ClassVar[str] = "card"
    card: dict[str, Any]
    call_id: str | None
    direction: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.card, "call_id": self.call_id, "direction": self.direction}


@dataclass(frozen=True)
class ImportProgress:
    """How far a contacts import is (the fields of the import's status)."""

    kind: ClassVar[str] = "phonebook.import.progress"
    progress: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.progress)
