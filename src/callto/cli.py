"""The ``callto`` command: run the server and administer the same data directory from a shell."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callto import __version__
from callto.config import ConfigError, Settings, load_settings
from callto.errors import CalltoError

Handler = Callable[[argparse.Namespace, Settings], int]


def _services(settings: Settings) -> Any:
    from callto.ops.admin import open_services

    return open_services(settings)


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    if isinstance(data, list):
        for row in data:
            print("  ".join(f"{k}={v}" for k, v in row.items() if k != "devices"))
    elif isinstance(data, dict):
        for key, value in data.items():
            print(f"{key}: {value}")
    else:
        print(data)


def _user_id(services: Any, ref: str) -> int:
    from callto.directory.errors import UserNotFound

    if ref.isdigit():
        return int(ref)
    user = services.directory.find_user(ref)
    if user is None:
        raise UserNotFound(f"there is no user {ref!r}")
    return int(user.id)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from callto.server import serve

    serve(settings, debug=args.debug)
    return 0


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    """Create the data folder and the database, with the first admin, and print its password."""
    from callto.app import build_services
    from callto.ops.admin import describe
    from callto.ops.checks import check_data_dir, database_initialized

    check_data_dir(settings, create=True)
    if database_initialized(settings):
        print(f"callto: already set up, nothing changed ({describe(settings)})", file=sys.stderr)
        return 0
    services = build_services(settings)
    print(f"callto: created {describe(settings)}", file=sys.stderr)
    if services.first_admin_password and settings.admin_password:
        print("log in as 'admin' with the password set in CALLTO_ADMIN_PASSWORD")
    elif services.first_admin_password:
        print(f"log in as 'admin' with password '{services.first_admin_password}' (shown only this once)")
    else:
        print("an admin user already exists")
    services.directory.generation.close()
    services.db.dispose()
    return 0


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from callto.directory import security
    from callto.directory.schemas import UserCreate

    services = _services(settings)
    password = args.password or security.generate_password()
    user = services.directory.create_user(
        UserCreate(
            username=args.username,
            display_name=args.name or args.username,
            extension=args.extension,
            password=password,
            role=args.role,
            outbound=args.outbound,
            mobile=args.mobile,
        )
    )
    out = user.public()
    if not args.password:
        out["password"] = password
    _print(out, args.json)
    return 0


def cmd_user_list(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    _print([u.public() for u in services.directory.list_users()], args.json)
    return 0


def cmd_user_show(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    user = services.directory.get_user(_user_id(services, args.user))
    _print(user.public(with_secrets=args.secrets), True)
    return 0


def cmd_user_set(args: argparse.Namespace, settings: Settings) -> int:
    from callto.directory.schemas import UserPatch

    services = _services(settings)
    fields = {
        "display_name": args.name, "extension": args.extension, "role": args.role,
        "outbound": args.outbound, "mobile": args.mobile, "username": args.username,
    }
    patch = UserPatch(**{k: v for k, v in fields.items() if v is not None})
    user = services.directory.update_user(_user_id(services, args.user), patch)
    _print(user.public(), args.json)
    return 0


def cmd_user_delete(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    services.directory.delete_user(_user_id(services, args.user))
    print("deleted")
    return 0


def cmd_reset_password(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    password = services.directory.reset_password(_user_id(services, args.user), args.password)
    print(password if not args.password else "password changed")
    return 0


def cmd_device_add(args: argparse.Namespace, settings: Settings) -> int:
    from callto.directory.schemas import DeviceCreate

    services = _services(settings)
    device = services.directory.add_device(
        _user_id(services, args.user), DeviceCreate(kind=args.kind, label=args.label)
    )
    _print(device.public(with_secret=True), args.json)
    return 0


def cmd_device_list(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    user = services.directory.get_user(_user_id(services, args.user))
    _print([d.public(with_secret=args.secrets) for d in user.devices], args.json)
    return 0


def cmd_device_delete(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    services.directory.delete_device(args.device_id)
    print("deleted")
    return 0


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from callto.ops.admin import describe
    from callto.ops.backup import backup

    print(f"callto: backing up {describe(settings)}", file=sys.stderr)
    manifest = backup(settings, Path(args.file))
    print(f"backup written to {args.file} ({manifest['database']} database, {len(manifest['files'])} files)")
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from callto.ops.admin import describe
    from callto.ops.backup import restore

    print(f"callto: restoring into {describe(settings)}", file=sys.stderr)
    manifest = restore(settings, Path(args.file), force=args.force)
    print(f"restored the backup of {manifest['created_at']} (callto {manifest['callto']})")
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from callto.ops.admin import describe
    from callto.ops.checks import EXIT_NOT_INITIALIZED, OpsError, require_initialized
    from callto.store import migrate
    from callto.store.database import Database

    try:
        require_initialized(settings)
    except OpsError as exc:
        if exc.code != EXIT_NOT_INITIALIZED:
            raise
        # Run before every start (the service's ExecStartPre): a first start has nothing to upgrade yet,
        # and `serve` creates the database; nothing is created here.
        print(f"callto: no database yet, nothing to upgrade ({describe(settings)}); `callto serve` or "
              "`callto init` creates it", file=sys.stderr)
        return 0
    migrate.upgrade(Database(settings.effective_database_url))
    print("database is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callto", description="callto: click-to-call server with an embedded SIP switch."
    )
    parser.add_argument("--version", action="version", version=f"callto {__version__}")
    parser.add_argument("--data-dir", help="data directory (default: $CALLTO_DATA_DIR)")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve", help="start the server (HTTP API, web app, SIP switch)",
        description="Start the server (HTTP API, web app, SIP switch) in the foreground.",
        epilog=settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.set_defaults(handler=cmd_serve)

    init = commands.add_parser(
        "init", help="create the data folder and database, print the first admin's password",
        epilog=uses_help("CALLTO_ADMIN_PASSWORD"),
    )
    init.set_defaults(handler=cmd_init)

    bak = commands.add_parser("backup", help="write one archive of the database and the data folder",
                              epilog=uses_help())
    bak.add_argument("file", help="archive to write (.tar.gz)")
    bak.set_defaults(handler=cmd_backup)
    res = commands.add_parser(
        "restore", help="restore an archive into an empty data folder and database",
        description="Restore a `callto backup` archive. Refuses a data folder or database that has data, "
        "or that a running server uses, unless --force.", epilog=uses_help(),
    )
    res.add_argument("file", help="archive written by `callto backup`")
    res.add_argument("--force", action="store_true", help="overwrite existing data, even under a running server")
    res.set_defaults(handler=cmd_restore)

    db = commands.add_parser("db", help="database maintenance", epilog=uses_help())
    db_cmds = db.add_subparsers(dest="db_command", required=True)
    db_cmds.add_parser("upgrade", help="apply schema migrations").set_defaults(handler=cmd_db_upgrade)

    admin = commands.add_parser("admin", help="administer users and devices (same data as the server)",
                                epilog=uses_help("CALLTO_SECRET_KEY", "CALLTO_REDIS_URL", "CALLTO_REDIS_PREFIX"))
    admin_cmds = admin.add_subparsers(dest="admin_command", metavar="WHAT", required=True)

    user = admin_cmds.add_parser("user", help="users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create a user (prints a generated password unless --password)")
    add.add_argument("username")
    add.add_argument("--name", help="display name")
    add.add_argument("--extension")
    add.add_argument("--password")
    add.add_argument("--role", choices=["user", "admin"], default="user")
    add.add_argument("--outbound", choices=["internal", "national", "international"], default="national")
    add.add_argument("--mobile")
    add.set_defaults(handler=cmd_user_add)
    user.add_parser("list", help="list users").set_defaults(handler=cmd_user_list)
    show = user.add_parser("show", help="show one user (name or id)")
    show.add_argument("user")
    show.add_argument("--secrets", action="store_true", help="include device SIP passwords")
    show.set_defaults(handler=cmd_user_show)
    setp = user.add_parser("set", help="change a user")
    setp.add_argument("user")
    setp.add_argument("--username")
    setp.add_argument("--name")
    setp.add_argument("--extension")
    setp.add_argument("--role", choices=["user", "admin"])
    setp.add_argument("--outbound", choices=["internal", "national", "international"])
    setp.add_argument("--mobile")
    setp.set_defaults(handler=cmd_user_set)
    delete = user.add_parser("delete", help="delete a user and their devices")
    delete.add_argument("user")
    delete.set_defaults(handler=cmd_user_delete)
    reset = user.add_parser("reset-password", help="set a new password (generated unless given)")
    reset.add_argument("user")
    reset.add_argument("--password")
    reset.set_defaults(handler=cmd_reset_password)

    device = admin_cmds.add_parser("device", help="devices").add_subparsers(
        dest="device_command", required=True
    )
    dadd = device.add_parser("add", help="give a user a device (prints its SIP credentials)")
    dadd.add_argument("user")
    dadd.add_argument("kind", choices=["webphone", "link", "deskphone"])
    dadd.add_argument("--label")
    dadd.set_defaults(handler=cmd_device_add)
    dlist = device.add_parser("list", help="list a user's devices")
    dlist.add_argument("user")
    dlist.add_argument("--secrets", action="store_true")
    dlist.set_defaults(handler=cmd_device_list)
    ddel = device.add_parser("delete", help="remove a device")
    ddel.add_argument("device_id", type=int)
    ddel.set_defaults(handler=cmd_device_delete)

    for sub in (add, show, setp, dadd, dlist, user.choices["list"]):
        sub.add_argument("--json", action="store_true", help="print JSON")
    extend_parser(commands)
    if "doctor" in commands.choices:
        commands.choices["doctor"].epilog = uses_help("CALLTO_BIND", "CALLTO_HTTP_PORT", "CALLTO_SECRET_KEY")
    return parser


def extend_parser(commands: Any) -> None:
    """Commands contributed by feature packages (doctor, phones, ...), wired in one place."""
    for module_name in ("callto.dialer.cli", "callto.provisioning.cli"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError:
            continue
        module.register(commands)


def uses_help(*extra: str) -> str:
    """The settings a maintenance command reads, for its ``--help``: where the data is, and ``extra``."""
    names = ", ".join(("CALLTO_DATA_DIR (or --data-dir)", "CALLTO_DATABASE_URL", *extra))
    return f"settings and variables: {names}; and the settings file and others `callto serve --help` lists"


def settings_help() -> str:
    """The settings ``serve`` reads, for ``--help`` (names, defaults, and where they come from)."""
    from callto.config import settings_reference

    return settings_reference()


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import OperationalError

    from callto.ops.checks import EXIT_BAD_SETTING, EXIT_DATABASE, EXIT_ERROR, OpsError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(data_dir=args.data_dir)
        handler: Handler = args.handler
        return handler(args, settings)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            print(f"callto: {where}: {err['msg']}", file=sys.stderr)
        return EXIT_BAD_SETTING
    except ConfigError as exc:
        print(f"callto: {exc.message}", file=sys.stderr)
        return EXIT_BAD_SETTING
    except CalltoError as exc:
        print(f"callto: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except OpsError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"callto: {exc.message}", file=sys.stderr)
        return exc.code
    except OperationalError as exc:
        if args.debug:
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        print(f"callto: the database failed: {reason}; check CALLTO_DATABASE_URL", file=sys.stderr)
        return EXIT_DATABASE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"callto: unexpected error: {exc.__class__.__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
