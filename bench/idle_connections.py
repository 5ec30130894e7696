"""Idle SIP TCP connections against a real ``callto serve``: how many it holds, and whether it keeps working.

Owns the 20,000-connection figure of issue 16. A server with default settings and a TCP desk phone
(baresip) registered; then ``--count`` idle connections (default 20,000) from ``--per-source`` each of
127.0.0.2, 127.0.0.3, ... held by two child processes (one process's file limit is not enough), while
``/api/v1/health`` is probed every 100 ms. Reported: connections the server held, the slowest health
answer, the server's RSS before and during, whether a click-to-call still reached the desk phone, and
the log's size and "Too many open files" count. ``--src DIR`` runs the server from another source tree
(the code before a change: ``git archive <commit> src | tar -x -C DIR``).

Usage: ``.venv/bin/python bench/idle_connections.py [--count 20000] [--per-source 200] [--hold 20] [--src DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.baresip import Account, Baresip
from support.idle_flood import HealthProbe, IdleFlood, rss_kib
from support.procs import process_group
from support.server import Api, ServerProcess
from support.tone import write_tone_wav


def run(count: int, per_source: int, src: str | None, hold: float = 20.0) -> dict[str, object]:
    if src:
        os.environ["PYTHONPATH"] = str(Path(src).resolve())
    with tempfile.TemporaryDirectory(prefix="idle-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server = ServerProcess(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'c.db'}").start()
        floods: list[IdleFlood] = []
        probe = HealthProbe(server.url)
        result: dict[str, object] = {"attempted": count}
        flood_start = time.monotonic()
        try:
            with process_group(tmp / "logs") as procs:
                admin = Api(server.url).login("admin", "admin-secret-1")
                alice = admin.create_user("alice", extension="501", outbound="national")
                admin.create_user("bob", extension="502")
                sip = admin.add_device(alice["id"], "deskphone")["sip"]
                account = Account(aor=f"sip:{sip['username']}@callto.test", password=sip["password"],
                                  outbound=f"sip:127.0.0.1:{server.sip_port};transport=tcp", regint=600,
                                  answermode="manual")
                desk = Baresip(tmp, procs, name="desk", tone_wav=write_tone_wav(tmp / "t.wav", 440.0, 5.0),
                               account=account).start()
                desk.wait_registered(timeout=10)
                api = Api(server.url).login("alice", "password-123")  # before: argon2 is not what is measured
                assert server.proc is not None
                result["rss_before_kib"] = rss_kib(server.proc.pid)
                probe.start()
                start = flood_start = time.monotonic()
                half = count // 2
                sources_half = (half + per_source - 1) // per_source
                floods = [IdleFlood(server.sip_port, half, per_source=per_source, first=2).start(),
                          IdleFlood(server.sip_port, count - half, per_source=per_source,
                                    first=2 + sources_half).start()]
                result["open_seconds"] = round(time.monotonic() - start, 1)
                time.sleep(2.0)
                states = [f.check() for f in floods]
                result["connected"] = sum(int(s["connected"]) for s in states)
                result["held"] = sum(int(s["held"]) for s in states)
                result["rss_flooded_kib"] = rss_kib(server.proc.pid) if server.proc else None
                try:
                    r = api.post("/api/v1/calls", json={"to": "tel:502"}, headers={"Idempotency-Key": "b1"},
                                 timeout=10)
                    desk.wait_incoming(timeout=10)
                    result["click_to_call_reached_phone"] = r.status_code == 202
                    api.delete(f"/api/v1/calls/{r.json()['call_id']}", timeout=10)
                except Exception as exc:
                    result["click_to_call_reached_phone"] = f"no: {type(exc).__name__}"
                # Keep probing past the first-message timeout (10 s by default), when the server closes the
                # held connections that never spoke: the health answers must stay fast through that too.
                time.sleep(hold)
                result["held_after_hold"] = sum(int(f.check()["held"]) for f in floods)
        finally:
            for flood in floods:
                flood.stop()
            probe.stopping.set()
            probe.join(10)
            log = server.log()
            server.stop()
        result["health_worst_ms"] = round(probe.worst * 1000)
        result["health_probes"] = probe.count
        result["slow_probes_at_s"] = [(round(at - flood_start, 1), round(took, 2)) for at, took in probe.slow]
        result["log_lines"] = log.count("\n")
        result["too_many_open_files"] = log.count("Too many open files")
        result["summary_lines"] = sum(1 for line in log.splitlines() if "sip connections:" in line)
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--per-source", type=int, default=200)
    parser.add_argument("--src", default=None, help="run the server from this source tree (before a change)")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds to keep probing after the click")
    args = parser.parse_args()
    print(json.dumps(run(args.count, args.per_source, args.src, args.hold), indent=2))


if __name__ == "__main__":
    main()
