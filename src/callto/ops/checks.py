"""What must hold before callto touches its data: a usable data folder, a reachable database, one that
exists (unless we are asked to create it), free ports. Each failure is one :class:`OpsError` with a line
naming the problem and the setting to change, and its own exit code (documented in docs/operations.md).
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from callto.config import Settings

# Exit codes of ``callto`` (the same for ``serve`` and the administration commands).
EXIT_OK = 0
EXIT_ERROR = 1  # a refused operation (no such user, already exists, ...)
EXIT_BAD_SETTING = 2  # a setting or an argument has a bad value
EXIT_DATA_DIR = 3  # the data folder cannot be used
EXIT_DATABASE = 4  # the database cannot be reached
EXIT_PORT = 5  # a port to listen on is taken or not allowed
EXIT_NOT_INITIALIZED = 6  # no callto database here yet: run ``callto init``
EXIT_SERVER_RUNNING = 7  # refused because a server is running on this data (restore without --force)

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "the operation was refused (the message says why)",
    EXIT_BAD_SETTING: "a setting or an argument has a bad value",
    EXIT_DATA_DIR: "the data folder cannot be used (not a folder, not writable)",
    EXIT_DATABASE: "the database cannot be reached",
    EXIT_PORT: "a port to listen on is taken or not allowed",
    EXIT_NOT_INITIALIZED: "there is no callto database there yet (run `callto init`)",
    EXIT_SERVER_RUNNING: "a server is running on this data (restore needs --force)",
}


class OpsError(Exception):
    """One line for the operator and the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def database_label(settings: Settings) -> str:
    """The database URL without its password, for messages."""
    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def check_data_dir(settings: Settings, *, create: bool) -> None:
    """The data folder is a writable folder (made, 0700, when ``create`` and it does not exist)."""
    folder = settings.data_dir
    if folder.exists() and not folder.is_dir():
        raise OpsError(
            f"the data folder {folder} is not a folder; set CALLTO_DATA_DIR (or --data-dir) to a folder",
            EXIT_DATA_DIR,
        )
    if not folder.exists():
        if not create:
            return
        try:
            folder.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise OpsError(
                f"cannot create the data folder {folder}: {exc.strerror}; set CALLTO_DATA_DIR (or --data-dir)",
                EXIT_DATA_DIR,
            ) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OpsError(
            f"the data folder {folder} is not writable by this user; fix its owner or set CALLTO_DATA_DIR",
            EXIT_DATA_DIR,
        )


def database_initialized(settings: Settings) -> bool:
    """Whether a callto database exists at the configured URL (raises OpsError when unreachable)."""
    path = sqlite_path(settings)
    if path is not None and not path.exists():
        return False
    engine = create_engine(
        settings.effective_database_url.replace("postgresql://", "postgresql+psycopg://", 1),
        connect_args={} if path is not None else {"connect_timeout": 5},
    )
    try:
        with engine.connect() as conn:
            return bool(inspect(conn).has_table("settings"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OpsError(
            f"cannot reach the database {database_label(settings)}: {reason}; check CALLTO_DATABASE_URL",
            EXIT_DATABASE,
        ) from exc
    finally:
        engine.dispose()


def require_initialized(settings: Settings) -> None:
    """For administration commands: refuse to create anything; say what to run instead."""
    check_data_dir(settings, create=False)
    if not settings.data_dir.is_dir() and sqlite_path(settings) is not None:
        raise OpsError(
            f"there is no data folder {settings.data_dir}; run `callto init` to create one, or set "
            "CALLTO_DATA_DIR (or --data-dir) to the server's",
            EXIT_NOT_INITIALIZED,
        )
    if not database_initialized(settings):
        raise OpsError(
            f"there is no callto database at {database_label(settings)}; run `callto init` to create one, or "
            "set CALLTO_DATABASE_URL / CALLTO_DATA_DIR to the server's",
            EXIT_NOT_INITIALIZED,
        )


def _port_problem(host: str, port: int, kind: socket.SocketKind) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and the switch do
        try:
            sock.bind((host or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "address already in use (another program listens there)"
            if exc.errno == errno.EACCES:
                return "permission denied (ports below 1024 need a privilege)"
            return exc.strerror or str(exc)
    return None


def check_ports(settings: Settings) -> None:
    """Every port the server listens on is free (checked before anything is started or printed).

    A port can still be taken between this check and the bind; the server reports that the same way.
    The wording ("could not listen", "address already in use") is what scripts and tests look for."""
    wanted = [
        ("CALLTO_HTTP_PORT", settings.http_port, socket.SOCK_STREAM, "TCP"),
        ("CALLTO_HTTPS_PORT", settings.https_port, socket.SOCK_STREAM, "TCP"),
        ("CALLTO_SIP_PORT", settings.sip_port, socket.SOCK_DGRAM, "UDP"),
        ("CALLTO_SIP_PORT", settings.sip_port, socket.SOCK_STREAM, "TCP"),
    ]
    if settings.sip_tls_port:
        wanted.append(("CALLTO_SIP_TLS_PORT", settings.sip_tls_port, socket.SOCK_STREAM, "TCP"))
    seen: dict[tuple[int, str], str] = {}
    for setting, port, kind, proto in wanted:
        other = seen.get((port, proto))
        if other is not None and other != setting:
            raise OpsError(f"{setting} and {other} are both {port}; give each its own port", EXIT_PORT)
        seen[(port, proto)] = setting
        problem = _port_problem(settings.bind, port, kind)
        if problem is not None:
            raise OpsError(
                f"could not listen on {settings.bind}:{port}/{proto}: {problem}; change {setting}", EXIT_PORT
            )
