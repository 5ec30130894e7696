"""A call whose INVITE comes over TLS: what the switch writes on the TLS leg names its TLS listener.

The switch is a B2BUA and never sends Record-Route (each leg is its own dialog with the switch), so the
headers that decide where a TLS phone sends its ACK and BYE are our Contact (the remote target, RFC 3261
12.1.1) and the Via of the requests we send on that leg (RFC 3261 18.2.2). A real SipSwitch with a TLS
listener; the TLS phone is a raw TLS socket, the other phone a raw UDP socket.
"""

from __future__ import annotations

import itertools
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from calls_harness import DOMAIN, PLAIN_SDP
from test_sip_tls import _self_signed

from callto.sip.auth import DigestClient
from callto.sip.message import Headers, Request, Response, StreamBuffer, make_response, parse_message
from callto.sip.ports import InMemoryBindingStore, SipAccount, StaticCredentials
from callto.sip.switch import SipSwitch, SwitchConfig
from support.loop import LoopThread

pytestmark = pytest.mark.timeout(30)
_n = itertools.count(1)


class TlsPhone:
    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock, self.buffer, self.port = sock, StreamBuffer(), sock.getsockname()[1]
        self.transport, self.pending = "TLS", list[Request | Response]()

    def send(self, message: Request | Response) -> None:
        self.sock.sendall(message.to_bytes())

    def recv(self) -> Request | Response:
        while not self.pending:
            self.pending.extend(self.buffer.feed(self.sock.recv(65535)))  # type: ignore[arg-type]
        return self.pending.pop(0)


class UdpPhone:
    def __init__(self, sock: socket.socket, server: tuple[str, int]) -> None:
        self.sock, self.server, self.port, self.transport = sock, server, sock.getsockname()[1], "UDP"

    def send(self, message: Request | Response) -> None:
        self.sock.sendto(message.to_bytes(), self.server)

    def recv(self) -> Request | Response:
        message = parse_message(self.sock.recv(65535))
        assert isinstance(message, Request | Response)
        return message


Phone = TlsPhone | UdpPhone


def _request(phone: Phone, method: str, user: str, to: str, call_id: str, cseq: int,
             extra: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Request:
    tp = ";transport=tls" if phone.transport == "TLS" else ""
    h = Headers()
    h.add("Via", f"SIP/2.0/{phone.transport} 127.0.0.1:{phone.port};rport;branch=z9hG4bK{next(_n)}t")
    h.add("From", f"<sip:{user}@{DOMAIN}>;tag=f{phone.port}")
    h.add("To", f"<sip:{to}@{DOMAIN}>")
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} {method}")
    h.add("Contact", f"<sip:{user}@127.0.0.1:{phone.port}{tp}>")
    h.add("Max-Forwards", "70")
    for name, value in extra:
        h.add(name, value)
    if body:
        h.add("Content-Type", "application/sdp")
    uri = f"sip:{DOMAIN}" if method == "REGISTER" else f"sip:{to}@{DOMAIN}"
    return Request(method, uri, h, body)


def _final(phone: Phone) -> Response:
    while True:
        m = phone.recv()
        if isinstance(m, Response) and m.status >= 200:
            return m


def _register(phone: Phone, user: str) -> None:
    call_id = f"reg-{user}"
    phone.send(_request(phone, "REGISTER", user, user, call_id, 1))
    challenge = _final(phone)
    assert challenge.status == 401
    auth = DigestClient(user, f"pw-{user}").authorization(
        challenge.headers.get_all("WWW-Authenticate"), "REGISTER", f"sip:{DOMAIN}"
    )
    phone.send(_request(phone, "REGISTER", user, user, call_id, 2, (("Authorization", auth),)))
    assert _final(phone).status == 200


def _ack(invite: Request, response: Response) -> Request:
    h = Headers()
    h.add("Via", invite.headers.get_list("via")[0])
    h.add("From", invite.headers.get("from") or "")
    h.add("To", response.headers.get("to") or "")
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{invite.cseq.seq} ACK")
    h.add("Max-Forwards", "70")
    return Request("ACK", invite.uri, h)


@pytest.fixture
def tls_switch(tmp_path: Path) -> Iterator[tuple[SipSwitch, LoopThread, Path]]:
    cert, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    creds = StaticCredentials([SipAccount("alice", "pw-alice", "dev-a", "u-a", "201"),
                               SipAccount("bob", "pw-bob", "dev-b", "u-b", "202")])
    loop = LoopThread("sip-tls-switch")

    async def make() -> SipSwitch:
        return SipSwitch(SwitchConfig(domain=DOMAIN, port=0, tcp=False, tls_context=ctx), creds, InMemoryBindingStore())

    switch = loop.run(make())
    try:
        loop.run(switch.start())
        yield switch, loop, cert
    finally:
        loop.run(switch.stop(), 15)
        loop.close()


def test_switch_names_its_tls_listener_in_contact_and_via_on_a_call_that_came_over_tls(
    tls_switch: tuple[SipSwitch, LoopThread, Path],
) -> None:
    switch, _, cert = tls_switch
    endpoint = switch.server.endpoint
    assert endpoint is not None
    udp_port, tls_port = endpoint.config.via_port, switch.server.tls_port
    assert udp_port != tls_port
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with (
        socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw,
        client_ctx.wrap_socket(raw, server_hostname=DOMAIN) as tls_sock,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp_sock,
    ):
        udp_sock.bind(("127.0.0.1", 0))
        udp_sock.settimeout(5)
        alice, bob = TlsPhone(tls_sock), UdpPhone(udp_sock, ("127.0.0.1", udp_port))
        _register(alice, "alice")
        _register(bob, "bob")

        # Alice calls Bob over TLS (challenged first, as every INVITE is).
        first = _request(alice, "INVITE", "alice", "202", "tls-call", 1, body=PLAIN_SDP)
        alice.send(first)
        challenge = _final(alice)
        assert challenge.status == 407
        alice.send(_ack(first, challenge))
        auth = DigestClient("alice", "pw-alice").authorization(
            challenge.headers.get_all("Proxy-Authenticate"), "INVITE", first.uri
        )
        invite = _request(alice, "INVITE", "alice", "202", "tls-call", 2, (("Proxy-Authorization", auth),), PLAIN_SDP)
        alice.send(invite)

        # Bob's leg is UDP: it names the UDP port, so the transports are really told apart.
        inv = bob.recv()
        while not (isinstance(inv, Request) and inv.method == "INVITE"):
            inv = bob.recv()
        assert inv.headers.get_list("via")[0].startswith(f"SIP/2.0/UDP 127.0.0.1:{udp_port};")
        bob.send(make_response(inv, 200, to_tag="tb", body=PLAIN_SDP,
                               headers=[("Contact", f"<sip:bob@127.0.0.1:{bob.port}>"),
                                        ("Content-Type", "application/sdp")]))

        ok = _final(alice)
        assert ok.status == 200, ok.status
        assert ok.headers.get_all("Record-Route") == []  # a B2BUA: no Record-Route, its Contact is the target
        contact = ok.headers.get("Contact") or ""
        assert f"127.0.0.1:{tls_port}" in contact and "transport=tls" in contact, contact
        alice.send(_ack(invite, ok))

        # Bob hangs up: the BYE the switch sends Alice on the TLS leg has the TLS listener as its Via sent-by.
        bye_h = Headers()
        bye_h.add("Via", f"SIP/2.0/UDP 127.0.0.1:{bob.port};rport;branch=z9hG4bK{next(_n)}b")
        bye_h.add("From", f"{inv.headers.get('to')};tag=tb")
        bye_h.add("To", inv.headers.get("from") or "")
        bye_h.add("Call-ID", inv.call_id)
        bye_h.add("CSeq", "10 BYE")
        bye_h.add("Max-Forwards", "70")
        bob.send(Request("BYE", (inv.headers.get("contact") or "").strip("<>"), bye_h))
        bye = alice.recv()
        while not (isinstance(bye, Request) and bye.method == "BYE"):
            bye = alice.recv()
        via = bye.headers.get_list("via")[0]
        assert via.startswith(f"SIP/2.0/TLS 127.0.0.1:{tls_port};"), via
        assert bye.headers.get_all("Record-Route") == []
        bye_contact = bye.headers.get("Contact")
        assert bye_contact is None or (f":{tls_port}" in bye_contact and "transport=tls" in bye_contact), bye_contact
        alice.send(make_response(bye, 200))
