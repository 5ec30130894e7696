"""What click-to-call needs from other packages, as small interfaces (the switch, provisioning, Link).

The composition root passes implementations in; the dialer never imports the switch or the
provisioning package directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from callto.dialer.numbers import Number
from callto.phones.http import PhoneTarget


@dataclass(frozen=True)
class OriginateRequest:
    call_id: str
    user_id: int
    # The device to ring first: its SIP username (the switch knows where it registered), or None with
    # ``first_leg_number`` for a callback to the user's mobile through the trunk.
    device_sip_username: str | None
    destination: Number
    auto_answer: bool = False
    first_leg_number: Number | None = None
    caller_display: str = ""


@dataclass(frozen=True)
class OriginateResult:
    ok: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Originator(Protocol):
    """The switch: ring the first leg, and when it answers call the destination and bridge."""

    async def originate(self, request: OriginateRequest) -> OriginateResult: ...

    async def hangup(self, call_id: str) -> bool: ...


@dataclass(frozen=True)
class DeskPhone:
    """What the dialer knows of a desk phone: how to reach its web server, which strategies it allows."""

    device_id: int
    target: PhoneTarget | None
    strategies: tuple[str, ...] | None = None


class DeskPhones(Protocol):
    """Provisioning: a desk phone's vendor, web credentials and the address it registered from."""

    def desk_phone(self, device_id: int) -> DeskPhone | None: ...
