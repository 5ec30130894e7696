"""A supervised rtpengine never outlives its server, and a restart never leaves two (real rtpengine)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callto.media import RtpengineSupervisor
from callto.media.supervisor import find_rtpengine, free_udp_port

BINARY = find_rtpengine()
pytestmark = pytest.mark.skipif(BINARY is None, reason="rtpengine (Debian rtpengine-daemon) is not installed")


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in status.lower()


def _rtpengines_with(pid_path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--pidfile={pid_path}".encode() in argv and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


SERVER = """
import asyncio, sys
from pathlib import Path
from callto.media import RtpengineSupervisor

async def main():
    base = int(sys.argv[3])
    s = RtpengineSupervisor(Path(sys.argv[1]), run_dir=Path(sys.argv[2]), port_min=base, port_max=base + 20)
    await s.start()
    print(s.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_supervised_rtpengine_dies_with_a_server_killed_by_sigkill(tmp_path: Path) -> None:
    assert BINARY is not None
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(BINARY), str(tmp_path), str(free_udp_port())],
        stdout=subprocess.PIPE,
        text=True,
    )
    child: int | None = None
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        assert _alive(child)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(5)
        assert _wait(lambda: not _alive(child), 3.0), f"rtpengine {child} outlived its killed server"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_restart_ends_the_rtpengine_an_earlier_run_left_and_keeps_one(tmp_path: Path) -> None:
    assert BINARY is not None
    base = free_udp_port()
    supervisor = RtpengineSupervisor(BINARY, run_dir=tmp_path, port_min=base, port_max=base + 20)
    # An rtpengine of an earlier run that nothing tied to its parent (as an older callto left them).
    orphan = subprocess.Popen(
        supervisor.command(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert _wait(lambda: supervisor.pid_path.is_file() and supervisor.pid_path.read_text().strip(), 5.0)

        # The restarted server picks a new ng port, as a new process does.
        supervisor.ng_port = free_udp_port()
        new_pid: list[int | None] = []

        async def check() -> None:
            await supervisor.start()
            try:
                new_pid.append(supervisor.pid)
                assert orphan.poll() is not None or not _alive(orphan.pid)
                assert _rtpengines_with(supervisor.pid_path) == [supervisor.pid]
            finally:
                await supervisor.stop()

        asyncio.run(check())
        orphan.wait(5)
        assert new_pid and new_pid[0] != orphan.pid
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait(5)


def test_a_pidfile_naming_another_program_is_left_alone(tmp_path: Path) -> None:
    from callto.media.supervisor import end_stale_rtpengine

    other = subprocess.Popen(["sleep", "30"])
    try:
        pid_path = tmp_path / "rtpengine.pid"
        pid_path.write_text(f"{other.pid}\n")
        assert end_stale_rtpengine(pid_path) is None
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(5)
