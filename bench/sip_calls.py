"""Calls benchmark: INVITE/180/200/ACK/BYE from a sipp UAC to a sipp UAS through callto's B2BUA, and
through Kamailio as a plain stateful proxy, in the same run.

Owns bench 2 of issue 9. The callee is a registered desk phone (a sipp UAS that first REGISTERs from its
own port, then answers every INVITE with 180 and 200 and every BYE with 200); the callers are 100
registered devices of other users (same sipp UAC, one injection line each). Every call is digest
authenticated (407, then INVITE with Proxy-Authorization), carries plain RTP SDP (no media relay), and is
hung up by the caller right after its ACK. Stepped call rates, 5 s per step; a step is clean with 0 failed
calls, 0 retransmissions at the UAC and an achieved rate >= 95 % of the offered one. Reported: best clean
calls/s and the server's CPU per call (its process tree, from ``/proc``); then calls held at once (a
long hold time) and the server's memory per held call; Kamailio (bench/kamailio/proxy.cfg, one worker)
does the same ladder with the same scenario as the reference.

Usage: ``.venv/bin/python bench/sip_calls.py [--quick] [--only callto|kamailio] [--hold-calls N]``
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEVICE_PASSWORD,
    LOOPBACK,
    SCENARIOS,
    SIP_DOMAIN,
    BenchServer,
    Proc,
    Result,
    cpu_seconds,
    free_port,
    machine_line,
    rss_bytes,
    run_sipp,
    sipp_buffers,
    sipp_stats,
    start_kamailio,
    udp_drops,
    workdir,
)

CALLERS = 100
CALLEE = CALLERS  # index of the callee's device (b00100, extension 20100)
STEP_SECONDS = 5
RATES = (10, 25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000)
QUICK_RATES = (10, 50, 200, 500, 1000, 2000, 4000)
HOLD_CALLS = 5000
HOLD_RAMP = 10
TARGET_CPS = 500
SETTLE = 1.0


@dataclass
class CallStep:
    offered: int
    successful: int
    failed: int
    retransmissions: int
    achieved: float
    cpu_us: float
    errors: str = ""
    drops: int = 0  # UDP datagrams the kernel dropped (full receive buffers), whole machine, during the step

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.retransmissions == 0 and self.achieved >= 0.95 * self.offered

    def line(self) -> str:
        mark = "clean" if self.clean else "NOT clean"
        return (f"{self.offered:>5}/s offered -> {self.achieved:7.0f}/s achieved, {self.successful} ok, "
                f"{self.failed} failed, {self.retransmissions} retrans, {self.cpu_us:8.1f} us CPU/call, "
                f"{self.drops} UDP drops  [{mark}]")


@dataclass
class CallLadder:
    name: str
    steps: list[CallStep] = field(default_factory=list)
    error: str = ""
    held: int = 0
    held_offered: int = 0
    mem_per_call: float = float("nan")
    hold_note: str = ""

    @property
    def best(self) -> CallStep | None:
        clean = [s for s in self.steps if s.clean]
        return max(clean, key=lambda s: s.offered) if clean else None


def _csv(path: Path, lines: list[str]) -> Path:
    path.write_text("SEQUENTIAL\n" + "\n".join(lines) + "\n")
    return path


def callers_csv(work: Path) -> Path:
    return _csv(work / "callers.csv", [
        f"b{i:05d};[authentication username=b{i:05d} password={DEVICE_PASSWORD}];{SIP_DOMAIN};{20000 + CALLEE}"
        for i in range(CALLERS)
    ])


def register(target: str, local_port: int, indexes: list[int], work: Path, name: str) -> int:
    users = _csv(work / f"{name}.csv", [
        f"b{i:05d};[authentication username=b{i:05d} password={DEVICE_PASSWORD}];{SIP_DOMAIN}" for i in indexes
    ])
    out = run_sipp([target, "-sf", str(SCENARIOS / "register.xml"), "-inf", str(users), "-i", LOOPBACK,
                    "-p", str(local_port), "-t", "u1", "-m", str(len(indexes)), "-r", "200",
                    "-timeout", "30s"], work, name, timeout=40)
    return out.successful


def start_uas(work: Path, port: int, name: str) -> Proc:
    argv = ["sipp", "-sf", str(SCENARIOS / "uas.xml"), "-i", LOOPBACK, "-p", str(port), "-t", "u1",
            "-mp", str(free_port("udp")), "-nostdin", "-max_recv_loops", "10000", "-max_sched_loops", "10000",
            *sipp_buffers()]
    proc = Proc(argv, work / f"{name}.log", cwd=work)
    time.sleep(0.5)
    if not proc.alive():
        raise RuntimeError(f"sipp UAS did not start: {proc.log()}")
    return proc


def uac_argv(target: str, work: Path, local_port: int, rate: int, calls: int, hold_ms: int, limit: int,
             timeout: float) -> list[str]:
    return [target, "-sf", str(SCENARIOS / "uac_auth.xml"), "-inf", str(callers_csv(work)), "-i", LOOPBACK,
            "-p", str(local_port), "-mp", str(free_port("udp")), "-t", "u1", "-m", str(calls), "-r", str(rate),
            "-rp", "1000", "-l", str(limit), "-d", str(hold_ms), "-timeout", f"{int(timeout)}s",
            "-max_recv_loops", "10000", "-max_sched_loops", "10000"]


def call_step(target: str, work: Path, local_port: int, rate: int, seconds: float, cpu_of: Callable[[], float],
              name: str) -> CallStep:
    calls = int(rate * seconds)
    before, dropped = cpu_of(), udp_drops()
    out = run_sipp(uac_argv(target, work, local_port, rate, calls, 0, max(rate, 100), seconds * 4 + 10), work,
                   name, timeout=seconds * 4 + 20)
    used = cpu_of() - before
    return CallStep(rate, out.successful, out.failed, out.retransmissions, out.rate,
                    used / out.successful * 1e6 if out.successful else float("nan"), out.errors[-300:],
                    udp_drops() - dropped)


def call_ladder(name: str, target: str, work: Path, cpu_of: Callable[[], float], rates: tuple[int, ...],
                seconds: float, log: Callable[[str], None]) -> CallLadder:
    result = CallLadder(name)
    local_port = free_port("udp")
    last_clean = 0
    for rate in rates:
        time.sleep(SETTLE)  # what the last step left queued must not count in this one
        s = call_step(target, work, local_port, rate, seconds, cpu_of, f"{name}-{rate}")
        result.steps.append(s)
        log(f"   {name}: {s.line()}")
        if not s.clean:
            if s.successful == 0 and s.errors:
                log(f"   {name}: sipp said: {s.errors[-300:]}")
            middle = (last_clean + rate) // 2
            if last_clean and middle > last_clean * 1.1:
                time.sleep(SETTLE)
                s2 = call_step(target, work, local_port, middle, seconds, cpu_of, f"{name}-{middle}")
                result.steps.append(s2)
                log(f"   {name}: {s2.line()}")
            break
        last_clean = rate
    return result


def hold_calls(ladder: CallLadder, target: str, work: Path, pid: int, calls: int, rate: int,
               log: Callable[[str], None]) -> None:
    """Place ``calls`` calls at ``rate``, each held until all are up; memory at the peak gives memory per call."""
    ramp = calls / rate
    hold_ms = int((ramp + 6) * 1000)  # the first call ends 6 s after the last one started
    time.sleep(2)  # the ladder's last calls are gone
    before = min(rss_bytes(pid) for _ in range(3))
    stats = work / f"{ladder.name}-hold-stats.csv"
    argv = ["sipp", *uac_argv(target, work, free_port("udp"), rate, calls, hold_ms, calls + 10, ramp + 60),
            *sipp_buffers(), "-nostdin", "-trace_stat", "-stf", str(stats), "-fd", "1"]
    uac = Proc(argv, work / f"{ladder.name}-hold.log", cwd=work)
    peak = before
    try:
        started = time.monotonic()
        deadline = started + hold_ms / 1000 + 40
        while uac.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
            # all calls are up between the end of the ramp and the first hang-up
            if ramp + 0.5 <= time.monotonic() - started <= ramp + 5.5:
                peak = max(peak, rss_bytes(pid))
    finally:
        uac.stop()
    row = sipp_stats(stats)
    ok = int(row.get("SuccessfulCall(C)", "0") or 0)
    failed = int(row.get("FailedCall(C)", "0") or 0)
    # sipp's count of calls in progress, once a second: at the peak every call placed is up and held
    up = max(up_at_once(stats), 1)
    ladder.held_offered = calls
    ladder.held = up if failed == 0 else 0
    ladder.mem_per_call = (peak - before) / up
    ladder.hold_note = (f"{calls} calls placed at {rate}/s, each held {hold_ms / 1000:.0f} s: {up} up at once at "
                        f"the peak (sipp), {ok} completed, {failed} failed; server PSS {before / 2**20:.1f} -> "
                        f"{peak / 2**20:.1f} MiB at the peak")
    log(f"   {ladder.name}: {ladder.hold_note}")


def up_at_once(stats_csv: Path) -> int:
    """The most calls sipp had in progress at once (its ``CurrentCall``, one row a second)."""
    if not stats_csv.exists():
        return 0
    with stats_csv.open(newline="") as handle:
        return max((int(r.get("CurrentCall") or 0) for r in csv.DictReader(handle, delimiter=";")), default=0)


def run_callto(rates: tuple[int, ...], seconds: float, hold: int, log: Callable[[str], None]) -> CallLadder:
    with workdir("calls") as work:
        server = BenchServer(work)
        uas: Proc | None = None
        try:
            server.seed(CALLERS + 1)
            server.start()
            target = server.sip_target
            uas_port = free_port("udp")
            if register(target, uas_port, [CALLEE], work, "reg-callee") != 1:
                raise RuntimeError("the callee's desk phone (sipp UAS) could not register")
            uac_reg_port = free_port("udp")
            register(target, uac_reg_port, list(range(CALLERS)), work, "reg-callers")
            uas = start_uas(work, uas_port, "uas")
            ladder = call_ladder("callto", target, work, lambda: cpu_seconds(server.pid), rates, seconds, log)
            best = ladder.best
            if hold:
                # bounded in time: at most HOLD_RAMP seconds of placing calls at the best clean rate
                rate = max(10, min(500, best.offered if best else 10))
                hold_calls(ladder, target, work, server.pid, min(hold, rate * HOLD_RAMP), rate, log)
            return ladder
        except Exception as exc:
            return CallLadder("callto", error=f"{type(exc).__name__}: {exc}")
        finally:
            if uas is not None:
                uas.stop()
            server.stop()


def run_kamailio(rates: tuple[int, ...], seconds: float, log: Callable[[str], None]) -> CallLadder:
    with workdir("calls-kamailio") as work:
        uas_port = free_port("udp")
        try:
            uas = start_uas(work, uas_port, "uas")
        except Exception as exc:
            return CallLadder("kamailio", error=f"{type(exc).__name__}: {exc}")
        try:
            proc, port = start_kamailio("proxy.cfg", work, PASSWORD=DEVICE_PASSWORD, UAS=f"{LOOPBACK}:{uas_port}")
        except Exception as exc:
            uas.stop()
            return CallLadder("kamailio", error=f"{type(exc).__name__}: {exc}")
        try:
            return call_ladder("kamailio", f"{LOOPBACK}:{port}", work, lambda: cpu_seconds(proc.pid), rates,
                               seconds, log)
        finally:
            proc.stop()
            uas.stop()


def switch_ready() -> str | None:
    """None when the B2BUA runs inside ``callto serve``; else why the calls cannot be measured."""
    wiring = Path(__file__).resolve().parents[1] / "src" / "callto" / "switchboard" / "wiring.py"
    if "SipSwitch" not in (wiring.read_text() if wiring.exists() else ""):
        return "the B2BUA (SipSwitch) is not built by callto serve (src/callto/switchboard/wiring.py)"
    return None


def run(quick: bool = False, only: str | None = None, hold: int | None = None,
        log: Callable[[str], None] = print) -> list[Result]:
    rates = QUICK_RATES if quick else RATES
    hold_n = (500 if quick else HOLD_CALLS) if hold is None else hold
    res = Result(
        "2. Calls through the switch (B2BUA)",
        "best clean rate of complete calls (INVITE, 407, INVITE+auth, 180, 200, ACK, BYE, 200), UAC to UAS; "
        "server CPU per call; calls held at once and server memory per held call",
        f"sipp UAC (100 caller devices) -> switch -> sipp UAS (one registered desk phone), UDP/loopback, "
        f"{STEP_SECONDS} s per step at {', '.join(str(r) for r in rates)} calls/s, hold 0 s; then up to {hold_n} "
        f"calls placed at the best clean rate (at most {HOLD_RAMP} s of placing them) and held together",
    )
    reason = switch_ready()
    ladders: list[CallLadder] = []
    if only in (None, "callto"):
        if reason is None:
            ladders.append(run_callto(rates, STEP_SECONDS, hold_n, log))
        else:
            res.add("callto", f"not measured: {reason}")
    if only in (None, "kamailio"):
        ladders.append(run_kamailio(rates, STEP_SECONDS, log))
    by = {lad.name: lad for lad in ladders}
    for lad in ladders:
        if lad.error:
            res.add(lad.name, f"not measured: {lad.error}")
            continue
        best = lad.best
        res.add(lad.name, "no clean step" if best is None else
                f"{best.achieved:,.0f} calls/s clean (offered {best.offered}/s), {best.cpu_us:.0f} us CPU/call")
        res.notes.append(f"{lad.name} steps: " + " | ".join(s.line() for s in lad.steps))
        if lad.hold_note:
            memory = (f"{lad.mem_per_call / 1024:.1f} KiB resident (PSS) per call" if lad.mem_per_call > 0 else
                      "memory per call below the measurement noise at this number of calls")
            res.add(f"{lad.name} calls held at once", f"{lad.held} of {lad.held_offered}, {memory}")
            res.notes.append(f"{lad.name} hold: {lad.hold_note}")
    kam = by.get("kamailio")
    if kam is not None and kam.best is not None:
        res.reference = (f"Kamailio stateful proxy {kam.best.achieved:,.0f} calls/s clean, "
                         f"{kam.best.cpu_us:.0f} us CPU/call")
    ours = by.get("callto")
    res.target = f">= {TARGET_CPS} calls/s through the B2BUA"
    if ours is None or ours.error or reason:
        res.verdict = f"not measured: {reason or (ours.error if ours else 'callto not run')}"
    elif ours.best is None:
        res.verdict = "NOT met (no clean step)"
    else:
        res.verdict = "met" if ours.best.offered >= TARGET_CPS else f"NOT met ({ours.best.offered}/s)"
        if kam is not None and kam.best is not None:
            res.add("ratio callto/kamailio", f"{ours.best.offered / kam.best.offered:.2f}x rate, "
                                             f"{ours.best.cpu_us / kam.best.cpu_us:.1f}x CPU per call")
    return [res]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("callto", "kamailio"))
    parser.add_argument("--hold-calls", type=int, default=None, help="calls held at once (0: skip)")
    args = parser.parse_args()
    print(f"machine: {machine_line()}", flush=True)
    for result in run(args.quick, args.only, args.hold_calls, log=lambda s: print(s, flush=True)):
        print(result.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
