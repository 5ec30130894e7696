"""Harness for the call tests: a real SipSwitch on a background loop, accounts, and baresip phones on it;
and, for the sans-IO tests, :class:`World`: a B2BUA on a real SipEndpoint and Registrar with simulated
phones (each a loopback port that builds requests and answers), time advanced by hand."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from callto.sip.auth import DigestClient
from callto.sip.b2bua import B2BUA, B2BUAConfig, CallRecord
from callto.sip.endpoint import CancelReceived, EndpointConfig, RequestReceived, SipEndpoint
from callto.sip.media_effects import MediaEffect, MediaReleaseNeeded
from callto.sip.message import Headers, Request, Response, make_response, parse_message
from callto.sip.ports import Binding, InMemoryBindingStore, SipAccount, StaticCredentials
from callto.sip.registrar import Registrar, RegistrarConfig
from callto.sip.switch import SipSwitch, SwitchConfig
from callto.sip.transfer import install as install_transfer
from callto.sip.trunk import TrunkRouter
from callto.switchboard.wiring import catalog_auto_answer
from support.baresip import Account, Baresip
from support.loop import LoopThread
from support.procs import ProcessError, ProcessGroup

DOMAIN = "pbx.callto.test"
T = TypeVar("T")


@dataclass
class RunningSwitch:
    switch: SipSwitch
    loop: LoopThread
    credentials: StaticCredentials
    store: InMemoryBindingStore
    records: list[CallRecord] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.switch.port

    def call(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self.loop.run(run())

    def add(self, username: str, user_id: str, extension: str, device_id: str | None = None) -> SipAccount:
        account = SipAccount(username, f"pw-{username}", device_id or f"dev-{username}", user_id, extension)
        self.credentials.add(account)
        return account

    def phone_account(self, account: SipAccount, answermode: str = "manual", transport: str = "udp") -> Account:
        params = f";transport={transport}"
        return Account(
            aor=f"sip:{account.username}@{DOMAIN}",
            password=account.password,
            auth_user=account.username,
            outbound=f"sip:127.0.0.1:{self.port}{params}",
            regint=600,
            answermode=answermode,
        )

    def wait_records(self, count: int, timeout: float = 10.0) -> list[CallRecord]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.records) >= count:
                    return list(self.records)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} call records, got {self.records}")

    def wait_event(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for k, data in self.events:
                    if k == kind and all(data.get(key) == value for key, value in match.items()):
                        return data
            time.sleep(0.05)
        raise AssertionError(f"no {kind} event matching {match}; events: {self.events}")

    def wait_bindings(self, user_id: str, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.call(lambda: self.switch.server.registrar.bindings_for_user(user_id))) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"{user_id} has fewer than {count} bindings")


@contextmanager
def running_switch(**kwargs: Any) -> Iterator[RunningSwitch]:
    loop = LoopThread("sip-switch")
    credentials = StaticCredentials()
    store = InMemoryBindingStore()
    holder: list[RunningSwitch] = []

    def on_record(record: CallRecord) -> None:
        with holder[0].lock:
            holder[0].records.append(record)

    def on_event(kind: str, data: dict[str, Any]) -> None:
        with holder[0].lock:
            holder[0].events.append((kind, data))

    config = SwitchConfig(
        domain=DOMAIN,
        host="127.0.0.1",
        port=0,
        ring_timeout=kwargs.pop("ring_timeout", 30.0),
    )

    kwargs.setdefault("vendor_auto_answer", catalog_auto_answer)  # as the server wires it

    async def make() -> SipSwitch:
        return SipSwitch(config, credentials, store, on_call_record=on_record, on_call_event=on_event, **kwargs)

    for attempt in range(3):
        switch = loop.run(make())
        try:
            loop.run(switch.start())
            break
        except OSError:  # port 0 gave a UDP port whose TCP twin is taken: pick again
            loop.run(switch.stop())
            if attempt == 2:
                loop.close()
                raise
    running = RunningSwitch(switch, loop, credentials, store)
    holder.append(running)
    try:
        yield running
    finally:
        try:
            loop.run(switch.stop(), 15)
        finally:
            loop.close()


def register_phone(
    switch: RunningSwitch,
    factory: Callable[..., Baresip],
    name: str,
    tone: Path,
    user: str,
    ext: str,
    answermode: str = "manual",
    device: str | None = None,
) -> Baresip:
    """A baresip phone for a new device of ``user`` (extension ``ext``) on the switch, registered."""
    account = switch.add(name, user, ext, device)
    for attempt in range(3):
        try:
            phone = factory(f"{name}{attempt or ''}", tone, account=switch.phone_account(account, answermode))
            break
        except ProcessError:  # baresip's TLS listener takes sip_port+1, which a neighbour may hold
            if attempt == 2:
                raise
    phone.wait_registered(timeout=10)
    return phone


def start_phone(tmp_path: Path, procs: ProcessGroup, name: str, tone: Path, account: Account | None) -> Baresip:
    return Baresip(tmp_path, procs, name=name, tone_wav=tone, account=account).start()


# --- sans-IO: the B2BUA with simulated phones -------------------------------------------------------------
PLAIN_SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)
HOLD_SDP = PLAIN_SDP.replace(b"a=sendrecv", b"a=sendonly")
WEBRTC_SDP = (
    b"v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    b"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\n"
    b"a=ice-pwd:0123456789abcdef012345\r\na=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\na=rtcp-mux\r\n"
    b"a=rtpmap:111 opus/48000/2\r\n"
)

_n = itertools.count(1)


@dataclass
class Phone:
    """A simulated UA on one loopback port: builds requests and answers, reads what the switch sent it."""

    world: World
    port: int
    username: str | None = None
    password: str | None = None
    inbox: list[Request | Response] = field(default_factory=list)
    conn: int | None = None

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def send(self, message: Request | Response) -> None:
        if self.conn is not None:
            self.world.endpoint.receive_stream(self.conn, message.to_bytes(), self.world.now)
            self.world.pump()
            return
        self.world.feed(message.to_bytes(), self.addr)

    def connect(self, conn_id: int) -> None:
        """Speak over a stream connection (as TCP or a WebSocket would) instead of UDP."""
        self.conn = conn_id
        self.world.endpoint.connection_made(conn_id, self.addr, "tcp")

    def received(self) -> list[Request | Response]:
        self.world.deliver()
        out, self.inbox = self.inbox, []
        return out

    def requests(self, method: str | None = None) -> list[Request]:
        return [m for m in self.received() if isinstance(m, Request) and (method is None or m.method == method)]

    def invite(
        self,
        to: str,
        *,
        body: bytes = PLAIN_SDP,
        extra: list[tuple[str, str]] | None = None,
        call_id: str | None = None,
        cseq: int = 1,
        auth: str | None = None,
    ) -> Request:
        headers = Headers()
        headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};rport;branch=z9hG4bK{next(_n)}x")
        headers.add("From", f"<sip:{self.username}@{DOMAIN}>;tag=ft{self.port}")
        headers.add("To", f"<sip:{to}@{DOMAIN}>")
        headers.add("Call-ID", call_id or f"call-{self.port}-{next(_n)}")
        headers.add("CSeq", f"{cseq} INVITE")
        headers.add("Contact", f"<sip:{self.username}@127.0.0.1:{self.port}>")
        headers.add("Max-Forwards", "70")
        for name, value in extra or []:
            headers.add(name, value)
        if auth:
            headers.add("Proxy-Authorization", auth)
        if body:
            headers.add("Content-Type", "application/sdp")
        return Request("INVITE", f"sip:{to}@{DOMAIN}", headers, body)

    def call(self, to: str, **kwargs: Any) -> Request:
        """INVITE, take the 407, ACK it, INVITE again with credentials; return the authenticated INVITE."""
        first = self.invite(to, **kwargs)
        self.send(first)
        challenge = next(m for m in self.received() if isinstance(m, Response) and m.status == 407)
        self.send(ack_for(first, challenge))
        assert self.username is not None and self.password is not None
        auth = DigestClient(self.username, self.password).authorization(
            challenge.headers.get_all("proxy-authenticate"), "INVITE", first.uri
        )
        second = self.invite(to, call_id=first.call_id, cseq=2, auth=auth, **kwargs)
        self.send(second)
        return second

    def answer(self, request: Request, status: int, *, body: bytes = b"", tag: str | None = None) -> Response:
        headers = [("Contact", f"<sip:{self.username or 'phone'}@127.0.0.1:{self.port}>")]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, to_tag=tag or f"tt{self.port}", headers=headers, body=body)
        self.send(response)
        return response


def ack_for(invite: Request, response: Response) -> Request:
    headers = Headers()
    headers.add("Via", invite.headers.get_list("via")[0])
    headers.add("From", invite.headers.get("from") or "")
    headers.add("To", response.headers.get("to") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.seq} ACK")
    headers.add("Max-Forwards", "70")
    return Request("ACK", invite.uri, headers)


def in_dialog(
    phone: Phone, method: str, dialog_from: Request | Response, seq: int, body: bytes = b"", *, we_are_callee: bool
) -> Request:
    """A request from ``phone`` inside the dialog created by ``dialog_from`` (the INVITE it got / sent)."""
    h = dialog_from.headers
    headers = Headers()
    headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{phone.port};rport;branch=z9hG4bK{next(_n)}d")
    if we_are_callee:  # swap: we answered the INVITE, our tag is in its To
        headers.add(
            "From", f"{h.get('to')};tag=tt{phone.port}" if "tag=" not in (h.get("to") or "") else h.get("to") or ""
        )
        headers.add("To", h.get("from") or "")
    else:
        headers.add("From", h.get("from") or "")
        headers.add("To", h.get("to") or "")
    headers.add("Call-ID", h.get("call-id") or "")
    headers.add("CSeq", f"{seq} {method}")
    headers.add("Contact", f"<sip:x@127.0.0.1:{phone.port}>")
    headers.add("Max-Forwards", "70")
    if body:
        headers.add("Content-Type", "application/sdp")
    contact = (dialog_from.headers.get("contact") or "<sip:callto@127.0.0.1:5060>").strip("<>")
    return Request(method, contact, headers, body)


class World:
    def __init__(
        self,
        *,
        ring_timeout: float = 30.0,
        media: Any = None,
        trunks: TrunkRouter | None = None,
        endpoint_config: Callable[[EndpointConfig], EndpointConfig] | None = None,
    ) -> None:
        self.now = 1_000_000.0
        self.credentials = StaticCredentials()
        self.store = InMemoryBindingStore()
        config = EndpointConfig(domain=DOMAIN, local_hosts=frozenset({"127.0.0.1"}))
        self.endpoint = SipEndpoint(endpoint_config(config) if endpoint_config is not None else config)
        self.registrar = Registrar(RegistrarConfig(realm=DOMAIN), self.credentials, self.store)
        self.records: list[CallRecord] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.b2bua = B2BUA(
            B2BUAConfig(DOMAIN, "127.0.0.1", 5060, ring_timeout),
            self.endpoint,
            self.credentials,
            self.registrar,
            self.registrar.digest,
            media=media,
            trunks=trunks,
            on_call_record=self.records.append,
            on_call_event=lambda kind, data: self.events.append((kind, data)),
        )
        install_transfer(self.b2bua)
        # answers the media effects as they come, like the switch's driver, with the world's time
        self.media_answers: Callable[[MediaEffect], str | None] | None = None
        self.phones: dict[int, Phone] = {}
        self._ports = itertools.count(41000)

    def phone(
        self,
        username: str | None = None,
        user: str | None = None,
        ext: str | None = None,
        *,
        register: bool = True,
        transport: str = "udp",
    ) -> Phone:
        port = next(self._ports)
        phone = Phone(self, port, username, f"pw-{username}")
        self.phones[port] = phone
        if username is not None and user is not None and ext is not None:
            self.credentials.add(SipAccount(username, f"pw-{username}", f"dev-{username}", user, ext))
            if register:
                self.store.upsert(
                    Binding(
                        device_id=f"dev-{username}",
                        user_id=user,
                        extension=ext,
                        aor=f"sip:{ext or username}@{DOMAIN}",  # the REGISTER's To: the extension, or the SIP username
                        contact=f"sip:{username}-c@127.0.0.1:{port}",
                        contact_header="",
                        expires_at=self.now + 3600,
                        call_id=f"reg-{port}",
                        cseq=1,
                        source_transport=transport,
                        source_host="127.0.0.1",
                        source_port=port,
                        registered_at=self.now,
                    )
                )
                self.registrar.load(self.now)
        return phone

    def feed(self, data: bytes, addr: tuple[str, int]) -> None:
        self.endpoint.receive_datagram(data, addr, self.now)
        self.pump()

    def pump(self) -> None:
        while (event := self.endpoint.next_event()) is not None:
            handled = self.b2bua.handle_event(event, self.now)
            if not handled and isinstance(event, RequestReceived) and event.tx_id is not None:
                self.endpoint.reply(event.tx_id, 480, self.now)
            if not handled and isinstance(event, CancelReceived):
                self.endpoint.reply(event.tx_id, 487, self.now)
            self.answer_media()

    def answer_media(self) -> None:
        """Answer every media effect waiting with ``media_answers`` (None: the relay failed); without it
        they wait for the test to answer them by hand."""
        answers = self.media_answers
        if answers is None:
            return
        while (effect := self.b2bua.next_media_request()) is not None:
            sdp = answers(effect)
            if isinstance(effect, MediaReleaseNeeded):
                continue
            if sdp is None:
                self.b2bua.media_failed(effect.request_id, "relay failed", self.now)
            else:
                self.b2bua.media_ready(effect.request_id, sdp, self.now)
            self.pump()

    def deliver(self) -> None:
        self.pump()
        for item in self.endpoint.transmit():
            phone = self.phones.get(item.addr[1])
            if phone is not None:
                phone.inbox.append(parse_message(item.data))

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.endpoint.handle_timer(self.now)
        self.b2bua.handle_timer(self.now)
        self.pump()
