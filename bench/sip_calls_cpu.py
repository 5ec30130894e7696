"""CPU per call through the switch's B2BUA, in-process: no sipp, no sockets, no other processes.

Owns the repeatable half of bench 2 (issue 9): ``sip_calls.py`` measures the whole server under sipp, which a
busy 2-core machine makes noisy. This builds the real server (``create_app``: switch, telephony, presence,
history with its write-behind, cards; a seeded SQLite database, no rtpengine) without HTTP, hands datagrams
straight to the switch's receive path and captures what it sends instead of writing it to the socket. Each
call is the benchmark's: INVITE, 407, ACK, INVITE with Proxy-Authorization (MD5, qop=auth), 100, the
INVITE to the callee (a registered desk phone), 180, 200 with SDP, ACK (relayed end to end), BYE, 200, the
BYE to the callee and its 200; callers are 100 registered devices of other users, as in bench 2.

Counted: the CPU time of the event loop thread inside the switch's receive path (``time.thread_time``), and,
apart, the worker threads' CPU over the run (the history's batched writes; measured as the process's CPU
less the loop thread's). The client side (building requests, digests) is not counted. ``--concurrent N``
keeps N calls up (answered, not yet hung up) while the others run, so per-call costs that grow with the
number of calls show; ``--profile`` prints cProfile's top entries (loop thread only; wall time, which on a
busy machine includes waiting for a core).

Usage: ``.venv/bin/python bench/sip_calls_cpu.py [--calls 3000] [--concurrent 0] [--profile] [--uvloop]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEVICE_PASSWORD, SIP_DOMAIN, seed_directory  # noqa: E402

CALLERS = 100
CALLEE = CALLERS
CALLER_ADDR = ("127.0.0.1", 40000)
CALLEE_ADDR = ("127.0.0.1", 40100)
CHALLENGE_RE = re.compile(rb"Proxy-Authenticate: (Digest [^\r\n]*)", re.I)
NONCE_RE = re.compile(r'nonce="([^"]+)"')
REALM_RE = re.compile(r'realm="([^"]+)"')
TO_TAG_RE = re.compile(rb"^To: ([^\r\n]*)", re.I | re.M)
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n" \
      "a=rtpmap:0 PCMU/8000\r\n"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest(user: str, method: str, uri: str, challenge: str, header: str) -> str:
    nonce_m, realm_m = NONCE_RE.search(challenge), REALM_RE.search(challenge)
    assert nonce_m is not None and realm_m is not None, challenge
    nonce, realm = nonce_m.group(1), realm_m.group(1)
    ha1 = md5(f"{user}:{realm}:{DEVICE_PASSWORD}")
    ha2 = md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}")
    return (f'{header}: Digest username="{user}",realm="{realm}",cnonce="0a4f113b",nc=00000001,qop=auth,'
            f'uri="{uri}",nonce="{nonce}",response="{response}",algorithm=MD5\r\n')


def md5_challenge(data: bytes) -> str:
    found = [m.group(1).decode() for m in CHALLENGE_RE.finditer(data)]
    assert found, data[:400]
    return next((c for c in found if "MD5" in c.upper() and "SHA" not in c.upper()), found[0])


def header_lines(data: bytes, names: tuple[str, ...]) -> list[str]:
    """The raw lines of ``names`` (lower-case) in a message, in order, for echoing them in a response."""
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    return [line for line in head.split("\r\n")[1:] if line.split(":", 1)[0].strip().lower() in names]


def response(request: bytes, status: str, to_tag: str | None, body: str = "", contact: bool = True) -> bytes:
    lines = [f"SIP/2.0 {status}"]
    for line in header_lines(request, ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")):
        name = line.split(":", 1)[0].strip().lower()
        if to_tag and name in ("to", "t") and ";tag=" not in line:
            line += f";tag={to_tag}"
        lines.append(line)
    if contact:
        lines.append(f"Contact: <sip:{CALLEE_ADDR[0]}:{CALLEE_ADDR[1]};transport=udp>")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class Harness:
    def __init__(self, work: Path) -> None:
        url = f"sqlite:///{work / 'callto.db'}"
        seed_directory(url, CALLERS + 1)
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
        self.inside = 0.0
        self.n = 0

    def deliver(self, data: bytes, addr: tuple[str, int]) -> list[tuple[bytes, tuple[str, int]]]:
        self.sent.clear()
        t0 = time.thread_time()
        self.switch.server._on_datagram(data, addr)
        self.inside += time.thread_time() - t0
        return list(self.sent)

    def only(self, out: list[tuple[bytes, tuple[str, int]]], addr: tuple[str, int], start: bytes) -> bytes:
        found = [d for d, a in out if a == addr and d.startswith(start)]
        assert len(found) == 1, (start, [d[:60] for d, _ in out])
        return found[0]

    def register(self, index: int, addr: tuple[str, int]) -> None:
        user = f"b{index:05d}"
        uri = f"sip:{SIP_DOMAIN}"

        def request(cseq: int, auth: str) -> bytes:
            return (f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {addr[0]}:{addr[1]};branch=z9hG4bK-r{index}-{cseq};"
                    f"rport\r\nFrom: <sip:{user}@{SIP_DOMAIN}>;tag=r{index}\r\nTo: <sip:{user}@{SIP_DOMAIN}>\r\n"
                    f"Call-ID: reg-{index}@bench\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{addr[0]}:{addr[1]}>"
                    f"\r\n{auth}Max-Forwards: 70\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n").encode()

        challenge = self.only(self.deliver(request(1, ""), addr), addr, b"SIP/2.0 401")
        www = [m.decode() for m in re.findall(rb"WWW-Authenticate: (Digest [^\r\n]*)", challenge, re.I)]
        chosen = next((c for c in www if "MD5" in c.upper() and "SHA" not in c.upper()), www[0])
        ok = self.deliver(request(2, digest(user, "REGISTER", uri, chosen, "Authorization")), addr)
        self.only(ok, addr, b"SIP/2.0 200")

    def call(self, i: int, hang_up: bool = True) -> dict[str, Any]:
        """One call up to the ACK (and, with ``hang_up``, the BYE): returns what the BYE needs."""
        self.n += 1
        n = self.n
        user = f"b{i % CALLERS:05d}"
        to_uri = f"sip:{20000 + CALLEE}@{SIP_DOMAIN}"
        tag = f"{n}SIPpTag00{n}"
        call_id = f"{n}-bench@127.0.0.1"

        def invite(cseq: int, auth: str) -> bytes:
            return (f"INVITE {to_uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-{n}-{cseq};rport\r\n"
                    f"From: <sip:{user}@{SIP_DOMAIN}>;tag={tag}\r\nTo: <{to_uri}>\r\nCall-ID: {call_id}\r\n"
                    f"CSeq: {cseq} INVITE\r\nContact: <sip:{user}@127.0.0.1:40000>\r\n{auth}Max-Forwards: 70\r\n"
                    f"User-Agent: sipp-bench\r\nContent-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n"
                    f"{SDP}").encode()

        out = self.deliver(invite(1, ""), CALLER_ADDR)
        challenge = self.only(out, CALLER_ADDR, b"SIP/2.0 407")
        to_407 = TO_TAG_RE.search(challenge)
        assert to_407 is not None
        ack = (f"ACK {to_uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-{n}-1;rport\r\n"
               f"From: <sip:{user}@{SIP_DOMAIN}>;tag={tag}\r\nTo: {to_407.group(1).decode()}\r\nCall-ID: {call_id}\r\n"
               f"CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        self.deliver(ack, CALLER_ADDR)
        auth = digest(user, "INVITE", to_uri, md5_challenge(challenge), "Proxy-Authorization")
        out = self.deliver(invite(2, auth), CALLER_ADDR)
        leg_b = self.only(out, CALLEE_ADDR, b"INVITE ")
        callee_tag = f"{n}SIPpTag01{n}"
        self.only(self.deliver(response(leg_b, "180 Ringing", callee_tag), CALLEE_ADDR), CALLER_ADDR, b"SIP/2.0 180")
        ok = self.only(self.deliver(response(leg_b, "200 OK", callee_tag, SDP.replace("1 1", "2 2")), CALLEE_ADDR),
                       CALLER_ADDR, b"SIP/2.0 200")
        to_200 = TO_TAG_RE.search(ok)
        contact = re.search(rb"^Contact: <([^>]+)>", ok, re.I | re.M)
        assert to_200 is not None and contact is not None
        state = {"n": n, "user": user, "tag": tag, "call_id": call_id, "to": to_200.group(1).decode(),
                 "target": contact.group(1).decode()}
        ack2 = (f"ACK {state['target']} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-{n}-a;rport\r\n"
                f"From: <sip:{user}@{SIP_DOMAIN}>;tag={tag}\r\nTo: {state['to']}\r\nCall-ID: {call_id}\r\n"
                f"CSeq: 2 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        self.only(self.deliver(ack2, CALLER_ADDR), CALLEE_ADDR, b"ACK ")
        if hang_up:
            self.bye(state)
        return state

    def bye(self, state: dict[str, Any]) -> None:
        n = state["n"]
        bye = (f"BYE {state['target']} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-{n}-b;rport\r\n"
               f"From: <sip:{state['user']}@{SIP_DOMAIN}>;tag={state['tag']}\r\nTo: {state['to']}\r\n"
               f"Call-ID: {state['call_id']}\r\nCSeq: 3 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        out = self.deliver(bye, CALLER_ADDR)
        self.only(out, CALLER_ADDR, b"SIP/2.0 200")
        leg_bye = self.only(out, CALLEE_ADDR, b"BYE ")
        self.deliver(response(leg_bye, "200 OK", None, contact=True), CALLEE_ADDR)


async def run(args: argparse.Namespace, work: Path) -> None:
    h = Harness(work)
    features = h.app.state.features
    history = features.history
    async with h.app.router.lifespan_context(h.app):
        h.switch = features.switch
        udp = h.switch.server.udp
        assert udp is not None
        udp.send = lambda data, addr: h.sent.append((data, addr))
        h.register(CALLEE, CALLEE_ADDR)
        for i in range(CALLERS):
            h.register(i, CALLER_ADDR)
        held = [h.call(i, hang_up=False) for i in range(args.concurrent)]
        for i in range(200):  # warm-up: caches, code paths
            h.call(i)
        await asyncio.sleep(0.2)
        writer = getattr(history, "writer", None)
        if writer is not None:
            await writer.flush()
        profiler = cProfile.Profile() if args.profile else None
        h.inside = 0.0
        gc.collect()
        objects0 = len(gc.get_objects())
        gen2 = [0, 0.0]  # full collections during the run and their total wall time
        gen2_start = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if info["generation"] != 2:
                return
            if phase == "start":
                gen2_start[0] = time.perf_counter()
            else:
                gen2[0] += 1
                gen2[1] += time.perf_counter() - gen2_start[0]

        gc.callbacks.append(on_gc)
        cpu0, loop0 = time.process_time(), time.thread_time()
        if profiler is not None:
            profiler.enable()
        for i in range(args.calls):
            h.call(i)
            if i % 50 == 49:
                await asyncio.sleep(0)  # what the server's loop would do between datagrams: timers, callbacks
        if writer is not None:
            await writer.flush()
        if profiler is not None:
            profiler.disable()
        cpu, loop_cpu = time.process_time() - cpu0, time.thread_time() - loop0
        gc.callbacks.remove(on_gc)
        objects = len(gc.get_objects())  # the run's transactions are all still in their Timer windows here
        endpoint = h.switch.server.endpoint
        txs = endpoint.transaction_count
        for state in held:
            h.bye(state)
        b2bua = h.switch.b2bua
        left = len(b2bua.calls) if b2bua is not None else -1
    loop_kind = type(asyncio.get_running_loop()).__module__
    workers = max(0.0, cpu - loop_cpu)
    print(f"in-process calls through the B2BUA: {args.calls} calls ({args.concurrent} more held up meanwhile), "
          f"loop={loop_kind}, history={'write-behind' if writer is not None else 'none'}")
    print(f"  switch (event loop, receive path): {h.inside / args.calls * 1e6:8.1f} us CPU per call")
    print(f"  worker threads (history writes):   {workers / args.calls * 1e6:8.1f} us CPU per call")
    print(f"  calls left in the switch after the run: {left}")
    print(f"  GC-tracked objects at the end: {objects} ({(objects - objects0) / args.calls:.1f} more per call run; "
          f"{txs} transactions alive)")
    print(f"  full (gen2) collections during the run: {gen2[0]}, {gen2[1] * 1e3:.1f} ms in total")
    if profiler is not None:
        stats = pstats.Stats(profiler)
        by_file: dict[str, float] = {}
        for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
            key = filename.split("/src/")[-1] if "/src/callto/" in filename else "(python, libraries)"
            by_file[key] = by_file.get(key, 0.0) + row[2]
        total = sum(by_file.values()) or 1.0
        print("self time by file:")
        for key, seconds in sorted(by_file.items(), key=lambda kv: -kv[1])[:20]:
            print(f"  {100 * seconds / total:5.1f}%  {seconds / args.calls * 1e6:8.1f} us/call  {key}")
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        if args.callers:
            stats.print_callers(args.callers)
        if args.callees:
            stats.print_callees(args.callees)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrent", type=int, default=0, help="calls held up during the run")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--callers", default="", help="with --profile: who calls the functions matching this")
    parser.add_argument("--callees", default="", help="with --profile: what the functions matching this call")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    with tempfile.TemporaryDirectory(prefix="callto-callcpu-") as tmp:
        asyncio.run(run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
