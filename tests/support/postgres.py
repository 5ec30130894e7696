"""A throwaway PostgreSQL server for tests that stop and start their database (outages): Debian's binaries
under ``/usr/lib/postgresql/*/bin``, ``initdb`` into a temporary folder, on a free loopback port. The
machine's shared PostgreSQL is never touched.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is owned by, and run as, the
``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.ports import free_port


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` folder that has initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def missing_reason() -> str | None:
    """Why a throwaway server cannot be started here, or None when it can."""
    if postgres_bin() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run a throwaway PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


@dataclass
class ThrowawayPostgres:
    """One cluster in ``folder`` on ``port``; :meth:`stop` and :meth:`start` simulate an outage."""

    folder: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            log = (self.folder / "postgres.log")
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}\n{tail}")

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "postgres.log"), "-o", options,
                  "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started throwaway PostgreSQL, stopped (by its own pg_ctl, so by its PID file) and removed at the
    end. Its folder is a fresh one under the system temp folder: pytest's own is private to root, which
    the ``postgres`` user could not enter."""
    pg_bin = postgres_bin()
    assert pg_bin is not None, missing_reason()
    folder = Path(tempfile.mkdtemp(prefix="callto-pg-"))
    server = ThrowawayPostgres(folder=folder, port=free_port("tcp"), bin=pg_bin)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            if server.running():
                try:
                    server.stop()
                except (RuntimeError, subprocess.TimeoutExpired):
                    server._run("pg_ctl", "-D", str(server.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
