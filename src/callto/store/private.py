"""Files that hold secrets are the server's alone: the data folder 0700, the database, keys and
certificates 0600; at start, each one found wider is named in a warning (not changed: an operator may
have meant it, e.g. a backup group).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) 0700; an existing folder is left as it is."""
    if not path.exists():
        path.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask


def private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it does not exist (so what writes it later keeps that mode)."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        os.close(fd)


def too_open(path: Path, allowed: int) -> bool:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return False
    return bool(mode & ~allowed)


def check_private(data_dir: Path, extra: list[Path] | None = None) -> list[str]:
    """Warn, naming each, about secret files readable or writable by others than the owner: the data
    folder, the SQLite database (and its -wal/-shm), the secret key, the TLS key and certificate."""
    warnings = []
    if too_open(data_dir, DIR_MODE):
        warnings.append(f"{data_dir} is mode {_mode(data_dir)}: other users can look inside; chmod 700 {data_dir}")
    candidates = [data_dir / name for name in ("callto.db", "callto.db-wal", "callto.db-shm", "secret.key")]
    candidates += [data_dir / "tls" / "server.key", data_dir / "tls" / "server.crt", *(extra or [])]
    tls = data_dir / "tls"
    if too_open(tls, DIR_MODE):
        warnings.append(f"{tls} is mode {_mode(tls)}; chmod 700 {tls}")
    for path in candidates:
        if path.is_file() and too_open(path, FILE_MODE):
            warnings.append(f"{path} is mode {_mode(path)}: other users can read it; chmod 600 {path}")
    for text in warnings:
        log.warning("secret file too open: %s", text)
    return warnings


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))[2:].rjust(4, "0")
