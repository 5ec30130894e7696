"""The guide's troubleshooting list as live checks for one user, each with a status and a one-line fix.

Each check carries a stable ``code`` (``device.offline``, ``trunk.unregistered``...) and its ``params``
(the device's label and kind, a trunk's name...): clients word it in the user's language from those.
``message`` and ``fix`` stay as English text for logs and older clients. Trunk checks are for
administrators only: a plain user cannot act on a provider's registration.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from callto.dialer.ports import DeskPhones
from callto.directory.online import DeviceStatus
from callto.directory.service import UserView
from callto.events.hub import SessionHub

LABELS = {"webphone": "web phone", "link": "callto Link", "deskphone": "desk phone"}


@dataclass(frozen=True)
class Check:
    id: str
    status: str  # ok | warn | fail
    message: str
    fix: str = ""
    code: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "message": self.message, "fix": self.fix,
            "code": self.code, "params": self.params,
        }


class TrunkState(Protocol):
    def trunk_summary(self) -> list[dict[str, Any]]: ...


async def _tcp_reachable(host: str, port: int, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def diagnose(
    user: UserView,
    *,
    hub: SessionHub,
    status: DeviceStatus,
    desk_phones: DeskPhones | None = None,
    trunks: TrunkState | None = None,
    probe_timeout: float = 1.0,
) -> list[Check]:
    checks: list[Check] = []
    sessions = hub.sessions_of(user.id)
    checks.append(
        Check("session", "ok", f"{len(sessions)} CTI session(s) connected", code="session.ok",
              params={"count": len(sessions)})
        if sessions
        else Check(
            "session", "warn", "no CTI session is connected",
            "open the web CTI or callto Link and log in; check the network to the server", code="session.none",
        )
    )
    main = user.main_device
    if main is None:
        checks.append(
            Check("main-device", "fail", "no main device is chosen", "choose one in Settings", code="main-device.none")
        )
    else:
        checks.append(
            Check("main-device", "ok", f"main device: {main.label} ({LABELS[main.kind]})", code="main-device.ok",
                  params={"device": main.label, "kind": main.kind})
        )
    if not user.devices:
        checks.append(
            Check("devices", "fail", "no device is enabled for you", "ask your administrator to enable one",
                  code="devices.none")
        )
    for device in user.devices:
        label = f"{device.label} ({LABELS[device.kind]})"
        who = {"device": device.label, "kind": device.kind}
        sources = status.sources(device.id)
        if sources:
            where = ", ".join(
                f"{k.split(':', 1)[0]} from {v.get('address', v.get('via', '?'))} since {v.get('since', '?')}"
                for k, v in sources.items()
            )
            found = [
                {"via": k.split(":", 1)[0], "address": str(v.get("address", "")),
                 "since": str(v.get("since", ""))}
                for k, v in sources.items()
            ]
            checks.append(
                Check(f"device-{device.id}", "ok", f"{label} is online: {where}", code="device.online",
                      params={**who, "sources": found})
            )
        else:
            fix = {
                "webphone": "open the web CTI, allow the microphone, and keep the tab open",
                "link": "start callto Link (tray icon) and log in; use Test connection",
                "deskphone": "check the phone is powered, on the network, and registered (provisioning URL)",
            }[device.kind]
            severity = "fail" if main is not None and device.id == main.id else "warn"
            checks.append(
                Check(f"device-{device.id}", severity, f"{label} is offline", fix, code="device.offline", params=who)
            )
        if device.kind == "deskphone" and desk_phones is not None:
            phone = await asyncio.to_thread(desk_phones.desk_phone, device.id)
            if phone is None or phone.target is None:
                checks.append(
                    Check(
                        f"deskphone-{device.id}-http", "warn",
                        f"{label}: its web address or model is not known, so click-to-call rings it first",
                        "register the phone by MAC and model in Devices -> Phones",
                        code="deskphone-http.unknown", params=who,
                    )
                )
            else:
                reachable = await _tcp_reachable(phone.target.host, phone.target.port, probe_timeout)
                checks.append(
                    Check(f"deskphone-{device.id}-http", "ok", f"{label}: the server reaches its web server",
                          code="deskphone-http.ok", params=who)
                    if reachable
                    else Check(
                        f"deskphone-{device.id}-http", "warn",
                        f"{label}: the server cannot reach {phone.target.host}:{phone.target.port}",
                        "callto will use Link on your LAN or ring the phone first; check firewall / VPN",
                        code="deskphone-http.unreachable",
                        params={**who, "host": phone.target.host, "port": phone.target.port},
                    )
                )
    link = next((d for d in user.devices if d.kind == "link"), None)
    if link is not None:
        connected = hub.reachable(user.id, link.id)  # its session may be on another node
        checks.append(
            Check("link", "ok", "callto Link is connected", code="link.ok")
            if connected
            else Check("link", "warn", "callto Link is not connected", "start callto Link and log in",
                       code="link.offline")
        )
    checks.append(
        Check("outbound", "ok", f"you may call {user.outbound} numbers", code="outbound.ok",
              params={"outbound": user.outbound})
    )
    if trunks is not None and user.is_admin:
        summary = trunks.trunk_summary()
        if not summary:
            checks.append(
                Check("trunk", "warn", "no trunk is configured: only internal calls work",
                      "an administrator adds the provider in Trunks", code="trunk.none")
            )
        for trunk in summary:
            ok = trunk.get("registered") or not trunk.get("register")
            checks.append(
                Check(f"trunk-{trunk.get('id')}", "ok" if ok else "fail",
                      f"trunk {trunk.get('name')}: {'ready' if ok else 'not registered'}",
                      "" if ok else "check the provider's host, username and password",
                      code="trunk.ready" if ok else "trunk.unregistered", params={"name": str(trunk.get("name"))})
            )
    return checks
