"""Run a sipp scenario against a target and collect what it says: exit code, stats CSV, error log.

sipp's exit codes: 0 every call succeeded, 1 at least one failed, 97 exited on an internal command,
99 normal exit without calls processed, 255/254 (-1/-2) fatal error / could not bind.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support.ports import LOOPBACK, free_port


@dataclass
class SippResult:
    returncode: int
    stats_csv: Path
    error_log: Path
    message_log: Path
    stdout: str
    stderr: str
    argv: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def errors(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def messages(self) -> str:
        return self.message_log.read_text(errors="replace") if self.message_log.exists() else ""

    def stats(self) -> dict[str, str]:
        """The last row of the statistics CSV (columns like ``SuccessfulCall(C)``, ``FailedCall(C)``)."""
        if not self.stats_csv.exists():
            return {}
        with self.stats_csv.open(newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter=";"))
        return rows[-1] if rows else {}

    def counter(self, name: str) -> int:
        """A cumulative counter from the stats, e.g. ``counter("SuccessfulCall")``."""
        value = self.stats().get(f"{name}(C)", "0") or "0"
        return int(value)

    def describe(self) -> str:
        return (
            f"sipp exit {self.returncode}; argv {' '.join(self.argv)}\nstdout: {self.stdout[-1500:]}\n"
            f"stderr: {self.stderr[-1500:]}\nerrors: {self.errors()[-2000:]}"
        )


class SippProcess:
    """A sipp started in the background (e.g. a UAS standing in for a registrar or a trunk)."""

    def __init__(
        self, argv: list[str], port: int, workdir: Path, stats_csv: Path, error_log: Path, message_log: Path
    ) -> None:
        self.argv = argv
        self.port = port
        self.stats_csv, self.error_log, self.message_log = stats_csv, error_log, message_log
        self.popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            text=True,
            start_new_session=True,
        )

    def finish(self, timeout: float) -> SippResult:
        """Wait for sipp to end (kill it after ``timeout`` s) and collect its results."""
        try:
            stdout, stderr = self.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            stdout, stderr = self.popen.communicate()
        return SippResult(
            self.popen.returncode, self.stats_csv, self.error_log, self.message_log, stdout, stderr, self.argv
        )

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.communicate()


def start_sipp(
    scenario: Path,
    target: str | None,
    workdir: Path,
    *,
    inject_csv: Path | None = None,
    calls: int = 1,
    rate: float | None = None,
    transport: str = "u1",
    local_port: int | None = None,
    timeout: float = 30.0,
    extra: Sequence[str] = (),
) -> SippProcess:
    """Start sipp; ``target=None`` runs it as a server (UAS) on ``local_port`` (free one if None)."""
    workdir.mkdir(parents=True, exist_ok=True)
    name = scenario.stem
    stats_csv = workdir / f"{name}-stats.csv"
    error_log = workdir / f"{name}-errors.log"
    message_log = workdir / f"{name}-messages.log"
    port = local_port or free_port("tcp" if transport.startswith("t") else "udp")
    argv = ["sipp", *([target] if target else [])]
    argv += ["-sf", str(scenario), "-i", LOOPBACK, "-p", str(port), "-t", transport, "-m", str(calls)]
    argv += ["-nostdin", "-trace_stat", "-stf", str(stats_csv), "-fd", "1"]
    argv += ["-trace_err", "-error_file", str(error_log), "-trace_msg", "-message_file", str(message_log)]
    argv += ["-timeout", f"{int(timeout)}s", "-timeout_error"]
    if rate is not None:
        argv += ["-r", str(rate)]
    if inject_csv is not None:
        argv += ["-inf", str(inject_csv)]
    argv += list(extra)
    return SippProcess(argv, port, workdir, stats_csv, error_log, message_log)


def run_sipp(
    scenario: Path,
    target: str,
    workdir: Path,
    *,
    inject_csv: Path | None = None,
    calls: int = 1,
    rate: float | None = None,
    transport: str = "u1",
    local_port: int | None = None,
    timeout: float = 30.0,
    extra: Sequence[str] = (),
) -> SippResult:
    """Run sipp in the foreground (``-nostdin``) until it ends or ``timeout`` seconds pass.

    ``target`` is ``host:port``; ``transport`` is sipp's ``-t`` (``u1`` UDP, ``t1`` TCP). sipp is killed
    if it outlives ``timeout`` by 10 s (the result then has returncode -9).
    """
    process = start_sipp(
        scenario,
        target,
        workdir,
        inject_csv=inject_csv,
        calls=calls,
        rate=rate,
        transport=transport,
        local_port=local_port,
        timeout=timeout,
        extra=extra,
    )
    return process.finish(timeout + 10)
