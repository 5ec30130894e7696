"""What the Kamailio edge costs: registrations and calls through the shipped edge in front of two callto
nodes, beside one callto node reached directly, in the same run.

Owns bench 7 (issue: several nodes behind Kamailio). Both set-ups get the same sipp load as benchmarks 1
and 2 (digest REGISTERs; authenticated INVITE -> 200 -> ACK -> BYE between a sipp UAC and a sipp UAS that
is a registered desk phone), stepped until a step is not clean. The two nodes share one SQLite database
(seeded before they start) and the key of the secrets in it; the edge is
``packaging/kamailio/callto-edge.cfg`` started as docs/cluster.md says. Through the edge, callers land on
either node by the hash of their From URI, so most calls cross nodes (the caller's node reaches the
callee through the registration the other node accepted). Reported per set-up: the best clean rate and
the CPU per registration or call of every process involved (both nodes and Kamailio's whole tree, from
``/proc``). On this 2-core machine two nodes and an edge share the same cores as one node: the edge can
only cost here; what it buys (failover, more machines) shows on more machines.

Usage: ``.venv/bin/python bench/edge.py [--quick] [--only register|calls]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sip_calls
import sip_register
from common import (
    KAMAILIO,
    LOOPBACK,
    ROOT,
    BenchServer,
    Proc,
    Result,
    cpu_seconds,
    free_port,
    process_tree,
    seed_directory,
    workdir,
)

EDGE_CONFIG = ROOT / "packaging" / "kamailio" / "callto-edge.cfg"
REGISTER_RATES = (100, 400, 1000, 2000, 4000, 8000)
CALL_RATES = (10, 50, 100, 200, 300, 500, 750)
QUICK_REGISTER_RATES = (100, 1000, 4000)
QUICK_CALL_RATES = (10, 100, 300)
DEVICES = 2_000


class Cluster:
    """Two ``callto serve`` on one SQLite file and Debian's Kamailio with the shipped edge config."""

    def __init__(self, work: Path) -> None:
        self.work = work
        database = work / "shared.db"
        from callto.store.secretbox import new_key_text

        shared = {"CALLTO_DATABASE_URL": f"sqlite:///{database}", "CALLTO_SECRET_KEY": new_key_text()}
        self.nodes = [BenchServer(work / f"node{i}", env_extra=dict(shared)) for i in (1, 2)]
        self.database_url = shared["CALLTO_DATABASE_URL"]
        self.edge: Proc | None = None
        self.port = 0

    def start(self, devices: int) -> None:
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
        seed_directory(self.database_url, devices)
        for node in self.nodes:
            node.start()
        nodes_file = self.work / "callto-nodes.list"
        nodes_file.write_text("".join(f"1 sip:{LOOPBACK}:{n.sip_port}\n" for n in self.nodes))
        self.port = free_port("both")
        argv = [KAMAILIO, "-DD", "-E", "-m", "256", "-M", "16", "-f", str(EDGE_CONFIG),
                "-A", f"EDGE_LISTEN_UDP=udp:{LOOPBACK}:{self.port}",
                "-A", f"EDGE_LISTEN_TCP=tcp:{LOOPBACK}:{self.port}",
                "-A", f'EDGE_NODES_FILE="{nodes_file}"']
        self.edge = Proc(argv, self.work / "edge.log")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not self.edge.alive():
                raise RuntimeError(f"kamailio exited:\n{self.edge.log()}")
            if len(process_tree(self.edge.pid)) > 2:
                time.sleep(1.0)  # workers up, and the first probes have found both nodes alive
                return
            time.sleep(0.1)
        raise RuntimeError(f"kamailio did not start:\n{self.edge.log()}")

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def cpu(self) -> float:
        total = sum(cpu_seconds(n.pid) for n in self.nodes)
        return total + (cpu_seconds(self.edge.pid) if self.edge is not None else 0.0)

    def stop(self) -> None:
        if self.edge is not None:
            self.edge.stop()
        for node in self.nodes:
            node.stop()


def _register_ladder(name: str, target: str, work: Path, cpu_of: Callable[[], float], rates: tuple[int, ...],
                     log: Callable[[str], None]) -> sip_register.Ladder:
    return sip_register.ladder(name, target, work, cpu_of, lambda: 0, rates, DEVICES, sip_register.STEP_SECONDS,
                               log)


def registrations(quick: bool, log: Callable[[str], None]) -> list[sip_register.Ladder]:
    rates = QUICK_REGISTER_RATES if quick else REGISTER_RATES
    out = []
    with workdir("edge-register-one") as work:
        server = BenchServer(work)
        try:
            server.seed(DEVICES)
            server.start()
            out.append(_register_ladder("one node", server.sip_target, work, lambda: cpu_seconds(server.pid),
                                        rates, log))
        except Exception as exc:
            out.append(sip_register.Ladder("one node", error=f"{type(exc).__name__}: {exc}"))
        finally:
            server.stop()
    with workdir("edge-register-two") as work:
        cluster = Cluster(work)
        try:
            cluster.start(DEVICES)
            out.append(_register_ladder("edge + two nodes", cluster.target, work, cluster.cpu, rates, log))
        except Exception as exc:
            out.append(sip_register.Ladder("edge + two nodes", error=f"{type(exc).__name__}: {exc}"))
        finally:
            cluster.stop()
    return out


def _calls_on(name: str, target: str, work: Path, cpu_of: Callable[[], float], rates: tuple[int, ...],
              log: Callable[[str], None], settle: float) -> sip_calls.CallLadder:
    uas: Proc | None = None
    try:
        uas_port = free_port("udp")
        if sip_calls.register(target, uas_port, [sip_calls.CALLEE], work, "reg-callee") != 1:
            raise RuntimeError("the callee's desk phone (sipp UAS) could not register")
        sip_calls.register(target, free_port("udp"), list(range(sip_calls.CALLERS)), work, "reg-callers")
        time.sleep(settle)  # through the edge: every node takes in the others' registrations (once a second)
        uas = sip_calls.start_uas(work, uas_port, "uas")
        return sip_calls.call_ladder(name, target, work, cpu_of, rates, sip_calls.STEP_SECONDS, log)
    finally:
        if uas is not None:
            uas.stop()


def calls(quick: bool, log: Callable[[str], None]) -> list[sip_calls.CallLadder]:
    rates = QUICK_CALL_RATES if quick else CALL_RATES
    out = []
    devices = sip_calls.CALLERS + 1
    with workdir("edge-calls-one") as work:
        server = BenchServer(work)
        try:
            server.seed(devices)
            server.start()
            out.append(_calls_on("one node", server.sip_target, work, lambda: cpu_seconds(server.pid), rates, log,
                                 0.0))
        except Exception as exc:
            out.append(sip_calls.CallLadder("one node", error=f"{type(exc).__name__}: {exc}"))
        finally:
            server.stop()
    with workdir("edge-calls-two") as work:
        cluster = Cluster(work)
        try:
            cluster.start(devices)
            out.append(_calls_on("edge + two nodes", cluster.target, work, cluster.cpu, rates, log, 3.0))
        except Exception as exc:
            out.append(sip_calls.CallLadder("edge + two nodes", error=f"{type(exc).__name__}: {exc}"))
        finally:
            cluster.stop()
    return out


def _best(ladder: sip_register.Ladder | sip_calls.CallLadder, unit: str) -> str:
    if ladder.error:
        return f"not measured: {ladder.error[:200]}"
    best = ladder.best
    if best is None:
        return "no clean step"
    return f"{best.offered}/s clean, {best.cpu_us:.0f} us CPU/{unit} (all processes)"


def run(quick: bool = False, only: str | None = None, log: Callable[[str], None] = print) -> list[Result]:
    res = Result(
        "7. The Kamailio edge in front of two nodes",
        "best clean rate and CPU per registration / per call, through the shipped edge in front of two nodes "
        "(one SQLite database) beside one node reached directly",
        "sipp, stepped rates, 5 s per step (registrations: digest REGISTER of 2,000 devices; calls: "
        "INVITE with digest, 200, ACK, BYE to a registered sipp UAS)",
    )
    if only in (None, "register"):
        one, two = registrations(quick, log)
        res.add("registrations, one node direct", _best(one, "reg"))
        res.add("registrations, edge + two nodes", _best(two, "reg"))
        res.notes.append("registrations steps: " + " | ".join(
            [f"{lad.name}: {s.line()}" for lad in (one, two) for s in lad.steps]))
    if only in (None, "calls"):
        one_c, two_c = calls(quick, log)
        res.add("calls, one node direct", _best(one_c, "call"))
        res.add("calls, edge + two nodes", _best(two_c, "call"))
        res.notes.append("calls steps: " + " | ".join(
            [f"{lad.name}: {s.line()}" for lad in (one_c, two_c) for s in lad.steps]))
    res.notes.append(
        "On 2 cores the two nodes and Kamailio share the CPU that one node has alone: the edge can only cost "
        "here. The CPU figures add up every process on the path, so their difference is what the edge and the "
        "second node's share of the work cost per registration or call."
    )
    return [res]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("register", "calls"))
    args = parser.parse_args()
    for result in run(args.quick, args.only):
        print(result.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
