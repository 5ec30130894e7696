"""Event fan-out benchmark: one user's presence change reaching 1,000 WebSocket sessions of other users.

Owns bench 4 of issue 9. 1,000 users (seeded in the database, each with a web phone) each open one event
stream (``/api/v1/events?token=``). User 0's session declares its web phone (``hello``), which makes user 0
*available*. Then user 0 flips do-not-disturb with ``PUT /api/v1/me/presence`` (on, off, on, ...); the
presence service publishes ``presence.changed`` to every connected user. Measured: for each flip and
each of the 1,000 sessions, the time from the PUT leaving the client to that session receiving the
``presence.changed`` of user 0 (p50 / p99 / max over all deliveries), the PUT's own answer time, and the
server's memory per session (RSS of its process tree after the sessions opened, minus before, divided by
the number of sessions). The 1,000 sessions live in this one client process (uvloop when installed), so
the delivery times include the client's own time to read 1,000 frames on the other core.

Usage: ``.venv/bin/python bench/fanout.py [--sessions 1000] [--flips 6]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import BenchServer, Result, machine_line, percentile, rss_bytes, user_token, workdir
from websockets.asyncio.client import ClientConnection, connect

SESSIONS = 1000
FLIPS = 6
TARGET_P99_MS = 250.0


class Session:
    def __init__(self, user_id: int, ws: ClientConnection) -> None:
        self.user_id = user_id
        self.ws = ws
        self.expect: str | None = None  # the presence of user 0 we wait for
        self.arrived: asyncio.Future[float] | None = None
        self.session_id = ""

    async def read(self, watched: int) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                msg = json.loads(raw)
                if msg.get("type") != "presence.changed":
                    continue
                data = msg.get("data") or {}
                wanted = data.get("user_id") == watched and data.get("presence") == self.expect
                if wanted and self.arrived is not None and not self.arrived.done():
                    self.arrived.set_result(time.perf_counter())


async def _open(server: BenchServer, token: str, user_id: int) -> Session:
    ws = await connect(f"{server.ws_url}/api/v1/events?token={token}", max_size=2**20, open_timeout=30,
                       ping_interval=None)
    ready = json.loads(await asyncio.wait_for(ws.recv(), 30))
    if ready.get("type") != "session.ready":
        raise RuntimeError(f"event stream answered {ready}")
    session = Session(user_id, ws)
    session.session_id = ready["data"]["session_id"]
    return session


async def _keepalive(sessions: list[Session]) -> None:
    # the server drops sessions silent for 65 s; a long connect phase must not lose the first ones
    while True:
        await asyncio.sleep(20)
        for s in sessions:
            with contextlib.suppress(Exception):
                await s.ws.send('{"type":"ping"}')


async def measure(server: BenchServer, seed_users: list[Any], jwt: Callable[[int], str], flips: int,
                  log: Callable[[str], None]) -> dict[str, Any]:
    rss_before = rss_bytes(server.pid)
    sessions: list[Session] = []
    sem = asyncio.Semaphore(50)

    async def one(u: Any) -> None:
        async with sem:
            sessions.append(await _open(server, jwt(u.user_id), u.user_id))

    started = time.perf_counter()
    await asyncio.gather(*(one(u) for u in seed_users))
    connect_s = time.perf_counter() - started
    keep = asyncio.create_task(_keepalive(sessions))
    await asyncio.sleep(2.0)  # let the server settle (buffers, queues) before reading its memory
    rss_after = rss_bytes(server.pid)
    log(f"   fan-out: {len(sessions)} sessions open in {connect_s:.1f} s, server PSS "
        f"{rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB")

    flipper = seed_users[0]
    watched = flipper.user_id
    readers = [asyncio.create_task(s.read(watched)) for s in sessions]
    mine = next(s for s in sessions if s.user_id == watched)
    loop = asyncio.get_running_loop()

    def arm(expect: str) -> None:
        for s in sessions:
            s.expect = expect
            s.arrived = loop.create_future()

    # user 0 comes online through its web phone session: presence offline -> available
    arm("available")
    await mine.ws.send(json.dumps({"type": "hello", "data": {"device_id": flipper.device_id}}))
    await asyncio.wait_for(asyncio.gather(*(s.arrived for s in sessions if s.arrived)), 30)

    latencies: list[float] = []
    put_ms: list[float] = []
    round_max: list[float] = []
    lost = 0
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {jwt(watched)}"},
                                 timeout=30) as http:
        await http.get("/api/v1/me")  # open the connection before timing
        for i in range(flips):
            dnd = i % 2 == 0
            arm("dnd" if dnd else "available")
            await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            r = await http.put("/api/v1/me/presence", json={"dnd": dnd})
            put_ms.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            futures = [s.arrived for s in sessions if s.arrived is not None]
            done, pending = await asyncio.wait(futures, timeout=10)
            lost += len(pending)
            this = [(f.result() - t0) * 1000 for f in done]
            latencies += this
            round_max.append(max(this) if this else float("nan"))
            log(f"   fan-out: flip {i + 1} (dnd={dnd}): {len(done)} delivered, p50 {percentile(this, 50):.1f} ms, "
                f"max {max(this) if this else float('nan'):.1f} ms, PUT answered in {put_ms[-1]:.1f} ms")
    keep.cancel()
    for task in readers:
        task.cancel()
    await asyncio.gather(*(s.ws.close() for s in sessions), return_exceptions=True)
    return {
        "sessions": len(sessions),
        "connect_s": connect_s,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "latencies": latencies,
        "put_ms": put_ms,
        "round_max": round_max,
        "lost": lost,
    }


def run(sessions: int = SESSIONS, flips: int = FLIPS, log: Callable[[str], None] = print) -> list[Result]:
    res = Result(
        "4. Event fan-out (presence over WebSocket)",
        "time from PUT /api/v1/me/presence {dnd} by user 0 leaving the client to each session receiving "
        "presence.changed for user 0; memory per session = growth of server resident memory (PSS) / sessions",
        f"{sessions} event-stream sessions of {sessions} different users on one server, {flips} flips "
        "(dnd on/off) 0.5 s apart, one client process holding all sessions",
    )
    with workdir("fanout") as work:
        server = BenchServer(work)
        try:
            seed = server.seed(sessions, kind="webphone")
            server.start()

            def jwt(user_id: int) -> str:
                return user_token(seed, user_id)

            try:
                import uvloop

                runner: Callable[[Any], Any] = uvloop.run
            except ImportError:
                runner = asyncio.run
            out = runner(measure(server, seed.users, jwt, flips, log))
        except Exception as exc:
            res.verdict = f"not measured: {type(exc).__name__}: {exc}"
            return [res]
        finally:
            server.stop()
    lat = out["latencies"]
    per_session = (out["rss_after"] - out["rss_before"]) / max(1, out["sessions"])
    res.add("sessions open", f"{out['sessions']} (opened in {out['connect_s']:.1f} s)")
    res.add("delivery p50 / p99 / max", f"{percentile(lat, 50):.1f} / {percentile(lat, 99):.1f} / "
                                        f"{max(lat):.1f} ms over {len(lat)} deliveries, {out['lost']} lost")
    res.add("PUT /me/presence answer p50", f"{percentile(out['put_ms'], 50):.1f} ms")
    res.add("memory per session", f"{per_session / 1024:.1f} KiB (server PSS {out['rss_before'] / 2**20:.0f} -> "
                                  f"{out['rss_after'] / 2**20:.0f} MiB)")
    p99 = percentile(lat, 99)
    res.target = f"p99 < {TARGET_P99_MS:.0f} ms at 1,000 sessions"
    if out["lost"]:
        res.verdict = f"NOT met ({out['lost']} deliveries lost)"
    elif sessions < SESSIONS:
        res.verdict = f"not measured at 1,000 sessions (ran {sessions})"
    else:
        res.verdict = "met" if p99 < TARGET_P99_MS else f"NOT met (p99 {p99:.0f} ms)"
    return [res]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--flips", type=int, default=FLIPS)
    args = parser.parse_args()
    print(f"machine: {machine_line()}", flush=True)
    for result in run(args.sessions, args.flips, log=lambda s: print(s, flush=True)):
        print(result.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
