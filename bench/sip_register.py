"""Registrations benchmark: digest-authenticated REGISTERs from sipp, callto against Kamailio, same run.

Owns bench 1 of issue 9. 10,000 distinct devices (seeded in the database, all with one password so the
same sipp injection file serves both registrars) register at stepped rates, 5 s per step: sipp sends a
REGISTER, gets the 401 challenge, retries with MD5 digest credentials (qop=auth) and expects 200. A step
is *clean* with 0 failed registrations, 0 retransmissions and an achieved rate >= 95 % of the offered
one; stepping stops at the first step that is not clean, then bisects (below). Reported: the best
clean rate and the registrar's CPU time per registration (user+system of its whole process tree, from
``/proc``), for callto on asyncio's default loop, callto on uvloop, and Kamailio (bench/kamailio/
registrar.cfg, one UDP worker), and the ratios callto/Kamailio.

After the stepped rates, a bisection between the last clean and the first unclean step narrows the best
clean rate to within ``--resolution`` (5 %), so a ratio of rates or of CPU per registration is not an
artifact of the grid; CPU per registration is also given side by side at the highest rate both ran clean.

Usage: ``.venv/bin/python bench/sip_register.py [--quick] [--only callto|kamailio] [--no-uvloop]
[--devices N] [--seconds S] [--resolution F]`` (a smoke run: ``--quick --devices 200 --seconds 1``)
"""

from __future__ import annotations

import argparse
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
    Result,
    cpu_seconds,
    free_port,
    machine_line,
    rss_bytes,
    run_sipp,
    start_kamailio,
    udp_drops,
    workdir,
)

DEVICES = 10_000
STEP_SECONDS = 5
RATES = (25, 50, 100, 200, 400, 700, 1000, 2000, 4000, 8000, 16000, 32000)
QUICK_RATES = (25, 100, 400, 1000, 4000, 16000)
WARMUP_RATE = 1000
WARMUP_LIMIT = 15.0  # seconds: a slow registrar gets as far as it can
TARGET_RATIO = 0.25
TARGET_CPU_RATIO = 3.0  # issue 18: CPU per registration at most 3x Kamailio's, same run
RESOLUTION = 0.05  # the bisection stops when the best clean rate is known to within 5 %
MIN_GAP = 50  # registrations/s: no finer than this
SETTLE = 1.0  # seconds of quiet before each step


@dataclass
class StepResult:
    offered: int
    successful: int
    failed: int
    retransmissions: int
    achieved: float
    cpu_us: float
    drops: int = 0  # UDP datagrams the kernel dropped (full receive buffers), whole machine, during the step

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.retransmissions == 0 and self.achieved >= 0.95 * self.offered

    def line(self) -> str:
        mark = "clean" if self.clean else "NOT clean"
        return (
            f"{self.offered:>6}/s offered -> {self.achieved:8.0f}/s achieved, {self.successful} ok, "
            f"{self.failed} failed, {self.retransmissions} retrans, {self.cpu_us:7.1f} us CPU/reg, "
            f"{self.drops} UDP drops  [{mark}]"
        )


@dataclass
class Ladder:
    name: str
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""
    warm: int = 0
    mem_per_reg: float = float("nan")
    bracket: tuple[int, int] = (0, 0)  # (best clean, lowest unclean) offered rates; 0: none found

    @property
    def best(self) -> StepResult | None:
        clean = [s for s in self.steps if s.clean]
        return max(clean, key=lambda s: s.offered) if clean else None

    def at(self, rate: int) -> StepResult | None:
        """The clean step at offered ``rate``, if it ran."""
        return next((s for s in self.steps if s.offered == rate and s.clean), None)

    def grid(self) -> str:
        """Where the best clean rate lies: e.g. "clean at 26,500/s, not at 27,900/s (5.0 % apart)"."""
        clean, unclean = self.bracket
        if not unclean:
            return f"clean up to the last step ({clean:,}/s): the registrar was not saturated"
        return f"clean at {clean:,}/s, not at {unclean:,}/s ({(unclean - clean) / unclean * 100:.1f} % apart)"


def write_users(path: Path, devices: int, start: int) -> Path:
    """sipp injection file, rotated so that each step goes on with the devices after the last step's."""
    lines = ["SEQUENTIAL"]
    for n in range(devices):
        i = (start + n) % devices
        lines.append(f"b{i:05d};[authentication username=b{i:05d} password={DEVICE_PASSWORD}];{SIP_DOMAIN}")
    path.write_text("\n".join(lines) + "\n")
    return path


def step(target: str, local_port: int, rate: int, seconds: float, work: Path, devices: int, offset: int,
         cpu_of: Callable[[], float], name: str, *, calls: int | None = None,
         limit: float | None = None) -> StepResult:
    calls = calls or int(rate * seconds)
    users = write_users(work / "users.csv", devices, offset)
    budget = limit or seconds * 4 + 10
    argv = [target, "-sf", str(SCENARIOS / "register.xml"), "-inf", str(users), "-i", LOOPBACK,
            "-p", str(local_port), "-t", "u1", "-m", str(calls), "-r", str(rate), "-rp", "1000",
            "-l", str(max(rate, 100)), "-timeout", f"{int(budget)}s", "-max_recv_loops", "10000",
            "-max_sched_loops", "10000"]
    before, dropped = cpu_of(), udp_drops()
    out = run_sipp(argv, work, name, timeout=budget + 10)
    used = cpu_of() - before
    return StepResult(rate, out.successful, out.failed, out.retransmissions, out.rate,
                      used / out.successful * 1e6 if out.successful else float("nan"), udp_drops() - dropped)


def ladder(name: str, target: str, work: Path, cpu_of: Callable[[], float], rss_of: Callable[[], int],
           rates: tuple[int, ...], devices: int, seconds: float, log: Callable[[str], None],
           resolution: float = RESOLUTION) -> Ladder:
    """The coarse steps up to the first unclean one, then a bisection between the last clean and the first
    unclean rate until they are less than ``resolution`` (a fraction) of the rate apart: the best clean
    rate is then known to within that fraction, whatever the coarse grid (which once stopped Kamailio at
    12,000/s because its next step was 16,000/s while it sustains ~27,000/s)."""
    result = Ladder(name)
    local_port = free_port("udp")  # one sipp port for all steps: a device's Contact stays the same
    # warm-up: every device registers once if the registrar can within WARMUP_LIMIT (a first registration
    # also puts the device online; the steps then mostly measure refreshes); the RSS growth over it,
    # divided by the devices registered, is the memory per registration
    rss_before = rss_of()
    warm = step(target, local_port, WARMUP_RATE, devices / WARMUP_RATE, work, devices, 0, cpu_of,
                f"{name}-warmup", calls=devices, limit=WARMUP_LIMIT)
    result.warm = warm.successful
    if warm.successful:
        result.mem_per_reg = (rss_of() - rss_before) / warm.successful
    log(f"   {name}: warm-up, {warm.successful}/{devices} devices registered, "
        f"{result.mem_per_reg / 1024:.2f} KiB resident (PSS) per registration")
    offset = warm.successful % devices

    def one(rate: int) -> StepResult:
        nonlocal offset
        time.sleep(SETTLE)  # what the last run left queued must not count in this step
        s = step(target, local_port, rate, seconds, work, devices, offset, cpu_of, f"{name}-{rate}")
        offset = (offset + int(rate * seconds)) % devices
        result.steps.append(s)
        log(f"   {name}: {s.line()}")
        return s

    clean, unclean = 0, 0
    for rate in rates:
        if one(rate).clean:
            clean = rate
        else:
            unclean = rate
            break
    # bisection: the best clean rate lies in [clean, unclean)
    while clean and unclean and unclean - clean > max(MIN_GAP, resolution * unclean):
        middle = int(round((clean + unclean) / 2 / MIN_GAP) * MIN_GAP)
        if not clean < middle < unclean:
            break
        if one(middle).clean:
            clean = middle
        else:
            unclean = middle
    result.bracket = (clean, unclean)
    return result


def run_callto(uvloop: bool, rates: tuple[int, ...], devices: int, seconds: float,
               log: Callable[[str], None], resolution: float = RESOLUTION) -> Ladder:
    name = "callto+uvloop" if uvloop else "callto"
    with workdir("register") as work:
        server = BenchServer(work, uvloop=uvloop)
        try:
            server.seed(devices)
            server.start()
            return ladder(name, server.sip_target, work, lambda: cpu_seconds(server.pid),
                          lambda: rss_bytes(server.pid), rates, devices, seconds, log, resolution)
        except Exception as exc:
            return Ladder(name, error=f"{type(exc).__name__}: {exc}")
        finally:
            server.stop()


def run_kamailio(rates: tuple[int, ...], devices: int, seconds: float, log: Callable[[str], None],
                 resolution: float = RESOLUTION) -> Ladder:
    with workdir("register-kamailio") as work:
        try:
            proc, port = start_kamailio("registrar.cfg", work, PASSWORD=DEVICE_PASSWORD)
        except Exception as exc:
            return Ladder("kamailio", error=f"{type(exc).__name__}: {exc}")
        try:
            return ladder("kamailio", f"{LOOPBACK}:{port}", work, lambda: cpu_seconds(proc.pid),
                          lambda: rss_bytes(proc.pid), rates, devices, seconds, log, resolution)
        finally:
            proc.stop()


def run(
    quick: bool = False, only: str | None = None, uvloop: bool = True, log: Callable[[str], None] = print,
    *, devices: int = DEVICES, seconds: float = STEP_SECONDS, resolution: float = RESOLUTION,
) -> list[Result]:
    rates = QUICK_RATES if quick else RATES
    ladders: list[Ladder] = []
    if only in (None, "callto"):
        ladders.append(run_callto(False, rates, devices, seconds, log, resolution))
        if uvloop:
            ladders.append(run_callto(True, rates, devices, seconds, log, resolution))
    if only in (None, "kamailio"):
        ladders.append(run_kamailio(rates, devices, seconds, log, resolution))
    return [summarize(ladders, rates, devices, seconds, resolution)]


def summarize(ladders: list[Ladder], rates: tuple[int, ...], devices: int, seconds: float,
              resolution: float = RESOLUTION) -> Result:
    res = Result(
        "1. Registrations (SIP REGISTER with digest auth)",
        "best clean rate of 401-challenged + authenticated REGISTERs (0 failures, 0 retransmissions, "
        ">= 95% of offered) and registrar CPU per registration (whole process tree, /proc)",
        f"sipp over UDP/loopback, {devices:,} distinct devices, {seconds:g} s per step at "
        f"{', '.join(str(r) for r in rates)} /s up to the first unclean step, then a bisection between the "
        f"last clean and the first unclean rate until they are within {resolution * 100:g} % "
        f"(or {MIN_GAP}/s); after a warm-up registering every device once ({WARMUP_RATE}/s offered, "
        f"at most {WARMUP_LIMIT:g} s)",
    )
    by_name = {lad.name: lad for lad in ladders}
    for lad in ladders:
        if lad.error:
            res.add(lad.name, f"not measured: {lad.error}")
            continue
        best = lad.best
        steps = "; ".join(f"{s.offered}:{'ok' if s.clean else 'x'}" for s in lad.steps)
        if best is None:
            res.add(lad.name, f"no clean step (steps {steps})")
        else:
            res.add(
                lad.name,
                f"{best.achieved:,.0f} reg/s clean (offered {best.offered}/s), {best.cpu_us:.0f} us CPU/registration"
                f"; {lad.grid()}",
            )
        res.add(f"{lad.name} memory per registration",
                f"{lad.mem_per_reg / 1024:.2f} KiB resident (PSS) ({lad.warm:,} devices registered in the warm-up)")
        res.notes.append(f"{lad.name} steps: " + " | ".join(s.line() for s in lad.steps))
    kam = by_name.get("kamailio")
    ours = [by_name[n] for n in ("callto", "callto+uvloop") if n in by_name and by_name[n].best]
    res.target = f">= {TARGET_RATIO}x Kamailio's clean rate; CPU per registration <= {TARGET_CPU_RATIO:g}x Kamailio's"
    if kam is not None and kam.best is not None:
        res.reference = (
            f"Kamailio {kam.best.achieved:,.0f} reg/s clean, {kam.best.cpu_us:.0f} us CPU/reg "
            f"(registrar.cfg, children=1; {kam.grid()})"
        )
    if ours and kam is not None and kam.best is not None:
        kb = kam.best
        verdicts: list[str] = []
        for lad in ours:
            assert lad.best is not None
            rate_ratio = lad.best.offered / kb.offered
            cpu_ratio = lad.best.cpu_us / kb.cpu_us
            res.add(
                f"ratio {lad.name}/kamailio",
                f"{rate_ratio:.2f}x rate, {cpu_ratio:.1f}x CPU per registration (each at its best clean step)",
            )
            # CPU per registration side by side at the same offered rate: the highest step both ran clean
            common = max((s.offered for s in lad.steps if s.clean and kam.at(s.offered)), default=0)
            a, k = lad.at(common), kam.at(common)
            if a is not None and k is not None:
                res.add(
                    f"CPU per registration at {common}/s, {lad.name} vs kamailio",
                    f"{a.cpu_us:.0f} us vs {k.cpu_us:.0f} us ({a.cpu_us / k.cpu_us:.1f}x)",
                )
            rate_ok = "met" if rate_ratio >= TARGET_RATIO else "NOT met"
            cpu_ok = "met" if cpu_ratio <= TARGET_CPU_RATIO else "NOT met"
            verdicts.append(f"{lad.name}: rate {rate_ratio:.2f}x ({rate_ok}), CPU {cpu_ratio:.1f}x ({cpu_ok})")
        res.verdict = "; ".join(verdicts)
        res.notes.append("ratios compare best clean offered rates, each known to within the bisection's "
                         f"{resolution * 100:g} %; sipp itself shares the cores")
        if "callto" in by_name and "callto+uvloop" in by_name:
            a, b = by_name["callto"].best, by_name["callto+uvloop"].best
            if a and b:
                res.notes.append(
                    f"uvloop vs asyncio: {b.offered}/s vs {a.offered}/s clean, "
                    f"{b.cpu_us:.0f} vs {a.cpu_us:.0f} us CPU/reg"
                )
    else:
        ran = [by_name[n] for n in ("callto", "callto+uvloop") if n in by_name and not by_name[n].error]
        if kam is not None and kam.best is not None and ran:
            res.verdict = f"NOT met (callto had no clean step, not even at {rates[0]}/s)"
        else:
            res.verdict = "not measured: Kamailio or callto did not run, or Kamailio had no clean step"
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, coarser rate steps")
    parser.add_argument("--only", choices=("callto", "kamailio"))
    parser.add_argument("--no-uvloop", action="store_true", help="skip the uvloop run of callto")
    parser.add_argument("--devices", type=int, default=DEVICES, help="distinct devices (sipp injection file)")
    parser.add_argument("--seconds", type=float, default=STEP_SECONDS, help="seconds per step")
    parser.add_argument("--resolution", type=float, default=RESOLUTION,
                        help="bisect until the best clean rate is known to within this fraction")
    args = parser.parse_args()
    print(f"machine: {machine_line()}", flush=True)
    for result in run(args.quick, args.only, not args.no_uvloop, log=lambda s: print(s, flush=True),
                      devices=args.devices, seconds=args.seconds, resolution=args.resolution):
        print(result.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
