"""Instructions per digest REGISTER through the switch's protocol core, counted by valgrind's callgrind.

Owns the repeatable before/after figure for the REGISTER hot path (issue 18): wall-clock CPU on a shared
machine moves between runs, an instruction count does not. No sockets, no event loop: bytes go into a
:class:`~callto.sip.endpoint.SipEndpoint`, its REGISTER events to a :class:`~callto.sip.registrar.Registrar`
and :class:`~callto.sip.throttle.DigestThrottle` the way the server drives them (throttle delay, registrar,
throttle bookkeeping, ``endpoint.reply``), and the response bytes are taken from ``endpoint.transmit()``.
Each registration is the REGISTER bench's (sipp's ``register.xml``): REGISTER, 401 challenge, MD5 digest
retry with qop=auth, 200 - a refresh of an already registered device, on a clock running at ``--rate``
registrations per second (transaction Timer J and the completed-transaction table behave as at that rate).
The client side's requests are built before counting starts (left: one MD5 and a join per registration).

``--count N`` runs ``--warm`` registrations, then N counted ones. Under callgrind, run it twice (N and 0)
and divide the difference of the totals by N; ``--callgrind`` does that and prints Ir per registration and
the top functions of the counted run (``callgrind_annotate``). Without ``--callgrind`` it prints
``time.process_time`` per registration, and ``--profile`` cProfile's top Python functions.

Usage: ``.venv/bin/python bench/sip_register_instructions.py --callgrind [--count 200] [--warm 300]``
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from callto.sip.endpoint import EndpointConfig, RequestReceived, SipEndpoint  # noqa: E402
from callto.sip.ports import InMemoryBindingStore, SipAccount, StaticCredentials  # noqa: E402
from callto.sip.registrar import Registrar, RegistrarConfig  # noqa: E402
from callto.sip.throttle import DigestThrottle  # noqa: E402

DOMAIN = "callto.test"
PASSWORD = "bench-sip-secret-1"
CLIENT = ("127.0.0.1", 40000)

# as sipp's register.xml sends it (bench/scenarios), with sipp's own Call-ID and branch shapes
REGISTER = (
    "REGISTER sip:{domain} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-31337-{n}-{step};rport\r\n"
    "From: <sip:{user}@{domain}>;tag=31337SIPpTag00{n}\r\n"
    "To: <sip:{user}@{domain}>\r\n"
    "Call-ID: {n}-31337@127.0.0.1\r\n"
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
    """The Authorization header sipp builds for a 401 with qop=auth (its field order)."""
    uri = f"sip:{DOMAIN}"
    ha1 = md5(f"{user}:{DOMAIN}:{PASSWORD}")
    ha2 = md5(f"REGISTER:{uri}")
    response = md5(f"{ha1}:{nonce}:00000001:6b8b4567:auth:{ha2}")
    return (
        f'Authorization: Digest username="{user}",realm="{DOMAIN}",cnonce="6b8b4567",nc=00000001,qop=auth,'
        f'uri="{uri}",nonce="{nonce}",response="{response}",algorithm=MD5\r\n'
    )


class Core:
    """Endpoint + registrar + throttle, driven as the server drives them for a REGISTER."""

    def __init__(self, devices: int, rate: float) -> None:
        accounts = [SipAccount(f"b{i:05d}", PASSWORD, str(i + 1), str(i + 2), str(20000 + i)) for i in range(devices)]
        self.registrar = Registrar(RegistrarConfig(realm=DOMAIN), StaticCredentials(accounts), InMemoryBindingStore())
        self.throttle = DigestThrottle()
        self.endpoint = SipEndpoint(
            EndpointConfig(domain=DOMAIN, local_hosts=frozenset({"127.0.0.1", "localhost"}), via_port=5060)
        )
        self.now = 1_800_000_000.0
        self.step = 1.0 / rate
        self.devices = devices
        self.serial = 0

    def deliver(self, data: bytes) -> bytes:
        """One datagram in, the one datagram the switch answers with out (as SipServer._on_datagram)."""
        endpoint, now = self.endpoint, self.now
        endpoint.receive_datagram(data, CLIENT, now)
        while (event := endpoint.next_event()) is not None:
            assert isinstance(event, RequestReceived) and event.tx_id is not None, event
            host = event.source.addr[0]
            delay = self.throttle.delay_for(host, now)
            reply = self.registrar.handle_register(event.request, event.source, now)
            if reply.failed_username is not None:
                delay += self.throttle.failed(host, reply.failed_username, now)
            elif reply.status == 200:
                self.throttle.succeeded(host, now)
            assert delay == 0, delay
            endpoint.reply(event.tx_id, reply.status, now, reply.reason, headers=reply.headers)
        out = endpoint.transmit()
        assert len(out) == 1, out
        return out[0].data

    def tick(self) -> None:
        """The clock moves on by one registration; due timers run (as the server's one timer would)."""
        self.now += self.step
        at = self.endpoint.get_timer()
        if at is not None and at <= self.now:
            self.endpoint.handle_timer(self.now)
        expiry = self.registrar.next_expiry()
        if expiry is not None and expiry <= self.now:
            self.registrar.expire(self.now)

    def prepare(self, count: int) -> list[tuple[bytes, bytes, bytes, str, str]]:
        """The client's side of ``count`` registrations, built before counting: the first REGISTER, the
        retry around its nonce and response, and the digest's HA1/HA2 (only the response is left to do)."""
        out = []
        uri = f"sip:{DOMAIN}"
        for _ in range(count):
            n = self.serial
            self.serial += 1
            user = f"b{n % self.devices:05d}"
            first = REGISTER.format(domain=DOMAIN, n=n, step=1, user=user, auth="").encode()
            second = REGISTER.format(domain=DOMAIN, n=n, step=2, user=user, auth=authorization(user, "\0"))
            head, _, rest = second.partition("\0")
            rest = rest.replace(rest[rest.index('response="') + 10:][:32], "\0", 1)
            middle, _, tail = rest.partition("\0")
            ha1 = md5(f"{user}:{DOMAIN}:{PASSWORD}")
            ha2 = md5(f"REGISTER:{uri}")
            out.append((first, head.encode(), middle.encode() + b"\0" + tail.encode(), ha1, ha2))
        return out

    def register(self, client: tuple[bytes, bytes, bytes, str, str]) -> None:
        """One registration: REGISTER, 401, authorized REGISTER, 200."""
        first, head, rest, ha1, ha2 = client
        challenge = self.deliver(first)
        assert challenge.startswith(b"SIP/2.0 401"), challenge[:200]
        at = challenge.find(b'nonce="') + 7  # bytes.find: a regex search here cost as much as a header's parse
        assert at >= 7
        nonce = challenge[at : challenge.index(b'"', at)]
        response = md5(f"{ha1}:{nonce.decode()}:00000001:6b8b4567:auth:{ha2}").encode()
        ok = self.deliver(head + nonce + rest.replace(b"\0", response, 1))
        assert ok.startswith(b"SIP/2.0 200"), ok[:300]
        self.tick()


def run(count: int, warm: int, devices: int, rate: float, profile: bool, prepare: int | None = None) -> float:
    core = Core(devices, rate)
    for client in core.prepare(warm):
        core.register(client)
    clients = core.prepare(count if prepare is None else prepare)[:count]
    # as the server does after start-up: what exists now is never collected, so a full collection falling
    # inside the counted registrations (or not) moves the count by little
    gc.collect()
    gc.freeze()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    t0 = time.process_time()
    for client in clients:
        core.register(client)
    used = time.process_time() - t0
    if profiler is not None:
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(30)
    return used


def callgrind(args: argparse.Namespace) -> int:
    """Run this script under callgrind with ``--count`` and with 0; print the difference per registration."""
    totals: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="callto-reg-ir-") as tmp:
        outs: dict[int, Path] = {}
        for count in (args.count, 0):
            out = Path(tmp) / f"callgrind.{count}"
            argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                    "--count", str(count), "--prepare", str(args.count), "--warm", str(args.warm),
                    "--devices", str(args.devices), "--rate", str(args.rate)]
            proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
            if proc.returncode != 0:
                print(proc.stdout, proc.stderr, sep="\n")
                return 1
            m = re.search(r"Collected : (\d+)", proc.stderr)
            assert m is not None, proc.stderr
            totals[count] = int(m.group(1))
            outs[count] = out
        per = (totals[args.count] - totals[0]) / args.count
        print(f"callgrind: {totals[args.count]:,} Ir with {args.count} counted registrations, {totals[0]:,} Ir "
              f"without (warm-up {args.warm}) -> {per:,.0f} Ir per registration (2 requests, 2 responses)")
        if args.top:
            diff = subprocess.run(["callgrind_annotate", "--threshold=99", str(outs[args.count])],
                                  capture_output=True, text=True).stdout
            base = subprocess.run(["callgrind_annotate", "--threshold=99", str(outs[0])],
                                  capture_output=True, text=True).stdout
            print(top_functions(diff, base, args.count, args.top))
    return 0


FUNC_RE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.+?)(?:\s+\[.*\])?$")


def _self_costs(text: str) -> dict[str, int]:
    costs: dict[str, int] = {}
    for line in text.splitlines():
        m = FUNC_RE.match(line)
        if m and ":" in m.group(2) and not line.lstrip().startswith("--"):
            costs[m.group(2)] = costs.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return costs


def top_functions(run_text: str, base_text: str, count: int, top: int) -> str:
    """The functions whose self cost grew most from the run without counted registrations, per registration."""
    a, b = _self_costs(run_text), _self_costs(base_text)
    rows = sorted(((a[k] - b.get(k, 0), k) for k in a), reverse=True)[:top]
    # file:function, without the directory the interpreter was built in
    return "\n".join(f"  {d / count:>10,.0f} Ir  {name.rsplit('/', 1)[-1]}" for d, name in rows if d > 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="counted registrations")
    parser.add_argument("--prepare", type=int, help="client requests to build (default: --count); the "
                        "run without counted registrations builds as many, so the difference is the switch's")
    parser.add_argument("--warm", type=int, default=300, help="registrations before counting")
    parser.add_argument("--devices", type=int, default=100, help="distinct devices (the warm-up registers each)")
    parser.add_argument("--rate", type=float, default=1500.0, help="simulated registrations per second")
    parser.add_argument("--callgrind", action="store_true", help="run under callgrind twice, print Ir/registration")
    parser.add_argument("--top", type=int, default=25, help="with --callgrind: top functions by self cost")
    parser.add_argument("--profile", action="store_true", help="cProfile the counted registrations")
    args = parser.parse_args()
    if args.callgrind:
        return callgrind(args)
    used = run(args.count, args.warm, args.devices, args.rate, args.profile, args.prepare)
    if args.count:
        print(f"{used / args.count * 1e6:.1f} us CPU per registration ({args.count} counted, {args.warm} warm-up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
