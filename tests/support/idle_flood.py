"""Idle TCP connections from many loopback addresses, held in a child process (for the SIP connection caps).

``python -m support.idle_flood --port P --count N --per-source K --first 2`` opens ``N`` connections to
``127.0.0.1:P``, ``K`` from each source address ``127.0.0.<first>``, ``127.0.0.<first+1>``..., sends nothing
and holds them. On each ``check`` line on stdin it prints one JSON line ``{"attempted", "connected",
"held", "failed"}`` (``held``: still open as seen from here, the server neither refused nor closed it);
it exits when stdin closes. A child process so the caller's own file limit stays free and several children
can exceed one process's limit together (the 20,000 of ``bench/idle_connections.py``).
:class:`IdleFlood` starts and talks to one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

_TESTS = Path(__file__).resolve().parents[1]


def _source(index: int, per_source: int, first: int) -> str:
    n = first + index // per_source  # 127.0.0.2 ... 127.0.0.254, then 127.0.1.x ...
    return f"127.0.{n // 253}.{n % 253 + 1}" if n > 254 else f"127.0.0.{n}"


def _held(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--per-source", type=int, default=100)
    parser.add_argument("--first", type=int, default=2)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks: list[socket.socket] = []
    failed = in_a_row = 0
    for i in range(args.count):
        if in_a_row >= 50:  # the server accepts nothing any more (its backlog is full): count the rest failed
            failed += args.count - i
            break
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((_source(i, args.per_source, args.first), 0))
            sock.settimeout(1.0)
            sock.connect(("127.0.0.1", args.port))
            sock.setblocking(False)  # the checks peek without waiting
            socks.append(sock)
            in_a_row = 0
        except OSError:
            failed += 1
            in_a_row += 1
            sock.close()
    print(json.dumps({"ready": True, "connected": len(socks), "failed": failed}), flush=True)
    for line in sys.stdin:
        if line.strip() == "check":
            held = sum(_held(s) for s in socks)
            print(json.dumps({"attempted": args.count, "connected": len(socks), "held": held, "failed": failed}),
                  flush=True)
    for sock in socks:
        sock.close()


class IdleFlood:
    """One flood child: ``IdleFlood(port, count, per_source, first).start()``, ``check()``, ``stop()``."""

    def __init__(self, port: int, count: int, *, per_source: int = 100, first: int = 2) -> None:
        self.argv = [sys.executable, "-m", "support.idle_flood", "--port", str(port), "--count", str(count),
                     "--per-source", str(per_source), "--first", str(first)]
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}

    def start(self, timeout: float = 120.0) -> IdleFlood:
        env = {**os.environ, "PYTHONPATH": str(_TESTS)}
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        self.ready = json.loads(self.proc.stdout.readline() or "{}")
        return self

    def check(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("check\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


class HealthProbe(threading.Thread):
    """GET ``<url>/api/v1/health`` every 100 ms; keeps the slowest answer (a failure counts as 5 s)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.worst = 0.0
        self.worst_at = 0.0  # time.monotonic() when the slowest probe started
        self.slow: list[tuple[float, float]] = []  # (start, seconds) of every probe over 0.5 s
        self.count = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stopping.is_set():
                start = time.monotonic()
                try:
                    ok = client.get(f"{self.url}/api/v1/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                took = time.monotonic() - start if ok else 5.0
                if took > self.worst:
                    self.worst, self.worst_at = took, start
                if took > 0.5:
                    self.slow.append((start, took))
                self.count += 1
                self.stopping.wait(0.1)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
