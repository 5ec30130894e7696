"""``callto doctor USER``: the diagnostics a user sees, from the server's command line.

It asks the running server (its ``/api/v1/me/diagnostics``, with a one-minute token it signs for that
user with the server's signing key), so sessions, registrations and trunks are live. When no server
answers on the configured HTTP port, it says so and shows what the database alone can tell.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from callto.config import Settings

MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
LIVE_TOKEN_SECONDS = 60


def register(commands: Any) -> None:
    doctor = commands.add_parser("doctor", help="check why click-to-call would not work for a user")
    doctor.add_argument("user", help="username or id")
    doctor.add_argument("--url", default="", help="the running server's base URL (default: http://<bind>:<http_port>)")
    doctor.set_defaults(handler=cmd_doctor)


def _server_url(settings: Settings, given: str) -> str:
    if given:
        return given.rstrip("/")
    host = "127.0.0.1" if settings.bind in ("0.0.0.0", "", "::") else settings.bind
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.http_port}"


def _live_checks(services: Any, user: Any, url: str) -> tuple[list[dict[str, str]] | None, str]:
    """The running server's checks for ``user`` (None, and why, when no callto server answers at ``url``)."""
    from datetime import UTC, datetime, timedelta

    import httpx

    signer = services.auth.signer
    # the server's own signer, dated back so that the token expires LIVE_TOKEN_SECONDS from now
    issued = datetime.now(UTC) - (signer.ttl - timedelta(seconds=LIVE_TOKEN_SECONDS))
    token, _ = signer.issue(user.id, user.token_version, now=issued)
    try:
        response = httpx.get(f"{url}/api/v1/me/diagnostics", headers={"Authorization": f"Bearer {token}"},
                             timeout=5.0)
    except httpx.HTTPError as exc:
        return None, f"no callto server answers at {url} ({exc.__class__.__name__})"
    if response.status_code != 200:
        return None, f"the server at {url} answered {response.status_code} {response.text[:200]}"
    checks: list[dict[str, str]] = response.json().get("checks", [])
    return checks, ""


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from callto.dialer.diagnostics import diagnose
    from callto.directory.errors import UserNotFound
    from callto.ops.admin import open_services

    services = open_services(settings)
    ref = args.user
    user = services.directory.get_user(int(ref)) if ref.isdigit() else services.directory.find_user(ref)
    if user is None:
        raise UserNotFound(f"there is no user {ref!r}")
    url = _server_url(settings, args.url)
    live, why = _live_checks(services, user, url)
    print(f"{user.display_name} ({user.username}, extension {user.extension or '-'})")
    if live is not None:
        print(f"live state from the running server at {url}")
        rows = live
    else:
        print(f"{why}: stored state only (sessions and registrations are not seen, so every device shows "
              "as offline); give --url to reach the server")
        # stored state only: no provisioning view of the desk phones either (a running server has it)
        checks = asyncio.run(diagnose(user, hub=services.hub, status=services.status, desk_phones=None))
        rows = [c.to_json() for c in checks]
    for check in rows:
        line = f"  {MARKS.get(check['status'], check['status'])} {check['message']}"
        if check.get("fix"):
            line += f"  -> {check['fix']}"
        print(line)
    return 1 if any(c["status"] == "fail" for c in rows) else 0
