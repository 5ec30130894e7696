"""CPU per registration of the switch's own code, in-process: no sipp, no sockets, no other processes.

Owns the repeatable half of issue 9's "profile before optimizing" for REGISTER (bench 1 measures the whole
server under sipp, which a busy 2-core machine makes noisy). A :class:`~callto.sip.switch.SipSwitch` is
started on a loopback port, but datagrams are handed straight to its receive path and what it sends is
captured instead of written to the socket. Each registration is the benchmark's: REGISTER, the 401
challenge, the MD5 digest retry (qop=auth) and the 200, for ``--devices`` distinct devices (first
registrations), then ``--rounds`` passes of refreshes over the same devices, on a simulated clock running
at ``--rate`` registrations per second (timers fire as they would in a server at that rate). Only the time spent inside
the switch's receive path is counted (``time.process_time``), not the client side that builds requests
and digests. ``--store database`` writes bindings through the real write-behind store to a SQLite file
(its flush, in a worker thread, is timed apart); ``--profile`` prints cProfile's top entries.

Usage: ``.venv/bin/python bench/sip_register_cpu.py [--devices 2000] [--rounds 3] [--rate 1500]
[--store memory|database] [--uvloop] [--profile]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from callto.sip.ports import InMemoryBindingStore, SipAccount, StaticCredentials  # noqa: E402
from callto.sip.registrar import RegistrarConfig, RegistrarEvent  # noqa: E402
from callto.sip.switch import SipSwitch, SwitchConfig  # noqa: E402

DOMAIN = "callto.test"
PASSWORD = "bench-sip-secret-1"
CLIENT = ("127.0.0.1", 40000)
NONCE_RE = re.compile(rb'nonce="([^"]+)"')
STATUS_RE = re.compile(rb"^SIP/2\.0 (\d{3})")

REGISTER = (
    "REGISTER sip:{domain} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-{n}-{round}-{step};rport\r\n"
    "From: <sip:{user}@{domain}>;tag={n}SIPpTag00{n}\r\n"
    "To: <sip:{user}@{domain}>\r\n"
    "Call-ID: {n}-reg-{round}@127.0.0.1\r\n"
    "CSeq: {step} REGISTER\r\n"
    "Contact: <sip:{user}@127.0.0.1:40000>\r\n"
    "{auth}"
    "Max-Forwards: 70\r\n"
    "Expires: 600\r\n"
    "User-Agent: sipp-bench\r\n"
    "Content-Length: 0\r\n\r\n"
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def authorization(user: str, nonce: str) -> str:
    uri = f"sip:{DOMAIN}"
    ha1 = md5(f"{user}:{DOMAIN}:{PASSWORD}")
    ha2 = md5(f"REGISTER:{uri}")
    response = md5(f"{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}")
    return (
        f'Authorization: Digest username="{user}",realm="{DOMAIN}",cnonce="0a4f113b",nc=00000001,qop=auth,'
        f'uri="{uri}",nonce="{nonce}",response="{response}",algorithm=MD5\r\n'
    )


class Harness:
    def __init__(self, devices: int, store: str, work: Path, rate: float) -> None:
        self.devices = devices
        accounts = [SipAccount(f"b{i:05d}", PASSWORD, str(i + 1), str(i + 2), str(20000 + i)) for i in range(devices)]
        self.credentials = StaticCredentials(accounts)
        self.events = 0
        self.flush_seconds = 0.0
        self.db: Any = None
        if store == "database":
            from callto.store import migrate
            from callto.store.database import Database
            from callto.switchboard.store import DatabaseBindingStore

            self.db = Database(f"sqlite:///{work / 'bench.db'}")
            migrate.upgrade(self.db)
            self.store: Any = DatabaseBindingStore(self.db)
        else:
            self.store = InMemoryBindingStore()
        # a simulated clock: each registration moves it on by 1/rate seconds, and the server's timer (the
        # transactions' Timer J after 32 s, binding expiry) is run when due, so the transaction table and
        # what the garbage collector walks look like a server's at that rate
        self.now = 1_800_000_000.0
        self.step = 1.0 / rate
        self.switch = SipSwitch(
            SwitchConfig(domain=DOMAIN, host="127.0.0.1", port=0, tcp=False, registrar=RegistrarConfig(realm=DOMAIN)),
            self.credentials,
            self.store,
            on_registration_event=self._on_event,
            clock=lambda: self.now,
        )
        self.sent: list[bytes] = []
        self.inside = 0.0

    def _on_event(self, _event: RegistrarEvent) -> None:
        self.events += 1

    async def start(self) -> None:
        await self.switch.start()
        udp = self.switch.server.udp
        assert udp is not None
        udp.send = lambda data, addr: self.sent.append(data)  # type: ignore[method-assign]

    async def stop(self) -> None:
        await self.switch.stop()

    def _deliver(self, data: bytes) -> bytes:
        self.sent.clear()
        receive = self.switch.server._on_datagram
        t0 = time.process_time()
        receive(data, CLIENT)
        self.inside += time.process_time() - t0
        assert len(self.sent) == 1, self.sent
        return self.sent[0]

    def register(self, i: int, rnd: int) -> None:
        user = f"b{i:05d}"
        first = REGISTER.format(domain=DOMAIN, n=i, step=1, user=user, round=rnd, auth="").encode()
        challenge = self._deliver(first)
        m = NONCE_RE.search(challenge)
        assert m is not None and challenge.startswith(b"SIP/2.0 401"), challenge[:200]
        auth = authorization(user, m.group(1).decode())
        second = REGISTER.format(domain=DOMAIN, n=i, step=2, user=user, round=rnd, auth=auth).encode()
        ok = self._deliver(second)
        assert ok.startswith(b"SIP/2.0 200"), ok[:300]
        self.now += self.step
        server = self.switch.server
        if server._timer_at is not None and server._timer_at <= self.now:
            t0 = time.process_time()
            server.handle_timer()
            self.inside += time.process_time() - t0

    def flush(self) -> None:
        """Run the write-behind's flush now, timed (it runs in a worker thread in the server)."""
        if self.db is None:
            return
        batch = self.store._take()
        t0 = time.process_time()
        self.store._flush(batch)
        self.flush_seconds += time.process_time() - t0


class GcTimer:
    """Time spent in the garbage collector (it runs inside whatever allocates, so profiles smear it)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.process_time()
        else:
            self.seconds += time.process_time() - self._t0
            self.full += info["generation"] == 2


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="callto-regcpu-") as tmp:
        h = Harness(args.devices, args.store, Path(tmp), args.rate)
        await h.start()
        try:
            profiler = cProfile.Profile() if args.profile else None
            phases: list[tuple[str, float, float, int, float, int]] = []
            gc_timer = GcTimer()
            for rnd in range(args.rounds + 1):
                h.inside = 0.0
                h.flush_seconds = 0.0
                gc_timer.seconds, gc_timer.full = 0.0, 0
                if profiler is not None and rnd == 1:
                    profiler.enable()
                for i in range(args.devices):
                    h.register(i, rnd)
                    if (i + 1) % 500 == 0:
                        h.flush()
                h.flush()
                name = "first registrations" if rnd == 0 else f"refresh round {rnd}"
                phases.append((name, h.inside, h.flush_seconds, args.devices, gc_timer.seconds, gc_timer.full))
            if profiler is not None:
                profiler.disable()
        finally:
            await h.stop()
        loop = type(asyncio.get_running_loop()).__module__
        print(f"in-process REGISTER CPU ({args.devices} devices, store={args.store}, loop={loop}):")
        for name, inside, flush, n, in_gc, full in phases:
            extra = f", + {flush / n * 1e6:6.1f} us flush" if args.store == "database" else ""
            print(f"  {name:20s}: {inside / n * 1e6:7.1f} us CPU per registration (2 requests){extra}"
                  f"  [of which GC {in_gc / n * 1e6:5.1f} us, {full} full collections]")
        print(f"  transactions alive at the end: {h.switch.server.endpoint.transaction_count}")  # type: ignore[union-attr]
        refresh = phases[1:]
        if refresh:
            per = sorted(p[1] / p[3] * 1e6 for p in refresh)
            print(f"  refresh best / median: {per[0]:7.1f} / {per[len(per) // 2]:7.1f} us CPU per registration "
                  f"(a busy machine inflates both; the best is the least disturbed); {h.events} registrar events")
        if profiler is not None:
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=("memory", "database"), default="memory")
    parser.add_argument("--rate", type=float, default=1500.0, help="simulated registrations per second")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
