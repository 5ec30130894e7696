"""The Test connection checks: each says ok / warn / fail with a one-line fix.

They follow the guide's troubleshooting list and go one step further than it: for a desk phone as main
device, Link tries to open a TCP connection to the phone's HTTP port from this computer, so the user knows
before clicking whether ``lan_relay`` can work (same LAN or VPN) or whether the server will have to ring
the phone itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from callto.link.client import (
    Device,
    LinkClient,
    Me,
    fetch_certificate,
    fingerprint,
    ssl_context,
)
from callto.link.errors import (
    LinkError,
    ServerUnreachable,
    SessionExpired,
    UntrustedCertificate,
)
from callto.link.events import EventSession, SessionState
from callto.link.i18n import tr, tr_error

PHONE_TCP_TIMEOUT = 1.5


class Status(Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: Status
    message: str
    fix: str = ""


async def check_phone_reachable(address: str, port: int = 80, timeout: float = PHONE_TCP_TIMEOUT) -> Check:
    """TCP connect from this computer to the desk phone's HTTP port (the path ``lan_relay`` needs)."""
    title = tr("check.phoneLan")
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout=timeout)
    except (OSError, TimeoutError) as exc:
        reason = tr("check.phoneLanNoAnswer") if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return Check(
            "phone_lan",
            title,
            Status.WARN,
            tr("check.phoneLanFail", address=address, port=port, reason=reason),
            tr("check.phoneLanFailFix"),
        )
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Check(
        "phone_lan",
        title,
        Status.OK,
        tr("check.phoneLanOk", address=address, port=port),
    )


EventsProbe = Callable[[], Awaitable[SessionState]]


async def run_checks(
    base_url: str,
    token: str | None,
    *,
    trusted_cert_pem: str | None = None,
    events_state: SessionState | None = None,
    phone_port: int = 80,
) -> list[Check]:
    """Run every check in order; a failure early on turns the later ones into ``skip`` with a reason.

    ``phone_port`` is the desk phone's web port to try when the server does not say it (vendors' default 80).
    """
    checks: list[Check] = []

    def skip(cid: str, title: str, why: str) -> None:
        checks.append(Check(cid, title, Status.SKIP, why))

    # 1. server reachable (and 2. TLS): one request tells both, then look closer at the certificate.
    client = LinkClient(base_url, token=token, trusted_cert_pem=trusted_cert_pem, timeout=5.0)
    try:
        try:
            await client.health()
            checks.append(Check("server", tr("check.server"), Status.OK, tr("check.serverOk", url=base_url)))
            checks.append(_tls_ok(base_url, trusted_cert_pem))
        except UntrustedCertificate as exc:
            checks.append(Check("server", tr("check.server"), Status.OK, tr("check.serverOk", url=base_url)))
            fp = exc.details.get("fingerprint", "")
            checks.append(
                Check(
                    "tls",
                    tr("check.tls"),
                    Status.FAIL,
                    tr_error(exc),
                    tr("check.tlsTrustFix", fingerprint=fp) if fp else tr("check.tlsAskFix"),
                )
            )
            for cid, title in _LATER:
                skip(cid, tr(title), tr("check.skipUntrusted"))
            return checks
        except LinkError as exc:
            checks.append(
                Check(
                    "server",
                    tr("check.server"),
                    Status.FAIL,
                    tr_error(exc),
                    tr("check.serverFix"),
                )
            )
            skip("tls", tr("check.tls"), tr("check.skipUnreachable"))
            for cid, title in _LATER:
                skip(cid, tr(title), tr("check.skipUnreachable"))
            return checks

        # 3. credentials
        me: Me | None = None
        if not token:
            checks.append(
                Check(
                    "credentials",
                    tr("check.credentials"),
                    Status.FAIL,
                    tr("link.notSignedIn"),
                    tr("check.enterCredentials"),
                )
            )
        else:
            try:
                me = await client.me()
                signed_in = tr("check.signedInAs", username=me.username)
                checks.append(Check("credentials", tr("check.credentials"), Status.OK, signed_in))
            except SessionExpired as exc:
                checks.append(
                    Check("credentials", tr("check.credentials"), Status.FAIL, tr_error(exc), tr("check.signInAgain"))
                )
            except LinkError as exc:
                checks.append(
                    Check("credentials", tr("check.credentials"), Status.FAIL, tr_error(exc), tr("check.tryAgain"))
                )
        if me is None:
            for cid, title in _LATER[1:]:
                skip(cid, tr(title), tr("check.skipNotSignedIn"))
            return checks

        # 4. Link enabled for the user
        if me.link_device is None:
            checks.append(
                Check(
                    "link_enabled",
                    tr("check.linkEnabled"),
                    Status.FAIL,
                    tr("link.notEnabled"),
                    tr("check.linkEnabledFix"),
                )
            )
        else:
            checks.append(
                Check("link_enabled", tr("check.linkEnabled"), Status.OK, tr("check.linkEnabledOk"))
            )

        # 5. event stream
        state = events_state
        if state is None:
            assert token is not None  # me is only known with a valid token
            state = await _probe_events(base_url, token, me, trusted_cert_pem)
        if state is SessionState.CONNECTED:
            checks.append(
                Check("events", tr("check.events"), Status.OK, tr("check.eventsOk"))
            )
        else:
            checks.append(
                Check(
                    "events",
                    tr("check.events"),
                    Status.FAIL,
                    tr("check.eventsFail", state=state.value),
                    tr("check.eventsFix"),
                )
            )

        # 6. main device, 7. desk phone path
        checks.append(_main_device_check(me))
        main = me.main_device
        server_checks: list[dict[str, object]] = []
        with contextlib.suppress(LinkError):
            server_checks = await client.diagnostics()
        if main is not None and main.kind == "deskphone":
            lan = main.lan_address
            # A server without ``lan_address`` (older than Link) still names the address in its
            # diagnostics text; the web port is then unknown and the phone's default is assumed.
            address = lan[0] if lan else main.address or _address_from_diagnostics(server_checks, main.id)
            port = lan[1] if lan and lan[1] else phone_port
            if address:
                checks.append(await check_phone_reachable(address, port))
            else:
                checks.append(
                    Check(
                        "phone_lan",
                        tr("check.phoneLan"),
                        Status.WARN,
                        tr("check.noPhoneAddress"),
                        tr("check.noPhoneAddressFix"),
                    )
                )
        else:
            skip("phone_lan", tr("check.phoneLan"), tr("check.notDeskphone"))
        checks.append(_server_view(server_checks))
        return checks
    finally:
        await client.aclose()


# (check id, title's text id): titles are worded when the checks run, in the language shown then.
_LATER = [
    ("credentials", "check.credentials"),
    ("link_enabled", "check.linkEnabled"),
    ("events", "check.events"),
    ("main_device", "check.mainDevice"),
    ("phone_lan", "check.phoneLan"),
    ("server_diagnostics", "check.serverView"),
]


def _tls_ok(base_url: str, trusted_cert_pem: str | None) -> Check:
    if not base_url.startswith("https"):
        return Check(
            "tls",
            tr("check.tls"),
            Status.WARN,
            tr("check.tlsPlain"),
            tr("check.tlsPlainFix"),
        )
    if trusted_cert_pem:
        fp = fingerprint(ssl.PEM_cert_to_DER_cert(trusted_cert_pem))
        return Check("tls", tr("check.tls"), Status.OK, tr("check.tlsPinned", fingerprint=fp))
    try:
        fp = fingerprint(fetch_certificate(base_url))
    except ServerUnreachable:
        fp = tr("check.unknown")
    return Check("tls", tr("check.tls"), Status.OK, tr("check.tlsValid", fingerprint=fp))


_FROM = re.compile(r" from (\S+) since ")


def _address_from_diagnostics(server_checks: list[dict[str, object]], device_id: int) -> str | None:
    """The address the desk phone registered from, as the server's diagnostics report it."""
    for c in server_checks:
        if c.get("id") != f"device-{device_id}":
            continue
        for found in _FROM.findall(str(c.get("message", ""))):
            host = found.rsplit(":", 1)[0] if found.count(":") == 1 else found
            host = host.strip("[]")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                continue
            return str(host)
    return None


def _server_view(server_checks: list[dict[str, object]]) -> Check:
    """The server's own diagnostics for this user, summed up in one row (worst first)."""
    title = tr("check.serverView")
    if not server_checks:
        return Check("server_diagnostics", title, Status.SKIP, tr("check.noDiagnostics"))
    rank = {"fail": 2, "warn": 1}
    worst = max(server_checks, key=lambda c: rank.get(str(c.get("status")), 0))
    level = str(worst.get("status"))
    if level not in rank:
        return Check("server_diagnostics", title, Status.OK, tr("check.allPass", count=len(server_checks)))
    bad = sum(1 for c in server_checks if str(c.get("status")) in rank)
    message = str(worst.get("message", "")).rstrip(".")
    return Check(
        "server_diagnostics",
        title,
        Status.FAIL if level == "fail" else Status.WARN,
        tr("check.needAttention", bad=bad, count=len(server_checks), message=message),
        str(worst.get("fix") or ""),
    )


def _main_device_check(me: Me) -> Check:
    title = tr("check.mainDevice")
    main: Device | None = me.main_device
    if main is None:
        return Check("main_device", title, Status.WARN, tr("check.noMainDevice"), tr("check.chooseMainDevice"))
    if main.online:
        return Check("main_device", title, Status.OK, f"{main.describe()}.")
    fixes = {
        "webphone": tr("check.fixWebphone"),
        "link": tr("check.fixLink"),
        "deskphone": tr("check.fixDeskphone"),
    }
    return Check(
        "main_device",
        title,
        Status.FAIL,
        tr("check.mainOffline", device=main.describe()),
        fixes.get(main.kind, tr("check.chooseOther")),
    )


async def _probe_events(base_url: str, token: str, me: Me, trusted_cert_pem: str | None) -> SessionState:
    session = EventSession(
        base_url,
        lambda: token,
        # The probe must not take over Link's identity from the running session: no hello.
        None,
        ssl_ctx=ssl_context(trusted_cert_pem) if base_url.startswith("https") else None,
        open_timeout=5.0,
    )
    task = asyncio.ensure_future(session.run())
    try:
        await asyncio.wait_for(session.connected.wait(), timeout=6.0)
        return SessionState.CONNECTED
    except TimeoutError:
        return session.state if session.state is not SessionState.CONNECTING else SessionState.DISCONNECTED
    finally:
        session.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=3.0)
