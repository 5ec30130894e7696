"""The events the switchboard publishes: the switch's calls for the users in them (``call.ringing``,
``call.answered``, ``call.ended``, with the caller's name), and the registrations one node passes to the
others (``sip.bindings``, for no client: internal to the cluster). ``kind`` is the wire name; :meth:`to_dict`
the event's ``data``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

# the switch's phases (``phase``): ringing, answered, ended, and for a transfer transferring, transferred
CALL_DETAILS = ("disposition", "cause", "stage")  # passed on when the switch tells them


@dataclass(frozen=True)
class CallProgress:
    """A switch call's step for a user in it; ``caller_name`` is the caller as that user knows them (None:
    unknown, or not looked up yet); ``details`` holds those of :data:`CALL_DETAILS` the switch told."""

    phase: str
    call_id: str
    direction: str | None
    from_number: str | None
    to_number: str | None
    caller_name: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return f"call.{self.phase}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id, "direction": self.direction, "from": self.from_number, "to": self.to_number,
            "state": self.phase, "caller_name": self.caller_name,
            **{k: self.details[k] for k in CALL_DETAILS if k in self.details},
        }


@dataclass(frozen=True)
class BindingsChanged:
    """A batch of registrations ``node`` wrote: ``put`` as stored rows, ``gone`` as (device, binding) ids."""

    kind: ClassVar[str] = "sip.bindings"
    node: str
    put: list[dict[str, Any]]
    gone: list[list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "put": self.put, "gone": self.gone}


@dataclass(frozen=True)
class CallMove:
    """A user's call moving between their devices (``moving``, ``moved``, ``move_failed``), for that user
    only; the devices are callto's ids, ``reason`` is on a failed move."""

    phase: str
    call_id: str
    device_id: int | None
    from_device_id: int | None
    reason: Any = None
    has_reason: bool = False

    @property
    def kind(self) -> str:
        return f"call.{self.phase}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "call_id": self.call_id, "state": self.phase, "device_id": self.device_id,
            "from_device_id": self.from_device_id,
        }
        if self.has_reason:
            out["reason"] = self.reason
        return out
