"""CPU per click-to-call, in-process: the real app called as ASGI, the real switch, phones simulated.

Owns the repeatable half of bench 3 (issue 9): ``click_to_call.py`` measures wall-clock latency under sipp,
which a busy 2-core machine makes noisy. This builds the real server (``create_app``: dialer, switch,
telephony, history; a seeded SQLite database, no rtpengine), registers each user's desk phone by handing
REGISTERs straight to the switch's receive path, then makes rounds of ``--n`` users clicking at once:
``POST /api/v1/calls`` into the ASGI app (no uvicorn, no sockets), the switch's datagrams captured instead
of written. Each phone answers its INVITE with 180 on the next loop turn (so the 202 can come), then 486
once every click of the round has its answer, as bench 3's sipp phones do.

Printed (CPU of the event loop thread, ``time.thread_time``; worker threads apart):
- per click, all in: the HTTP request, the INVITE, the 180, the 486 and the call record;
- CPU from the round's start until each INVITE left (p50/p99 over the clicks): with N clicks at once, how
  much work the server did before phone k got its INVITE, the part of bench 3's latency the server owns.

Usage: ``.venv/bin/python bench/click_cpu.py [--n 50] [--rounds 20] [--to '0721 405516'] [--profile]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SIP_DOMAIN, percentile, seed_directory, user_token  # noqa: E402
from sip_calls_cpu import digest, header_lines  # noqa: E402

DESTINATION = "29999"
PHONE_BASE_PORT = 41000
CALL_ID_RE = re.compile(rb"^Call-ID: *([^\r\n]+)", re.I | re.M)


def answer(request: bytes, status: str, to_tag: str, addr: tuple[str, int]) -> bytes:
    lines = [f"SIP/2.0 {status}"]
    for line in header_lines(request, ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")):
        if line.split(":", 1)[0].strip().lower() in ("to", "t") and ";tag=" not in line:
            line += f";tag={to_tag}"
        lines.append(line)
    lines.append(f"Contact: <sip:{addr[0]}:{addr[1]}>")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Harness:
    def __init__(self, work: Path, users: int) -> None:
        url = f"sqlite:///{work / 'callto.db'}"
        self.seed = seed_directory(url, users)
        os.environ.update(
            CALLTO_DATA_DIR=str(work / "data"), CALLTO_DATABASE_URL=url, CALLTO_BIND="127.0.0.1",
            CALLTO_SIP_PORT="0", CALLTO_SIP_TLS_PORT="0", CALLTO_SIP_DOMAIN=SIP_DOMAIN, CALLTO_LOG_LEVEL="warning",
            CALLTO_MEDIA_RTPENGINE="off", CALLTO_ADMIN_PASSWORD="bench-admin-secret-1",
        )
        from callto.app import build_services, create_app
        from callto.config import load_settings

        self.services = build_services(load_settings(data_dir=work / "data"))
        self.app = create_app(self.services)
        self.switch: Any = None
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.round_start = 0.0
        self.invite_cpu: list[float] = []
        self.invites: dict[tuple[str, int], bytes] = {}
        self.tokens = {u.user_id: user_token(self.seed, u.user_id) for u in self.seed.users}
        self.n = 0
        self.to = DESTINATION

    def on_send(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(b"INVITE "):
            self.invite_cpu.append(time.thread_time() - self.round_start)
            self.invites[addr] = data
            # the phone rings on the next loop turn, as a datagram would arrive
            asyncio.get_running_loop().call_soon(self.deliver, answer(data, "180 Ringing", "ph", addr), addr)
        else:
            self.sent.append((data, addr))

    def deliver(self, data: bytes, addr: tuple[str, int]) -> None:
        self.switch.server._on_datagram(data, addr)

    def register(self, index: int) -> None:
        user = self.seed.users[index].sip_username
        addr = ("127.0.0.1", PHONE_BASE_PORT + index)
        uri = f"sip:{SIP_DOMAIN}"

        def request(cseq: int, auth: str) -> bytes:
            return (f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {addr[0]}:{addr[1]};branch=z9hG4bK-r{index}-{cseq};"
                    f"rport\r\nFrom: <sip:{user}@{SIP_DOMAIN}>;tag=r{index}\r\nTo: <sip:{user}@{SIP_DOMAIN}>\r\n"
                    f"Call-ID: reg-{index}@bench\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{addr[0]}:{addr[1]}>"
                    f"\r\n{auth}Max-Forwards: 70\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
                    ).encode()

        self.sent.clear()
        self.deliver(request(1, ""), addr)
        challenge = next(d for d, a in self.sent if a == addr and d.startswith(b"SIP/2.0 401"))
        www = [m.decode() for m in re.findall(rb"WWW-Authenticate: (Digest [^\r\n]*)", challenge, re.I)]
        chosen = next((c for c in www if "MD5" in c.upper() and "SHA" not in c.upper()), www[0])
        self.sent.clear()
        self.deliver(request(2, digest(user, "REGISTER", uri, chosen, "Authorization")), addr)
        assert any(d.startswith(b"SIP/2.0 200") for d, a in self.sent if a == addr), self.sent
        self.sent.clear()

    async def click(self, user_id: int) -> int:
        """One ``POST /api/v1/calls`` straight into the ASGI app: the answer's status."""
        body = json.dumps({"to": self.to}).encode()
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/api/v1/calls", "raw_path": b"/api/v1/calls",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000 + user_id),
            "server": ("127.0.0.1", 8080),
            "headers": [
                (b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {self.tokens[user_id]}".encode()),
                (b"idempotency-key", uuid.uuid4().hex.encode()), (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        return status

    async def round(self, n: int) -> None:
        self.invites.clear()
        users = [u.user_id for u in self.seed.users[:n]]
        statuses = await asyncio.gather(*(self.click(u) for u in users))
        bad = [s for s in statuses if s != 202]
        assert not bad, f"{len(bad)} clicks answered {bad[:3]}"
        for addr, invite in list(self.invites.items()):
            self.deliver(answer(invite, "486 Busy Here", "ph", addr), addr)
        await asyncio.sleep(0)


async def run(args: argparse.Namespace, work: Path) -> None:
    h = Harness(work, args.n)
    h.to = args.to
    features = h.app.state.features
    history = features.history
    async with h.app.router.lifespan_context(h.app):
        h.switch = features.switch
        udp = h.switch.server.udp
        assert udp is not None
        udp.send = h.on_send
        for i in range(args.n):
            h.register(i)
        for _ in range(3):  # warm-up: caches, code paths
            await h.round(args.n)
        # as ``callto serve`` does once it is up (CALLTO_GC_FREEZE): start-up objects out of the collector's way
        gc.collect()
        gc.freeze()
        writer = getattr(history, "writer", None)
        if writer is not None:
            await writer.flush()
        profiler = cProfile.Profile() if args.profile else None
        if args.callgrind:  # under valgrind --instr-atstart=no: count the timed rounds only
            subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], capture_output=True, check=True)
        invite_cpu: list[float] = []
        loop_cpu = 0.0
        cpu0 = time.process_time()
        if profiler is not None:
            profiler.enable()
        for _ in range(args.rounds):
            h.invite_cpu = []
            h.round_start = t0 = time.thread_time()
            await h.round(args.n)
            loop_cpu += time.thread_time() - t0
            invite_cpu += h.invite_cpu
        if writer is not None:
            await writer.flush()
        if args.callgrind:
            subprocess.run(["callgrind_control", "--instr=off", str(os.getpid())], capture_output=True, check=True)
        if profiler is not None:
            profiler.disable()
        cpu = time.process_time() - cpu0
        left = len(h.switch.b2bua.calls)
    clicks = args.n * args.rounds
    print(f"in-process clicks: {args.rounds} rounds of {args.n} users clicking at once ({clicks} clicks)")
    print(f"  event loop CPU per click (HTTP, INVITE, 180, 486, record): {loop_cpu / clicks * 1e6:8.1f} us")
    print(f"  worker threads CPU per click:                             {(cpu - loop_cpu) / clicks * 1e6:8.1f} us")
    print(f"  loop CPU from the round's start to each INVITE: p50 {percentile(invite_cpu, 50) * 1e3:.2f} ms, "
          f"p99 {percentile(invite_cpu, 99) * 1e3:.2f} ms, max {max(invite_cpu) * 1e3:.2f} ms")
    print(f"  calls left in the switch after the run: {left}")
    if profiler is not None:
        stats = pstats.Stats(profiler)
        if args.profile_out:
            stats.dump_stats(args.profile_out)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="users clicking at once")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--to", default=DESTINATION, help="the clicked number (default: an extension)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--profile-out", help="with --profile: also write the pstats file here")
    parser.add_argument("--callgrind", action="store_true",
                        help="run under callgrind with --instr-atstart=no: instrument the timed rounds only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callto-clickcpu-") as tmp:
        asyncio.run(run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
