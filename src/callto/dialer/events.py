"""The events click-to-call publishes (to the clicking user): a click call's progress, ``call.dialing``,
``call.ringing``, ``call.answered``, ``call.ended`` (a failed click ends too). They share the ``call.*``
names with the switch's calls (:mod:`callto.switchboard.events`) and are told apart by ``strategy``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# the phases (``phase``) a click call goes through; a failed click ends as call.ended
PHASES = ("dialing", "ringing", "answered", "ended")


@dataclass(frozen=True)
class ClickProgress:
    """One step of a click call: ``phase`` names the event (``call.<phase>``); ``state`` is the call's own
    state (``failed`` ends as ``call.ended``); ``reason`` is on ``call.ended`` only; ``details`` are what
    the switch told of the step (``device_ringing``, ``sip_call_id``, ``disposition``)."""

    phase: str
    call_id: str
    state: str
    to: str
    number: dict[str, Any]
    device_id: int | str  # as ClickCall has it (another node's call: as its events told it)
    strategy: str | None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return f"call.{self.phase}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "call_id": self.call_id, "state": self.state, "to": self.to, "number": self.number,
            "device_id": self.device_id, "strategy": self.strategy, **self.details,
        }
        if self.phase == "ended":
            out["reason"] = self.reason
        return out
