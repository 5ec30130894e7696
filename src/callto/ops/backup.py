"""``callto backup FILE`` and ``callto restore FILE``: one archive with the database and the data folder.

The archive is a gzip'ed tar:

- ``manifest.json``: format version, callto version, time, database kind, the files it holds;
- ``database/callto.db`` (SQLite, copied with SQLite's online backup API: consistent while the server
  writes) or ``database/callto.pgdump`` (PostgreSQL, ``pg_dump --format=custom``: one snapshot);
- ``data/...``: every other file of the data folder (TLS certificate and key, ``secret.key`` and other key
  files, ``callto.toml``), except the SQLite database and its WAL/SHM files.

A running server holds a shared lock on ``<data>/.server.lock`` (:func:`hold_server_lock`); restore
takes it exclusively, so it knows when a server is running on that data and refuses without ``--force``.
It also refuses a data folder that already has a database, unless ``--force``. After a restore the
directory generation is renewed, so a server that is running (``--force``) drops what it cached.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

from callto import __version__
from callto.config import Settings
from callto.ops.checks import (
    EXIT_DATABASE,
    EXIT_ERROR,
    EXIT_SERVER_RUNNING,
    OpsError,
    check_data_dir,
    database_initialized,
    require_initialized,
    sqlite_path,
)

FORMAT = 1
LOCK_NAME = ".server.lock"
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal")


# the server's lock
def hold_server_lock(data_dir: Path) -> IO[str]:
    """Called by ``serve``: a shared lock held for the life of the process (several nodes may share)."""
    handle = (data_dir / LOCK_NAME).open("a")
    fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    return handle


@contextlib.contextmanager
def _no_server(data_dir: Path, force: bool) -> Iterator[None]:
    lock = data_dir / LOCK_NAME
    if not lock.exists():
        yield
        return
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not force:
                raise OpsError(
                    f"a callto server is running on {data_dir}; stop it first (or restore --force: its "
                    "users then see the restored data)",
                    EXIT_SERVER_RUNNING,
                ) from None
        yield


# helpers
def _libpq_url(settings: Settings) -> str:
    url = make_url(settings.effective_database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError as exc:
        raise OpsError(f"{argv[0]} is not installed (Debian: postgresql-client); it is needed to {what}",
                       EXIT_ERROR) from exc
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise OpsError(f"{argv[0]} could not {what}: {reason}", EXIT_DATABASE)


def _data_files(settings: Settings) -> list[Path]:
    folder = settings.data_dir
    database = sqlite_path(settings)
    skip = set()
    if database is not None:
        skip = {database.resolve(), *(Path(str(database.resolve()) + s) for s in _SKIP_SUFFIXES)}
    files = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink() or path.name == LOCK_NAME:
            continue
        if path.resolve() in skip:
            continue
        files.append(path)
    return files


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


# backup
def backup(settings: Settings, target: Path) -> dict[str, Any]:
    """Write the archive to ``target`` (atomically: a temporary file renamed at the end)."""
    require_initialized(settings)
    database = sqlite_path(settings)
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="callto-backup-") as tmp:
        work = Path(tmp)
        if database is not None:
            dump = work / "callto.db"
            source = sqlite3.connect(str(database), timeout=10)
            copy = sqlite3.connect(str(dump))
            try:
                with copy:
                    source.backup(copy)  # consistent even while the server writes
            finally:
                copy.close()
                source.close()
            kind, member = "sqlite", "database/callto.db"
        else:
            dump = work / "callto.pgdump"
            _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}",
                  _libpq_url(settings)], "dump the database")
            kind, member = "postgresql", "database/callto.pgdump"
        files = _data_files(settings)
        names = [str(p.relative_to(settings.data_dir)) for p in files]
        manifest = {
            "format": FORMAT, "callto": __version__, "created_at": datetime.now(UTC).isoformat(),
            "database": kind, "files": names,
        }
        partial = target.with_name(f".{target.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # keys inside: owner only
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
            tar.add(str(dump), arcname=member)
            for path, name in zip(files, names, strict=True):
                tar.add(str(path), arcname=f"data/{name}")
        partial.replace(target)
    return manifest


# restore
def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = tar.extractfile("manifest.json")
    except KeyError:
        member = None
    if member is None:
        raise OpsError("this is not a callto backup (no manifest.json)", EXIT_ERROR)
    manifest: dict[str, Any] = json.loads(member.read())
    if manifest.get("format") != FORMAT:
        raise OpsError(f"backup format {manifest.get('format')!r} is not one this callto reads", EXIT_ERROR)
    return manifest


def _renew_generation(settings: Settings) -> None:
    from callto.directory.generation import bump
    from callto.store.database import Database

    db = Database(settings.effective_database_url)
    try:
        with db.session() as session:
            bump(session)
    finally:
        db.dispose()


def restore(settings: Settings, source: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore ``source`` into the configured data folder and database (see the module docstring)."""
    if not source.is_file():
        raise OpsError(f"there is no backup file {source}", EXIT_ERROR)
    try:
        tar = tarfile.open(source, mode="r:gz")  # noqa: SIM115 (closed by the with below, after the checks)
    except (tarfile.TarError, OSError) as exc:
        raise OpsError(f"{source} is not a callto backup: {exc}", EXIT_ERROR) from exc
    with tar:
        manifest = _read_manifest(tar)
        database = sqlite_path(settings)
        wanted = "sqlite" if database is not None else "postgresql"
        if manifest["database"] != wanted:
            raise OpsError(
                f"the backup holds a {manifest['database']} database and CALLTO_DATABASE_URL is {wanted}; "
                "set CALLTO_DATABASE_URL to the kind of database the backup came from", EXIT_ERROR,
            )
        check_data_dir(settings, create=True)
        with _no_server(settings.data_dir, force):
            if database_initialized(settings) and not force:
                raise OpsError(
                    f"{settings.data_dir} already has a callto database; restore into an empty data folder "
                    "or database, or add --force to overwrite it", EXIT_ERROR,
                )
            with tempfile.TemporaryDirectory(prefix="callto-restore-") as tmp:
                work = Path(tmp)
                tar.extractall(work, filter="data")
                _restore_database(settings, work, database)
                files = work / "data"
                if files.is_dir():
                    for path in sorted(files.rglob("*")):
                        if path.is_file():
                            dest = settings.data_dir / path.relative_to(files)
                            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                            shutil.copy2(path, dest)
            _renew_generation(settings)
    return manifest


def _restore_database(settings: Settings, work: Path, database: Path | None) -> None:
    if database is not None:
        copy = work / "database" / "callto.db"
        database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        source = sqlite3.connect(str(copy))
        dest = sqlite3.connect(str(database), timeout=10)
        try:
            with dest:
                source.backup(dest)  # page by page under SQLite's locks: safe with a reader open
        finally:
            dest.close()
            source.close()
        return
    _run(["pg_restore", "--no-owner", "--no-privileges", "--clean", "--if-exists", "--single-transaction",
          f"--dbname={_libpq_url(settings)}", str(work / "database" / "callto.pgdump")], "restore the database")
