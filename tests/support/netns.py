"""Running media tests in a private network namespace that has nothing but ``lo``.

Why: Chromium (and any WebRTC stack that gathers every interface) also offers and checks candidates on
the machine's real address; rtpengine would then send media there. Tests must only ever use loopback,
so browser/WebRTC end-to-end tests run, together with the server and rtpengine they talk to, in::

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/pytest tests/e2e -q'

(root is enough; services on the host, e.g. PostgreSQL, are not reachable from inside: use SQLite).

From a normal pytest run, a test can re-run *itself* in a namespace: :func:`rerun_in_netns` starts
``pytest <nodeid>`` under ``unshare -n`` with ``CALLTO_IN_NETNS=1`` and returns the finished process;
inside, :func:`in_private_netns` is true and the test does its real work. aiortc peers from
``support.aiortc_peer`` do not need this (their candidates are pinned to 127.0.0.1).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

MARKER = "CALLTO_IN_NETNS"


def interfaces() -> list[str]:
    """Network interfaces of *this* namespace (``/sys/class/net`` would show the host's: sysfs is
    not remounted by ``unshare -n``)."""
    return sorted(name for _index, name in socket.if_nameindex())


def in_private_netns() -> bool:
    """True when this process sees only ``lo`` (and it was started by :func:`rerun_in_netns`)."""
    return os.environ.get(MARKER) == "1" and interfaces() == ["lo"]


def netns_unavailable_reason() -> str | None:
    """None if ``unshare -n`` works here, else why not (for a printed skip/failure reason)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux / iproute2) not installed"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up && ip -o link"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if probe.returncode != 0:
        return f"unshare -n failed: {probe.stderr.strip()}"
    return None


def netns_command(argv: list[str]) -> list[str]:
    """Wrap ``argv`` so it runs in a fresh network namespace with ``lo`` up."""
    quoted = " ".join(_shell_quote(a) for a in argv)
    return ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {quoted}"]


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def rerun_in_netns(nodeid: str, rootdir: Path, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    """Run one pytest node again inside a private namespace; the caller asserts on its returncode."""
    argv = [sys.executable, "-m", "pytest", nodeid, "-q", "-p", "no:cacheprovider", "-x"]
    return subprocess.run(
        netns_command(argv),
        cwd=rootdir,
        env={**os.environ, MARKER: "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
