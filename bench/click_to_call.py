"""Click-to-call latency benchmark: N users click at once, each with a registered desk phone.

Owns bench 3 of issue 9. 200 users (seeded, each with a desk phone as main device) have their phones
registered from one sipp UAS port (the switch sends each phone's INVITE to the address its REGISTER came
from, so one sipp serves all of them). For N = 1, 10, 50, 200 users clicking at once (concurrent
``POST /api/v1/calls`` with an ``Idempotency-Key``, on already-open keep-alive connections, one bearer
token per user; the client is plain sockets, see :class:`Clicker`), measured per
click: time from the request leaving the client to the switch's INVITE arriving at that user's phone
(sipp's message log timestamps, same host clock), and to the API's 202 answer (which the dialer gives once
the phone rings). The phones ring (180) and decline (486) after 300 ms, so no destination leg is dialed.
Each N is clicked ``--rounds`` times (3; 1 with ``--quick``, which also leaves out N = 10) and the
percentiles are over every click of its rounds. Targets: click -> INVITE p99 < 50 ms at N = 200 (issue 18)
and < 20 ms at N = 50 (issue 9). The server's CPU behind these figures, without the noise of a shared
machine: ``click_cpu.py`` (CPU time) and ``click_instructions.py`` (instruction counts).

Usage: ``.venv/bin/python bench/click_to_call.py [--sizes 1,10,50,200] [--rounds 3] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import re
import selectors
import socket
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
QUICK_SIZES = (1, 50, 200)
ROUNDS, QUICK_ROUNDS = 3, 1
DESTINATION = "29999"  # an extension: the phones decline before any destination leg is dialed
# (N, p99 of click -> INVITE in ms): issue 18's target first
TARGETS = ((200, 50.0), (50, 20.0))
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


class Clicker:
    """The benchmark's HTTP client: one pre-opened keep-alive socket per user, requests written whole.

    The client shares the 2 cores with the server and sipp, so it must cost next to nothing: a click is
    one pre-encoded HTTP/1.1 request (bearer token, ``Idempotency-Key``, JSON body) written with a
    single ``send`` on a socket opened (and used once, for ``GET /api/v1/me``) beforehand, its "left the
    client" time taken just before that ``send``; answers are read with one ``selectors`` loop. An
    ``httpx.AsyncClient`` on one asyncio loop spent 4-15 ms of CPU per click here, which showed up as
    server latency.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.socks: dict[str, socket.socket] = {}
        self.bodies: dict[str, bytes] = {}  # the last answer's body per key (for error messages)

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()
        self.socks.clear()

    def _request(self, method: str, path: str, token: str, body: bytes = b"", extra: str = "") -> bytes:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                f"{extra}Content-Length: {len(body)}\r\n\r\n")
        if body:
            head = head.replace("Content-Length", "Content-Type: application/json\r\nContent-Length", 1)
        return head.encode() + body

    def open(self, users: list[tuple[str, str]]) -> None:
        """A connection per (key, token), each used once for ``GET /api/v1/me``: a logged-in page's
        connection is open before the click (a browser's click does not wait for a TCP handshake)."""
        todo = []
        for key, token in users:
            if key not in self.socks:
                sock = socket.create_connection((self.host, self.port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.socks[key] = sock
            todo.append((key, self._request("GET", "/api/v1/me", token)))
        for key, status, _ in self.exchange(todo, timeout=30):
            if status != 200:
                raise RuntimeError(f"GET /api/v1/me for {key} answered {status}")

    def exchange(self, requests: list[tuple[str, bytes]], timeout: float,
                 sent: dict[str, float] | None = None) -> list[tuple[str, int, float]]:
        """Write every request (one ``send`` each, timed), then read every answer: (key, status, time)."""
        sel = selectors.DefaultSelector()
        buffers: dict[str, bytearray] = {}
        for key, data in requests:
            sock = self.socks[key]
            if sent is not None:
                sent[key] = time.time()
            sock.sendall(data)
            buffers[key] = bytearray()
            sel.register(sock, selectors.EVENT_READ, key)
        out: list[tuple[str, int, float]] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < len(requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(requests) - len(out)} answers missing after {timeout} s")
                for sk, _ in sel.select(left):
                    key = sk.data
                    chunk = sk.fileobj.recv(65536)  # type: ignore[union-attr]
                    at = time.time()
                    if not chunk:
                        raise ConnectionError(f"the server closed {key}'s connection")
                    buf = buffers[key]
                    buf += chunk
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    head = bytes(buf[:end]).decode("latin-1")
                    found = _CONTENT_LENGTH.search(head)
                    length = int(found.group(1)) if found else 0
                    if len(buf) < end + 4 + length:
                        continue
                    out.append((key, int(head.split(" ", 2)[1]), at))
                    self.bodies[key] = bytes(buf[end + 4 : end + 4 + length])
                    sel.unregister(sk.fileobj)
        finally:
            sel.close()
        return out

    def click_round(self, group: list[tuple[str, str]], to: str
                    ) -> tuple[float, dict[str, float], dict[str, tuple[float, int]]]:
        """Every (key, token) of ``group`` clicks at once: the start, when each request left, each answer."""
        requests = [
            (key, self._request("POST", "/api/v1/calls", token, json.dumps({"to": to}).encode(),
                                f"Idempotency-Key: {uuid.uuid4()}\r\n"))
            for key, token in group
        ]
        sent: dict[str, float] = {}
        started = time.time()
        answers = self.exchange(requests, timeout=30, sent=sent)
        return started, sent, {key: (at, status) for key, status, at in answers}


_CONTENT_LENGTH = re.compile(r"(?im)^content-length:\s*(\d+)")


def clicks(server: BenchServer, seed: Seed, sizes: tuple[int, ...], message_log: Path,
           log: Callable[[str], None], rounds: int = 1) -> dict[int, dict[str, Any]]:
    users = seed.users
    tokens = {u.sip_username: user_token(seed, u.user_id) for u in users}
    results: dict[int, dict[str, Any]] = {}
    client = Clicker(LOOPBACK, server.http_port)
    try:
        for n in sizes:
            group = [(u.sip_username, tokens[u.sip_username]) for u in users[:n]]
            client.open(group)
            out: dict[str, Any] = {"invite": [], "answer": [], "missing": 0, "not_202": 0, "client_cpu_ms": 0.0}
            for _ in range(rounds):
                cpu0 = time.process_time()
                started, sent, answered = client.click_round(group, DESTINATION)
                client_ms = (time.process_time() - cpu0) * 1000 / n
                for key, (_, status) in answered.items():
                    if status != 202:
                        log(f"   click-to-call: {key} got {status}: {client.bodies.get(key, b'')[:200]!r}")
                time.sleep(1.0)  # sipp flushes its message log
                arrivals: dict[str, float] = {}
                for at, user in invite_arrivals(message_log):
                    if at >= started - 0.001:
                        arrivals.setdefault(user, at)  # the first INVITE of this round, not a retransmission
                to_invite = [(arrivals[k] - sent[k]) * 1000 for k in sent if k in arrivals]
                to_202 = [(answered[k][0] - sent[k]) * 1000 for k in sent if answered.get(k, (0, 0))[1] == 202]
                out["invite"] += to_invite
                out["answer"] += to_202
                out["missing"] += n - len(to_invite)
                out["not_202"] += n - len(to_202)
                out["client_cpu_ms"] = max(out["client_cpu_ms"], client_ms)
                log(f"   click-to-call N={n}: INVITE p50 {percentile(to_invite, 50):.1f} ms, p99 "
                    f"{percentile(to_invite, 99):.1f} ms; 202 p50 {percentile(to_202, 50):.1f} ms; "
                    f"{n - len(to_invite)} INVITEs missing, {n - len(to_202)} not 202; client CPU "
                    f"{client_ms:.3f} ms/click")
                time.sleep(1.0)  # the declined calls finish before the next round
            results[n] = out
    finally:
        client.close()
    return results


def run(sizes: tuple[int, ...] | None = None, log: Callable[[str], None] = print, *, quick: bool = False,
        rounds: int | None = None) -> list[Result]:
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    rounds = rounds or (QUICK_ROUNDS if quick else ROUNDS)
    res = Result(
        "3. Click-to-call latency (desk phone, originate)",
        "per click: request leaving the client -> switch's INVITE at the user's desk phone (sipp message-log "
        "time), and -> the API's 202; p50/p95/p99/max per N",
        f"N = {', '.join(str(n) for n in sizes)} users clicking at once (POST /api/v1/calls, open keep-alive "
        f"connections), {rounds} round(s) per N, each user with a registered sipp desk phone that rings then "
        "declines",
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
            out = clicks(server, seed, sizes, message_log, log, rounds)
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
    res.target = "; ".join(f"click -> INVITE p99 < {ms:.0f} ms at {n} simultaneous clicks" for n, ms in TARGETS)
    res.verdict = "; ".join(verdict(out.get(n), n, ms) for n, ms in TARGETS)
    return [res]


def verdict(measured: dict[str, Any] | None, n: int, target_ms: float) -> str:
    if measured is None or not measured["invite"]:
        return f"not measured at N={n}"
    if measured["missing"]:
        return f"NOT met at N={n} ({measured['missing']} INVITEs missing)"
    p99 = percentile(measured["invite"], 99)
    return f"{'met' if p99 < target_ms else 'NOT met'} at N={n} (p99 {p99:.0f} ms)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help=f"comma-separated N (default {SIZES}, with --quick {QUICK_SIZES})")
    parser.add_argument("--rounds", type=int, help=f"rounds per N (default {ROUNDS}, with --quick {QUICK_ROUNDS})")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and one round each")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
    print(f"machine: {machine_line()}", flush=True)
    for result in run(sizes, log=lambda s: print(s, flush=True), quick=args.quick, rounds=args.rounds):
        print(result.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
