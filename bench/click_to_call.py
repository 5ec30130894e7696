"""Click-to-call latency benchmark: N users click at once, each with a registered desk phone.

Owns bench 3 of issue 9. 200 users (seeded, each with a desk phone as main device) have their phones
registered from one sipp UAS port (the switch sends each phone's INVITE to the address its REGISTER came
from, so one sipp serves all of them). For N = 1, 10, 50, 200 users clicking at once (concurrent
``POST /api/v1/calls`` on already-open keep-alive connections, one bearer token per user), measured per
click: time from the request leaving the client to the switch's INVITE arriving at that user's phone
(sipp's message log timestamps, same host clock), and to the API's 202 answer (which the dialer gives once
the phone rings). The phones ring (180) and decline (486) after 300 ms, so no destination leg is dialed.

Usage: ``.venv/bin/python bench/click_to_call.py [--sizes 1,10,50,200]``
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    DEVICE_PASSWORD,
    LOOPBACK,
    SCENARIOS,
    SIP_DOMAIN,
    BenchServer,
    Proc,
    Result,
    Seed,
    free_port,
    machine_line,
    percentile,
    run_sipp,
    sipp_buffers,
    user_token,
    workdir,
)
from sip_calls import switch_ready

SIZES = (1, 10, 50, 200)
DESTINATION = "29999"  # an extension: the phones decline before any destination leg is dialed
TARGET_P99_MS = 20.0
_INVITE = re.compile(
    r"-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n\w+ message received \[\d+\] bytes :\n\nINVITE sip:(\w+)@"
)


def invite_arrivals(message_log: Path) -> list[tuple[float, str]]:
    """(wall-clock arrival, SIP username) of every INVITE sipp logged."""
    text = message_log.read_text(errors="replace") if message_log.exists() else ""
    out = []
    for stamp, user in _INVITE.findall(text):
        out.append((datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp(), user))
    return out


async def click_round(http: httpx.AsyncClient, group: list[Any], tokens: dict[int, str],
                      log: Callable[[str], None]) -> tuple[float, dict[str, float], dict[str, tuple[float, int]]]:
    """All of ``group`` click at once; returns the start, when each request left and when each got its answer."""
    go = asyncio.Event()
    sent: dict[str, float] = {}
    answered: dict[str, tuple[float, int]] = {}

    async def click(u: Any) -> None:
        headers = {"Authorization": f"Bearer {tokens[u.user_id]}"}
        await go.wait()
        sent[u.sip_username] = time.time()
        r = await http.post("/api/v1/calls", json={"to": DESTINATION}, headers=headers)
        answered[u.sip_username] = (time.time(), r.status_code)
        if r.status_code != 202:
            log(f"   click-to-call: {u.username} got {r.status_code}: {r.text[:200]}")

    tasks = [asyncio.create_task(click(u)) for u in group]
    await asyncio.sleep(0.05)  # every task waits on the event: they leave together
    started = time.time()
    go.set()
    await asyncio.gather(*tasks)
    return started, sent, answered


async def clicks(server: BenchServer, seed: Seed, sizes: tuple[int, ...], message_log: Path,
                 log: Callable[[str], None]) -> dict[int, dict[str, Any]]:
    users = seed.users
    tokens = {u.user_id: user_token(seed, u.user_id) for u in users}
    results: dict[int, dict[str, Any]] = {}
    limits = httpx.Limits(max_connections=max(sizes) + 10, max_keepalive_connections=max(sizes) + 10)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
        for n in sizes:
            group = users[:n]
            # open n keep-alive connections first: a browser's click does not wait for a TCP handshake
            await asyncio.gather(*(http.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens[u.user_id]}"})
                                   for u in group))
            started, sent, answered = await click_round(http, group, tokens, log)
            await asyncio.sleep(1.0)  # sipp flushes its message log
            arrivals = {user: at for at, user in invite_arrivals(message_log) if at >= started - 0.001}
            to_invite = [(arrivals[k] - sent[k]) * 1000 for k in sent if k in arrivals]
            to_202 = [(answered[k][0] - sent[k]) * 1000 for k in sent if answered.get(k, (0, 0))[1] == 202]
            results[n] = {"invite": to_invite, "answer": to_202, "missing": n - len(to_invite),
                          "not_202": n - len(to_202)}
            log(f"   click-to-call N={n}: INVITE p50 {percentile(to_invite, 50):.1f} ms, max "
                f"{max(to_invite) if to_invite else float('nan'):.1f} ms; 202 p50 {percentile(to_202, 50):.1f} ms; "
                f"{n - len(to_invite)} INVITEs missing, {n - len(to_202)} not 202")
            await asyncio.sleep(1.0)  # the declined calls finish before the next round
    return results


def run(sizes: tuple[int, ...] = SIZES, log: Callable[[str], None] = print) -> list[Result]:
    res = Result(
        "3. Click-to-call latency (desk phone, originate)",
        "per click: request leaving the client -> switch's INVITE at the user's desk phone (sipp message-log "
        "time), and -> the API's 202; p50/p95/p99/max per N",
        f"N = {', '.join(str(n) for n in sizes)} users clicking at once (POST /api/v1/calls, open keep-alive "
        "connections), each with a registered sipp desk phone that rings then declines",
    )
    reason = switch_ready()
    if reason is not None:
        res.verdict = f"not measured: {reason}"
        return [res]
    count = max(sizes)
    with workdir("click") as work:
        server = BenchServer(work)
        uas: Proc | None = None
        try:
            seed = server.seed(count, kind="deskphone")
            server.start()
            phone_port = free_port("udp")
            csv = work / "phones.csv"
            csv.write_text("SEQUENTIAL\n" + "\n".join(
                f"{u.sip_username};[authentication username={u.sip_username} password={DEVICE_PASSWORD}];{SIP_DOMAIN}"
                for u in seed.users) + "\n")
            reg = run_sipp([server.sip_target, "-sf", str(SCENARIOS / "register.xml"), "-inf", str(csv), "-i",
                            LOOPBACK, "-p", str(phone_port), "-t", "u1", "-m", str(count), "-r", "100",
                            "-timeout", "40s"], work, "reg-phones", timeout=50)
            if reg.successful != count:
                raise RuntimeError(f"only {reg.successful} of {count} desk phones registered: {reg.errors[-300:]}")
            message_log = work / "phones-messages.log"
            uas = Proc(["sipp", "-sf", str(SCENARIOS / "uas_phone.xml"), "-i", LOOPBACK, "-p", str(phone_port),
                        "-t", "u1", "-mp", str(free_port("udp")), "-nostdin", "-trace_msg", "-message_file",
                        str(message_log), *sipp_buffers()], work / "phones.log", cwd=work)
            time.sleep(0.5)
            if not uas.alive():
                raise RuntimeError(f"sipp phones did not start: {uas.log()}")
            out = asyncio.run(clicks(server, seed, sizes, message_log, log))
        except Exception as exc:
            res.verdict = f"not measured: {type(exc).__name__}: {exc}"
            return [res]
        finally:
            if uas is not None:
                uas.stop()
            server.stop()
    for n, o in out.items():
        inv, ans = o["invite"], o["answer"]

        def stats(v: list[float]) -> str:
            if not v:
                return "none"
            return (f"{percentile(v, 50):.1f} / {percentile(v, 95):.1f} / {percentile(v, 99):.1f} / "
                    f"{max(v):.1f} ms")

        extra = f" ({o['missing']} INVITEs missing, {o['not_202']} not 202)" if o["missing"] or o["not_202"] else ""
        res.add(f"N={n:<3} click->INVITE p50/p95/p99/max", stats(inv) + extra)
        res.add(f"N={n:<3} click->202    p50/p95/p99/max", stats(ans))
    res.target = f"click -> INVITE p99 < {TARGET_P99_MS:.0f} ms at 50 simultaneous clicks"
    at50 = out.get(50)
    if at50 is None or not at50["invite"]:
        res.verdict = "not measured at N=50"
    elif at50["missing"]:
        res.verdict = f"NOT met ({at50['missing']} INVITEs missing at N=50)"
    else:
        p99 = percentile(at50["invite"], 99)
        res.verdict = "met" if p99 < TARGET_P99_MS else f"NOT met (p99 {p99:.0f} ms)"
    return [res]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(f"machine: {machine_line()}", flush=True)
    for result in run(sizes, log=lambda s: print(s, flush=True)):
        print(result.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
