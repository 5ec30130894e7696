"""What click-to-call needs from other packages, as small interfaces (the switch, provisioning, Link).

The composition root passes implementations in; the dialer never imports the switch or the
provisioning package directly. What a click hands the switch (:class:`OriginateRequest`) and gets back
(:class:`OriginateResult`) are the switch's own types from ``callto.sip.ports``, re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from callto.directory.generation import Token
from callto.phones.http import PhoneTarget
from callto.sip.ports import OriginateRequest as OriginateRequest
from callto.sip.ports import OriginateResult as OriginateResult


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

    def cached_desk_phone(self, device_id: int, token: Token) -> tuple[bool, DeskPhone | None]:
        """``(True, phone)`` when the answer of :meth:`desk_phone` is known at ``token`` without a query."""
        ...
