"""What provisioning needs from the SIP switch, as a small interface: ask a phone to re-fetch its config.

The switch (``callto.sip``) is built by the composition root, which passes it in as the
:class:`PhoneNotifier`. Without one, a reload is recorded as ``not-available``.
:class:`NotifyResult` is the switch's own type (``callto.sip.ports``), re-exported here.
"""

from __future__ import annotations

from typing import Protocol

from callto.sip.ports import NotifyResult as NotifyResult


class PhoneNotifier(Protocol):
    """Send an unsolicited ``NOTIFY`` with ``Event: <event>`` (e.g. ``check-sync;reboot=false``) to every
    contact the device registered, the way RFC 3265-era phones expect a provisioning re-sync request."""

    async def check_sync(self, device_id: int, sip_username: str, event: str) -> NotifyResult: ...
