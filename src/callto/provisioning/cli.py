"""``callto admin phone ...``: add, list, show, assign, unassign and remove desk phones from a shell.

Same data as the server (the data directory's database). ``register`` finds the ``admin`` command's
sub-commands and adds ``phone`` there; if there is no ``admin`` command it adds a top-level ``phone``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from callto.config import Settings


def _admin_commands(commands: Any) -> Any:
    admin = getattr(commands, "choices", {}).get("admin")
    if admin is None:
        return commands
    for action in admin._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return commands


def register(commands: Any) -> None:
    where = _admin_commands(commands)
    phone = where.add_parser("phone", help="desk phones: provisioning by MAC address")
    cmds = phone.add_subparsers(dest="phone_command", metavar="WHAT", required=True)

    add = cmds.add_parser("add", help="register a phone by MAC and model (vendor suggested from the MAC)")
    add.add_argument("mac", help="00:15:65:AA:BB:CC, 00-15-65-aa-bb-cc or 001565aabbcc")
    add.add_argument("model", help="model id from `callto admin phone models`")
    add.add_argument("--vendor")
    add.add_argument("--user", help="assign to this user (name or id)")
    add.add_argument("--label", default="")
    add.add_argument("--bootstrap", action="store_true", help="also issue a one-time bootstrap URL")
    add.set_defaults(handler=cmd_add)

    cmds.add_parser("list", help="list phones").set_defaults(handler=cmd_list)
    cmds.add_parser("models", help="the phone catalog").set_defaults(handler=cmd_models)

    for name, handler, text in (
        ("show", cmd_show, "show one phone (id or MAC)"),
        ("delete", cmd_delete, "remove a phone (its SIP device too)"),
        ("unassign", cmd_unassign, "take the phone away from its user (its SIP credentials stop working)"),
    ):
        sub = cmds.add_parser(name, help=text)
        sub.add_argument("phone")
        sub.set_defaults(handler=handler)

    assign = cmds.add_parser("assign", help="give the phone to a user (creates their desk phone device)")
    assign.add_argument("phone")
    assign.add_argument("user")
    assign.set_defaults(handler=cmd_assign)

    for sub in (add, assign, cmds.choices["list"], cmds.choices["show"], cmds.choices["unassign"]):
        sub.add_argument("--base-url", default="", help="base URL phones reach callto on (for provisioning_url)")


def _services(settings: Settings) -> Any:
    from callto.ops.admin import open_services

    return open_services(settings)


def _service(services: Any) -> Any:
    from callto.provisioning.service import ProvisioningService

    return ProvisioningService(services.db, services.directory, services.status, services.settings)


def _user_id(services: Any, ref: str) -> int:
    from callto.directory.errors import UserNotFound

    if ref.isdigit():
        return int(ref)
    user = services.directory.find_user(ref)
    if user is None:
        raise UserNotFound(f"there is no user {ref!r}")
    return int(user.id)


def _phone_id(service: Any, ref: str) -> int:
    from callto.phones.catalog import normalize_mac
    from callto.provisioning.errors import PhoneNotFound

    if ref.isdigit() and len(ref) < 12:
        return int(ref)
    phone = service.by_mac(normalize_mac(ref))
    if phone is None:
        raise PhoneNotFound(f"there is no phone {ref!r}")
    return int(phone.id)


def _base(args: argparse.Namespace, settings: Settings) -> str:
    if getattr(args, "base_url", ""):
        return str(args.base_url).rstrip("/")
    return f"http://{settings.public_host or 'localhost'}:{settings.http_port}"


def _row(phone: Any, base: str) -> dict[str, Any]:
    from callto.phones.catalog import format_mac

    return {
        "id": phone.id,
        "mac": format_mac(phone.mac, upper=True),
        "vendor": phone.vendor,
        "model": phone.model,
        "user_id": phone.user_id,
        "device_id": phone.device_id,
        "provisioning_url": f"{base}/provisioning/{phone.token}/",
        "bootstrap_url": f"{base}/provisioning/{phone.bootstrap_token}/" if phone.bootstrap_token else None,
        "last_fetch_ip": phone.last_fetch_ip,
        "last_user_agent": phone.last_user_agent,
        "firmware": phone.firmware,
    }


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from callto.provisioning.schemas import PhoneCreate

    services = _services(settings)
    service = _service(services)
    body: dict[str, Any] = {"mac": args.mac, "model": args.model, "label": args.label, "bootstrap": args.bootstrap}
    if args.vendor:
        body["vendor"] = args.vendor
    if args.user:
        body["user_id"] = _user_id(services, args.user)
    _print(_row(service.create(PhoneCreate(**body)), _base(args, settings)))
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(_services(settings))
    _print([_row(p, _base(args, settings)) for p in service.list_phones()])
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from callto.phones.catalog import default_catalog

    for vendor in default_catalog().vendors:
        print(f"{vendor.id}: {', '.join(m.id for m in vendor.models)}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(_services(settings))
    _print(_row(service.get(_phone_id(service, args.phone)), _base(args, settings)))
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(_services(settings))
    service.delete(_phone_id(service, args.phone))
    print("deleted")
    return 0


def cmd_assign(args: argparse.Namespace, settings: Settings) -> int:
    from callto.provisioning.schemas import PhonePatch

    services = _services(settings)
    service = _service(services)
    phone = service.update(_phone_id(service, args.phone), PhonePatch(user_id=_user_id(services, args.user)))
    _print(_row(phone, _base(args, settings)))
    return 0


def cmd_unassign(args: argparse.Namespace, settings: Settings) -> int:
    from callto.provisioning.schemas import PhonePatch

    service = _service(_services(settings))
    phone = service.update(_phone_id(service, args.phone), PhonePatch(user_id=None))
    _print(_row(phone, _base(args, settings)))
    return 0
