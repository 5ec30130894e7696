"""Soak and overload: a real ``callto serve`` under a steady office load for minutes, then twice its capacity.

Owns the "Soak and overload" bench of issue 18. Load (sipp, as the other benches): ``--devices`` desk phones
(10,000) all registered during a warm-up, then refreshing at ``--register-rate`` (300/s); ``--held`` calls
(500) placed at the start and held until the end; short calls (INVITE, 407, INVITE, 200, ACK, BYE) at
``--call-rate`` (150/s) from 100 callers to one sipp UAS desk phone. Probed meanwhile, every 100 ms: HTTP
``/api/v1/health`` and a SIP OPTIONS to the switch (latency of the answer); every 5 s the server's RSS and
the calls completed so far. After ``--seconds`` (900 by default, warm-up included) the overload phase offers
calls at ``--overload-factor`` (2) times ``--capacity`` calls/s for ``--overload-seconds`` with the held
calls still up: the switch may shed (503 + Retry-After, logged by the scenarios ``*_shed.xml``), but the
held calls must stay up and every call it accepted must complete. In the steady phase a shed request
counts against the target like a failed one (it was not served), but is shown apart.

Printed after warm-up: failed calls, retransmission % (of the requests the UACs sent), health p99, OPTIONS
p99, RSS slope per 100,000 calls (least squares over the samples), and the overload phase's figures, each
beside its target (0 failed, < 0.1 %, < 100 ms, < 2 MiB / 100k calls). Exit status 1 when a target is
missed. On a machine shared with other work the figures are indicative only.

Usage: ``.venv/bin/python bench/soak.py [--seconds 900] [--devices 10000] ...`` (``make soak SOAK_SECONDS=120``)
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEVICE_PASSWORD,
    LOOPBACK,
    SCENARIOS,
    SIP_DOMAIN,
    BenchServer,
    Proc,
    free_port,
    percentile,
    rss_bytes,
    sipp_buffers,
    sipp_stats,
    udp_drops,
    workdir,
)

CALLERS = 100  # devices b00000..b00099 place the calls; the callee is the device after the last one


@dataclass
class Probe:
    """Latencies (seconds) of one periodic probe; a probe with no answer within a second counts 1 s."""

    name: str
    samples: list[float] = field(default_factory=list)
    lost: int = 0

    def p99_ms(self) -> float:
        return percentile(self.samples, 99) * 1000 if self.samples else float("nan")


def _users(path: Path, indexes: range, callee: int | None = None) -> Path:
    lines = ["SEQUENTIAL"]
    for i in indexes:
        extra = f";{20000 + callee}" if callee is not None else ""
        lines.append(f"b{i:05d};[authentication username=b{i:05d} password={DEVICE_PASSWORD}];{SIP_DOMAIN}{extra}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _sipp(work: Path, name: str, argv: list[str]) -> tuple[Proc, Path]:
    stats = work / f"{name}-stats.csv"
    full = ["sipp", *argv, *sipp_buffers(), "-nostdin", "-trace_stat", "-stf", str(stats), "-fd", "1",
            "-max_recv_loops", "10000", "-max_sched_loops", "10000", "-mp", str(free_port("udp")),
            "-trace_err", "-error_file", str(work / f"{name}-errors.log"),
            "-trace_logs", "-log_file", str(work / f"{name}-logs.log")]
    return Proc(full, work / f"{name}.log", cwd=work), stats


def _counter(stats: Path, key: str) -> int:
    return int(sipp_stats(stats).get(f"{key}(C)", "0") or 0)


def _options_probe(target: tuple[str, int], probe: Probe, stop: threading.Event) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(1.0)
    port = sock.getsockname()[1]
    n = 0
    try:
        while not stop.wait(0.1):
            n += 1
            call_id = uuid.uuid4().hex
            sock.sendto((
                f"OPTIONS sip:{SIP_DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bK{call_id}\r\n"
                f"From: <sip:probe@{SIP_DOMAIN}>;tag={n}\r\nTo: <sip:{SIP_DOMAIN}>\r\nCall-ID: {call_id}\r\n"
                "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ).encode(), target)
            start = time.monotonic()
            while True:
                try:
                    data = sock.recv(65535)
                except TimeoutError:
                    probe.lost += 1
                    probe.samples.append(1.0)
                    break
                if call_id.encode() in data and not data.startswith(b"SIP/2.0 1"):
                    probe.samples.append(time.monotonic() - start)
                    break
    finally:
        sock.close()


def _health_probe(url: str, probe: Probe, stop: threading.Event) -> None:
    with httpx.Client(timeout=1.0) as client:
        while not stop.wait(0.1):
            start = time.monotonic()
            try:
                client.get(f"{url}/api/v1/health").raise_for_status()
                probe.samples.append(time.monotonic() - start)
            except httpx.HTTPError:
                probe.lost += 1
                probe.samples.append(1.0)


def _slope_per_100k(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of RSS (MiB) over calls completed, per 100,000 calls."""
    if len(points) < 3:
        return float("nan")
    xs = [p[0] for p in points]
    ys = [p[1] / 2**20 for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 100_000


def _shed(work: Path, name: str) -> int:
    path = work / f"{name}-logs.log"
    return path.read_text(errors="replace").count("shed") if path.exists() else 0


def run(args: argparse.Namespace) -> int:
    log = print
    with workdir("soak") as work:
        server = BenchServer(work)
        procs: list[Proc] = []
        stop = threading.Event()
        try:
            callee = args.devices
            log(f"seeding {args.devices + 1} devices ...")
            server.seed(args.devices + 1)
            server.start()
            host, port = LOOPBACK, server.sip_port
            target = server.sip_target
            reg_port, uas_port = free_port("udp"), free_port("udp")
            users = _users(work / "users.csv", range(args.devices + 1))

            # warm-up: every device registers once (the registration storm after a power cut, paced)
            t0 = time.monotonic()
            warm, warm_stats = _sipp(work, "warmup", [
                target, "-sf", str(SCENARIOS / "register.xml"), "-inf", str(users), "-i", LOOPBACK,
                "-p", str(reg_port), "-t", "u1", "-m", str(args.devices + 1), "-r", str(args.warmup_rate),
                "-rp", "1000", "-l", str(args.warmup_rate * 2), "-timeout", "600s"])
            procs.append(warm)
            warm.popen.wait(timeout=args.devices / args.warmup_rate + 120)
            log(f"warm-up: {_counter(warm_stats, 'SuccessfulCall')} registered, "
                f"{_counter(warm_stats, 'FailedCall')} failed in {time.monotonic() - t0:.0f} s")
            uas_reg = _users(work / "callee.csv", range(callee, callee + 1))
            reg_callee, _ = _sipp(work, "callee-register", [
                target, "-sf", str(SCENARIOS / "register.xml"), "-inf", str(uas_reg), "-i", LOOPBACK,
                "-p", str(uas_port), "-t", "u1", "-m", "1", "-timeout", "20s"])
            reg_callee.popen.wait(timeout=30)
            uas = Proc(["sipp", "-sf", str(SCENARIOS / "uas.xml"), "-i", LOOPBACK, "-p", str(uas_port), "-t", "u1",
                        "-mp", str(free_port("udp")), "-nostdin", "-max_recv_loops", "10000",
                        "-max_sched_loops", "10000", *sipp_buffers()], work / "uas.log", cwd=work)
            procs.append(uas)
            time.sleep(0.5)

            steady = max(10.0, args.seconds - (time.monotonic() - t0))
            callers = _users(work / "callers.csv", range(CALLERS), callee)
            rest = range(CALLERS, args.devices)
            held_users = _users(work / "held.csv", range(CALLERS, CALLERS + min(args.held, len(rest))), callee)
            hold_ms = int((steady + args.overload_seconds + 15) * 1000)
            held, held_stats = _sipp(work, "held", [
                target, "-sf", str(SCENARIOS / "uac_auth_shed.xml"), "-inf", str(held_users), "-i", LOOPBACK,
                "-p", str(free_port("udp")), "-t", "u1", "-m", str(args.held), "-r", "100", "-l", str(args.held),
                "-d", str(hold_ms), "-timeout", f"{int(hold_ms / 1000 + 60)}s"])
            refresh, refresh_stats = _sipp(work, "refresh", [
                target, "-sf", str(SCENARIOS / "register_shed.xml"), "-inf", str(users), "-i", LOOPBACK,
                "-p", str(reg_port), "-t", "u1", "-m", str(int(args.register_rate * steady)),
                "-r", str(args.register_rate), "-l", str(args.register_rate * 2), "-timeout", f"{int(steady + 60)}s"])
            calls, calls_stats = _sipp(work, "calls", [
                target, "-sf", str(SCENARIOS / "uac_auth_shed.xml"), "-inf", str(callers), "-i", LOOPBACK,
                "-p", str(free_port("udp")), "-t", "u1", "-m", str(int(args.call_rate * steady)),
                "-r", str(args.call_rate), "-l", str(args.call_rate * 4), "-timeout", f"{int(steady + 60)}s"])
            procs += [held, refresh, calls]
            health, options = Probe("health"), Probe("OPTIONS")
            threads = [threading.Thread(target=_health_probe, args=(server.url, health, stop), daemon=True),
                       threading.Thread(target=_options_probe, args=((host, port), options, stop), daemon=True)]
            for t in threads:
                t.start()
            drops0 = udp_drops()
            rss: list[tuple[int, int]] = []
            end = time.monotonic() + steady
            warm_until = time.monotonic() + min(60.0, steady / 4)  # the first samples only settle the heap
            while time.monotonic() < end and calls.alive():
                time.sleep(5)
                if time.monotonic() >= warm_until:
                    rss.append((_counter(calls_stats, "SuccessfulCall"), rss_bytes(server.pid)))
            refresh.popen.wait(timeout=90)
            calls.popen.wait(timeout=90)
            stop.set()
            for t in threads:
                t.join(5)
            drops = udp_drops() - drops0

            # overload: twice the capacity, with the held calls still up
            offered = int(args.capacity * args.overload_factor)
            over, over_stats = _sipp(work, "overload", [
                target, "-sf", str(SCENARIOS / "uac_auth_shed.xml"), "-inf", str(callers), "-i", LOOPBACK,
                "-p", str(free_port("udp")), "-t", "u1", "-m", str(offered * args.overload_seconds),
                "-r", str(offered), "-l", str(offered * 4), "-timeout", f"{args.overload_seconds + 60}s"])
            procs.append(over)
            over.popen.wait(timeout=args.overload_seconds * 3 + 90)
            time.sleep(1.5)  # sipp writes its statistics once a second
            held_up = int(sipp_stats(held_stats).get("CurrentCall", "0") or 0)
            held_failed, held_shed = _counter(held_stats, "FailedCall"), _shed(work, "held")
            held.stop()  # its calls were held until now: their hang-up is not measured

            # a shed request ends the scenario "successfully" (logged): served = successful - shed
            reg_shed, call_shed = _shed(work, "refresh"), _shed(work, "calls")
            reg_ok = _counter(refresh_stats, "SuccessfulCall") - reg_shed
            reg_failed = _counter(refresh_stats, "FailedCall")
            call_ok = _counter(calls_stats, "SuccessfulCall") - call_shed
            call_failed = _counter(calls_stats, "FailedCall")
            retrans = _counter(refresh_stats, "Retransmissions") + _counter(calls_stats, "Retransmissions")
            # retransmittable requests sent (a shed one: one request)
            requests = 2 * (reg_ok + reg_failed) + 3 * (call_ok + call_failed) + reg_shed + call_shed
            retrans_pct = 100 * retrans / requests if requests else float("nan")
            slope = _slope_per_100k(rss)
            shed = _shed(work, "overload")
            over_ok, over_failed = _counter(over_stats, "SuccessfulCall") - shed, _counter(over_stats, "FailedCall")
            rows = [
                ("registrations (after warm-up)", f"{reg_ok} ok, {reg_shed} shed (503), {reg_failed} failed",
                 "0 failed, 0 shed", reg_failed == 0 and reg_shed == 0),
                ("calls (after warm-up)", f"{call_ok} ok, {call_shed} shed (503), {call_failed} failed",
                 "0 failed, 0 shed", call_failed == 0 and call_shed == 0),
                ("retransmissions", f"{retrans_pct:.3f} % ({retrans} of {requests})", "< 0.1 %", retrans_pct < 0.1),
                ("health p99", f"{health.p99_ms():.1f} ms ({health.lost} lost)", "< 100 ms", health.p99_ms() < 100),
                ("OPTIONS p99", f"{options.p99_ms():.1f} ms ({options.lost} lost)", "< 100 ms",
                 options.p99_ms() < 100),
                ("RSS slope", f"{slope:.2f} MiB / 100k calls ({len(rss)} samples, "
                 f"{rss[0][1] / 2**20 if rss else 0:.0f} -> {rss[-1][1] / 2**20 if rss else 0:.0f} MiB)",
                 "< 2 MiB", slope < 2),
                ("UDP datagrams dropped (kernel)", str(drops), "0", drops == 0),
                (f"overload {offered}/s for {args.overload_seconds} s",
                 f"{over_ok} accepted and completed, {shed} shed (503), {over_failed} failed", "accepted complete",
                 over_failed == 0),
                ("held calls through it all", f"{held_up} of {args.held - held_shed} established still up "
                 f"({held_shed} shed at set-up), {held_failed} failed", "all up",
                 held_failed == 0 and held_up >= args.held - held_shed and held_shed == 0),
            ]
            log(f"\nsoak: {args.devices} devices, {args.register_rate} reg/s, {args.call_rate} calls/s, "
                f"{args.held} held, {args.seconds} s")
            width = max(len(r[0]) for r in rows)
            for name, value, goal, ok in rows:
                log(f"  {name:<{width}}  {value:<60} target {goal:<18} {'ok' if ok else 'MISSED'}")
            return 0 if all(r[3] for r in rows) else 1
        finally:
            stop.set()
            for proc in procs:
                proc.stop()
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=900, help="soak length, warm-up included")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--register-rate", type=int, default=300)
    parser.add_argument("--warmup-rate", type=int, default=500, help="registrations/s while every device registers")
    parser.add_argument("--call-rate", type=int, default=150)
    parser.add_argument("--held", type=int, default=500, help="long calls held from start to end")
    parser.add_argument("--capacity", type=int, default=400, help="clean calls/s of this machine (bench/sip_calls.py)")
    parser.add_argument("--overload-factor", type=float, default=2.0)
    parser.add_argument("--overload-seconds", type=int, default=60)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
