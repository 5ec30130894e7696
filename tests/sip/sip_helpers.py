"""Helpers shared by the SIP tests: the RFC 4475 corpus, its rewriting, free ports, a pure-core harness."""

from __future__ import annotations

import csv
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from callto.sip.endpoint import EndpointConfig, RequestReceived, SipEndpoint, Source
from callto.sip.message import Response, parse_message
from callto.sip.ports import InMemoryBindingStore, SipAccount, StaticCredentials
from callto.sip.registrar import Registrar, RegistrarConfig, RegistrarEvent
from callto.sip.server import SipServer
from support.loop import LoopThread

DOMAIN = "pbx.callto.test"


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists():
            return parent
    raise RuntimeError("repository root not found")


def corpus_dir() -> Path:
    return repo_root().parent / "shared" / "conformance" / "rfc4475"


@dataclass(frozen=True)
class TortureCase:
    name: str
    category: str
    expected: str
    method: str
    ruri_host: str
    top_via: str
    data: bytes

    @property
    def is_response(self) -> bool:
        return self.method.startswith("response:")


def load_corpus() -> list[TortureCase]:
    folder = corpus_dir()
    cases = []
    with open(folder / "manifest.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            cases.append(
                TortureCase(
                    row["name"],
                    row["category"],
                    row["expected"],
                    row["method"],
                    row["ruri_host"],
                    row["top_via"],
                    (folder / f"{row['name']}.sip").read_bytes(),
                )
            )
    return cases


_VIA_START = re.compile(rb"(?im)^(via|v)[ \t]*:")


def rewrite(case: TortureCase, via_host: str, via_port: int, domain: str = DOMAIN, branch_suffix: str = "") -> bytes:
    """Point the Request-URI (and a REGISTER's To/From) at our domain and the top Via at our own socket."""
    data = case.data
    if case.is_response:
        return data
    head_end = data.find(b"\r\n")
    start, rest = data[:head_end], data[head_end:]
    host = case.ruri_host.encode()
    if not case.ruri_host.startswith("non-SIP") and host in start:
        idx = start.rfind(host)
        start = start[:idx] + domain.encode() + start[idx + len(host) :]
    if case.method == "REGISTER":
        rest = re.sub(rb"(?im)^((?:to|t|from|f)[ \t]*:[^\r\n]*@)example\.com", rb"\1" + domain.encode(), rest)
    # top Via: the manifest names its sent-by ("UDP 192.0.2.2", "UDP host:5060", "UDP 127.0.0.1:5070 (rport)")
    sent_by = case.top_via.split()[1].encode()
    m = _VIA_START.search(rest)
    if m is not None:
        idx = rest.find(sent_by, m.end())
        if idx >= 0:
            after = rest[idx + len(sent_by) :]
            extra = b"" if after.lstrip(b" ;").lower().startswith(b"rport") or b";rport" in after[:80] else b";rport"
            rest = rest[:idx] + f"{via_host}:{via_port}".encode() + extra + after
    if branch_suffix:
        rest = rest.replace(b"branch=z9hG4bK", b"branch=z9hG4bK" + branch_suffix.encode(), 1)
    return start + rest


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# What a switch that is registrar + B2BUA endpoint (no call handler yet) answers to each torture message.
# None: no answer at all (responses, or an unanswerable request). Several codes: the RFC allows either.
EXPECTED: dict[str, set[int] | None] = {
    "wsinv": {480, 481},  # To carries a tag: a B2BUA with no such dialog answers 481
    "intmeth": {501},
    "esc01": {480},
    "escnull": {401},
    "esc02": {501},
    "lwsdisp": {200},
    "longreq": {480},
    "dblreq": {401},
    "semiuri": {200},
    "transports": {200},
    "mpart01": {405},
    "unreason": None,
    "noreason": None,
    "badinv01": {400},
    "clerr": {400},
    "ncl": {400},
    "scalar02": {400},
    "scalarlg": None,
    "quotbal": {400},
    "ltgtruri": {400},
    "lwsruri": {400},
    "lwsstart": {400},
    "trws": {400},
    "escruri": {400},
    "baddate": {480, 400},
    "regbadct": {400},
    "badaspec": {400},
    "baddn": {400},
    "badvers": {505},
    "mismatch01": {400},
    "mismatch02": {501, 400},
    "bigcode": None,
    "badbranch": {200, 400},
    "insuf": {400},
    "unkscm": {416},
    "novelsc": {416},
    "unksm2": {400},
    "bext01": {420},
    "invut": {415},
    "regaut01": {401},
    "multi01": {400},
    "mcl01": {400},
    "bcast": None,
    "zeromf": {200},
    "cparam01": {401},
    "cparam02": {401},
    "regescrt": {401},
    "sdp01": {406, 400},
    "inv2543": {480},
}

# REGISTER torture cases whose bindings we complete with digest auth, and what must be stored
REGISTER_ACCOUNTS = {
    "escnull": ("null-%00-null", ["sip:%00@host5.example.com", "sip:%00%00@host5.example.com"]),
    "dblreq": ("j.user", ["sip:j.user@host.example.com"]),
    "cparam01": ("watson", ["sip:+19725552222@gw1.example.net"]),
    "cparam02": ("watson", ["sip:+19725552222@gw1.example.net;unknownparam"]),
    "regescrt": ("user", ["sip:user@example.com?Route=%3Csip:sip.example.com%3E"]),
}


def torture_credentials() -> StaticCredentials:
    creds = StaticCredentials()
    for i, (username, _contacts) in enumerate(REGISTER_ACCOUNTS.values()):
        creds.add(SipAccount(username, f"pw-{username}", f"dev-{i}-{username}", f"user-{username}", f"2{i:02d}"))
    return creds


@dataclass
class CoreHarness:
    """Endpoint + registrar glued like SipServer does, without sockets: for pure-core tests."""

    endpoint: SipEndpoint
    registrar: Registrar
    events: list[object] = field(default_factory=list)
    registrar_events: list[RegistrarEvent] = field(default_factory=list)

    @classmethod
    def create(cls, credentials: StaticCredentials | None = None) -> CoreHarness:
        endpoint = SipEndpoint(
            EndpointConfig(domain=DOMAIN, local_hosts=frozenset({"127.0.0.1"}), via_host="127.0.0.1", via_port=5060)
        )
        registrar = Registrar(
            RegistrarConfig(realm=DOMAIN), credentials or torture_credentials(), InMemoryBindingStore()
        )
        return cls(endpoint, registrar)

    def feed(self, data: bytes, addr: tuple[str, int], now: float) -> list[Response]:
        """Feed one datagram; play a TU that answers INVITEs 480; return the responses sent back to addr."""
        self.endpoint.receive_datagram(data, addr, now)
        while (event := self.endpoint.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, RequestReceived) and event.tx_id is not None:
                if event.request.method == "REGISTER":
                    reply = self.registrar.handle_register(event.request, event.source, now)
                    self.endpoint.reply(event.tx_id, reply.status, now, reply.reason, headers=reply.headers)
                    self.registrar_events.extend(reply.events)
                else:
                    self.endpoint.reply(event.tx_id, 480, now)
        out = []
        for item in self.endpoint.transmit():
            assert item.addr == addr, f"answer sent to {item.addr}, not back to the source {addr}"
            message = parse_message(item.data, strict=False)
            assert isinstance(message, Response)
            out.append(message)
        return out

    @staticmethod
    def source(addr: tuple[str, int]) -> Source:
        return Source("udp", addr)


T = TypeVar("T")


@dataclass
class RunningServer:
    server: SipServer
    loop: LoopThread
    credentials: StaticCredentials
    store: InMemoryBindingStore
    events: list[RegistrarEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (the registrar is not thread-safe) and return its result."""

        async def run() -> T:
            return fn()

        return self.loop.run(run())

    def options_ok(self, timeout: float = 5.0) -> bool:
        """Send an OPTIONS keepalive from a fresh socket and wait for its 200."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(timeout)
            port = sock.getsockname()[1]
            msg = (
                f"OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKka{port};rport\r\n"
                f"From: <sip:ka@127.0.0.1>;tag=k{port}\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: ka-{port}\r\n"
                "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            sock.sendto(msg.encode(), ("127.0.0.1", self.port))
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                return False
            return data.startswith(b"SIP/2.0 200")


def running_sip_server(credentials: StaticCredentials, **kwargs: Any) -> Iterator[RunningServer]:
    loop = LoopThread("sip-server")
    store = InMemoryBindingStore()
    holder: list[RunningServer] = []

    def on_event(event: RegistrarEvent) -> None:
        with holder[0].lock:
            holder[0].events.append(event)

    server = SipServer("127.0.0.1", 0, DOMAIN, credentials, store, on_event, **kwargs)
    running = RunningServer(server, loop, credentials, store)
    holder.append(running)
    loop.run(server.start())
    try:
        yield running
    finally:
        loop.run(server.stop())
        loop.close()
