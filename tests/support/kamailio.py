"""Debian's Kamailio as the cluster edge, started from the shipped ``packaging/kamailio/callto-edge.cfg``
exactly as docs/cluster.md tells an operator to (settings given with ``-A`` defines, nothing edited).

:func:`start_edge` writes the nodes file, starts ``kamailio -DD -E`` in the test's process group (so it
is killed at teardown by PID, with its workers) and waits until it listens.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from support.ports import free_port
from support.procs import ManagedProcess, ProcessGroup

EDGE_CONFIG = Path(__file__).resolve().parents[2] / "packaging" / "kamailio" / "callto-edge.cfg"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"


@dataclass
class Edge:
    process: ManagedProcess
    port: int
    nodes_file: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def kamailio_missing() -> str | None:
    if not Path(KAMAILIO).exists():
        return "Debian's kamailio is not installed (make test installs it)"
    return None


def _udp_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def start_edge(procs: ProcessGroup, work: Path, nodes: Sequence[tuple[str, int]], ping_interval: int = 1) -> Edge:
    work.mkdir(parents=True, exist_ok=True)
    nodes_file = work / "callto-nodes.list"
    nodes_file.write_text("".join(f"1 sip:{host}:{port}\n" for host, port in nodes))
    for _attempt in range(3):
        port = free_port("both")
        process = procs.start(
            [
                KAMAILIO, "-DD", "-E", "-m", "64", "-M", "8",
                "-f", str(EDGE_CONFIG),
                "-A", f"EDGE_LISTEN_UDP=udp:127.0.0.1:{port}",
                "-A", f"EDGE_LISTEN_TCP=tcp:127.0.0.1:{port}",
                "-A", f'EDGE_NODES_FILE="{nodes_file}"',
                "-A", f"EDGE_PING_INTERVAL={ping_interval}",
            ],
            name="kamailio",
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.alive():
            if _udp_bound(port):
                time.sleep(0.5)  # the workers finish their child_init
                return Edge(process, port, nodes_file)
            time.sleep(0.1)
        if process.alive():
            process.stop()
            raise RuntimeError(f"kamailio did not listen on {port}:\n{process.tail()}")
        # It exited: most likely the port was taken meanwhile; try another.
    raise RuntimeError(f"kamailio would not start:\n{process.tail()}")
