"""A real rtpengine for tests, started through callto's own supervisor on 127.0.0.1.

:func:`running_rtpengine` (sync context manager, used by the ``rtpengine`` fixture) starts it on a
background loop and yields an :class:`RtpengineHandle` with the ng address; each test makes its own
:class:`~callto.media.rtpengine.NgClient` (or sets ``media.rtpengine = "host:port"`` on a server under
test). Media ports come from a random free range so parallel suites do not collide.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from callto.media.supervisor import RtpengineSupervisor, find_rtpengine
from support.loop import LoopThread
from support.ports import free_port_range


@dataclass
class RtpengineHandle:
    supervisor: RtpengineSupervisor
    loop: LoopThread
    restarts_before_kill: int = 0

    @property
    def host(self) -> str:
        return self.supervisor.ng_host

    @property
    def port(self) -> int:
        return self.supervisor.ng_port

    @property
    def address(self) -> str:
        """``host:port`` as the ``media.rtpengine`` setting takes it."""
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.supervisor.log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> int:
        """SIGKILL the current rtpengine (the supervisor should restart it); return the old pid."""
        pid = self.supervisor.pid
        if pid is None:
            raise RuntimeError("rtpengine is not running")
        self.restarts_before_kill = self.supervisor.restarts
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, timeout: float = 15.0) -> None:
        """Wait until the supervisor has brought rtpengine back after the last :meth:`kill`."""
        self.loop.run(self.supervisor.wait_restarts(self.restarts_before_kill + 1, timeout), timeout + 1)


def rtpengine_binary() -> Path | None:
    return find_rtpengine()


@contextlib.contextmanager
def running_rtpengine(run_dir: Path, size: int = 200) -> Iterator[RtpengineHandle]:
    binary = find_rtpengine()
    if binary is None:
        raise RuntimeError("rtpengine not installed (Debian package rtpengine-daemon)")
    port_min, port_max = free_port_range(size)
    loop = LoopThread("rtpengine-supervisor")
    supervisor = loop.run(_make(binary, port_min, port_max, run_dir))
    try:
        loop.run(supervisor.start(), 20)
        yield RtpengineHandle(supervisor, loop)
    finally:
        try:
            loop.run(supervisor.stop(), 15)
        finally:
            loop.close()


async def _make(binary: Path, port_min: int, port_max: int, run_dir: Path) -> RtpengineSupervisor:
    # Built on the supervisor's loop: its asyncio primitives belong to that loop.
    return RtpengineSupervisor(
        binary, port_min=port_min, port_max=port_max, run_dir=run_dir, backoff_initial=0.2, backoff_max=2.0
    )
