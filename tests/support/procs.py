"""Subprocesses for tests: output captured to a file, readiness waited for, always killed at the end.

:class:`ManagedProcess` starts a command in its own session (so the whole process group can be
killed), writes stdout+stderr to a log file, and offers ``wait_for_output`` / ``wait_until`` with a
timeout. :class:`ProcessGroup` (the ``procs`` fixture) kills every process it started at teardown,
whether the test passed or not.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path


class ProcessError(RuntimeError):
    """A process did not become ready, or died; the message carries the tail of its log."""


class ManagedProcess:
    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin_pipe: bool = False,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            env={**os.environ, **env} if env else None,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``predicate`` until true; fail with the log tail on timeout or if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if not self.alive():
                raise ProcessError(f"{self.argv[0]} exited ({self.popen.returncode}) before {what}:\n{self.tail()}")
            time.sleep(0.05)
        raise ProcessError(f"{self.argv[0]}: no {what} within {timeout}s:\n{self.tail()}")

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the log matches ``pattern`` (regex) and return the match."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = re.search(pattern, self.output())
            if match:
                found.append(match)
            return match is not None

        self.wait_until(seen, timeout, f"output matching {pattern!r}")
        return found[0]

    def stop(self, grace: float = 3.0) -> int:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds; return the exit status."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        else:
            # The leader is gone; children it left in its group must go too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        self._log.close()
        return self.popen.returncode


class ProcessGroup:
    """Starts processes for one test and stops all of them at teardown (the ``procs`` fixture)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[ManagedProcess] = []

    def start(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin_pipe: bool = False,
    ) -> ManagedProcess:
        label = name or Path(str(argv[0])).name
        log_path = self.log_dir / f"{label}-{len(self.processes)}.log"
        process = ManagedProcess(argv, log_path, env=env, cwd=cwd, stdin_pipe=stdin_pipe)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@contextlib.contextmanager
def process_group(log_dir: Path) -> Iterator[ProcessGroup]:
    group = ProcessGroup(log_dir)
    try:
        yield group
    finally:
        group.stop_all()
