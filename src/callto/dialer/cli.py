"""``callto doctor USER``: the diagnostics a user sees, from the server's command line."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from callto.config import Settings

MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def register(commands: Any) -> None:
    doctor = commands.add_parser("doctor", help="check why click-to-call would not work for a user")
    doctor.add_argument("user", help="username or id")
    doctor.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from callto.app import build_services
    from callto.dialer.diagnostics import diagnose
    from callto.directory.errors import UserNotFound

    services = build_services(settings)
    ref = args.user
    user = services.directory.get_user(int(ref)) if ref.isdigit() else services.directory.find_user(ref)
    if user is None:
        raise UserNotFound(f"there is no user {ref!r}")
    checks = asyncio.run(
        diagnose(user, hub=services.hub, status=services.status, desk_phones=services.features.get("desk_phones"))
    )
    print(f"{user.display_name} ({user.username}, extension {user.extension or '-'})")
    print("note: run from the command line, live sessions and registrations of the running server are not seen")
    for check in checks:
        line = f"  {MARKS[check.status]} {check.message}"
        if check.fix:
            line += f"  -> {check.fix}"
        print(line)
    return 1 if any(c.status == "fail" for c in checks) else 0
