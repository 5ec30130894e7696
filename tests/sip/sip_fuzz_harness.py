"""Coverage-guided fuzzing (atheris, libFuzzer) of the SIP parser and the endpoint's feed.

One input is one datagram. :func:`one_input` parses it (``parse_message``, then every lazily parsed header
a transaction or the registrar reads, then serialises it back), frames it as a TCP stream in two pieces,
and feeds it to a :class:`SipEndpoint` as a datagram and as a WebSocket message, answering what comes
out like the server does (REGISTERs through a real :class:`Registrar`, the rest 480). A crash is any
exception other than the parser's own :class:`SipMessageError` (from the parser); the endpoint and the
registrar must not raise at all.

Run: ``make fuzz`` (``python tests/sip/sip_fuzz_harness.py -max_total_time=300``); crashes are written to
``tests/sip/fuzz_regressions/`` and replayed by ``test_sip_fuzz_regressions.py``. Seeds are built here
(no corpus is stored in the repository): a REGISTER with digest credentials, an INVITE with SDP, a
response, a CANCEL, an OPTIONS.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "fuzz_regressions"
DOMAIN = "pbx.test"

SEEDS: list[bytes] = [
    b"REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport\r\n"
    b'From: "A" <sip:201@pbx.test>;tag=1\r\nTo: <sip:201@pbx.test>\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\n'
    b'Contact: <sip:201@192.0.2.1;ob>;expires=60;+sip.instance="<urn:uuid:1>";reg-id=1;q=0.5\r\n'
    b'Authorization: Digest username="201", realm="pbx.test", nonce="n", uri="sip:pbx.test", response="r",'
    b" algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\nSupported: path\r\nPath: <sip:e.test;lr>\r\n"
    b"Expires: 60\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    b"INVITE sip:202@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi\r\n"
    b"From: <sip:201@pbx.test>;tag=2\r\nTo: \"B\" <sip:202@pbx.test>\r\nCall-ID: i@x\r\nCSeq: 1 INVITE\r\n"
    b"Contact: <sip:201@192.0.2.1>\r\nRecord-Route: <sip:p.test;lr>\r\nRequire: \r\nAccept: application/sdp\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 34\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n",
    b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr;received=1.2.3.4;rport=9\r\n"
    b"From: <sip:a@pbx.test>;tag=3\r\nTo: <sip:b@pbx.test>;tag=4\r\nCall-ID: r\r\nCSeq: 7 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n",
    b"CANCEL sip:202@pbx.test SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi\r\n"
    b"f: <sip:201@pbx.test>;tag=2\r\n"
    b"t: <sip:202@pbx.test>\r\ni: i@x\r\nCSeq: 1 CANCEL\r\nl: 0\r\n\r\n",
    b"OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKo\r\n"
    b"From: <sips:x@pbx.test>;tag=5\r\nTo: <tel:+1-555-0100;phone-context=pbx.test>\r\nCall-ID: o\r\n"
    b"CSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\nContent-Length: 0\r\n\r\n",
]


class Target:
    """The code under test, built once (a fresh endpoint per input would hide state bugs; its tables are
    bounded, so one for the whole run is fine)."""

    def __init__(self) -> None:
        from callto.sip.endpoint import EndpointConfig, SipEndpoint
        from callto.sip.ports import InMemoryBindingStore, SipAccount, StaticCredentials
        from callto.sip.registrar import Registrar, RegistrarConfig

        self.endpoint = SipEndpoint(EndpointConfig(domain=DOMAIN, local_hosts=frozenset({"127.0.0.1"})))
        creds = StaticCredentials([SipAccount("201", "pw", "d1", "u1", "201")])
        self.registrar = Registrar(RegistrarConfig(realm=DOMAIN, min_expires=1), creds, InMemoryBindingStore())
        self.now = 1_000_000.0
        self.conn = 0


def _touch(message: object) -> None:
    """Read what transactions, the registrar and the B2BUA read; typed errors are allowed here."""
    from callto.sip.errors import SipMessageError
    from callto.sip.message import Request

    for name in ("vias", "cseq", "call_id", "to", "from_", "contacts", "max_forwards", "expires"):
        with contextlib.suppress(SipMessageError):
            getattr(message, name)
    if isinstance(message, Request):
        with contextlib.suppress(SipMessageError):
            _ = message.ruri
    with contextlib.suppress(SipMessageError):
        message.to_bytes()  # type: ignore[attr-defined]


def one_input(data: bytes, target: Target) -> None:
    from callto.sip.endpoint import Source
    from callto.sip.errors import SipMessageError
    from callto.sip.message import StreamBuffer, parse_message

    try:
        message = parse_message(data)
    except SipMessageError:
        pass
    else:
        _touch(message)
    buffer = StreamBuffer()
    half = len(data) // 2
    for chunk in (data[:half], data[half:]):
        for item in buffer.feed(chunk):
            if not isinstance(item, str | SipMessageError):
                _touch(item)

    ep = target.endpoint
    target.now += 0.01
    target.conn += 1
    # drained after each feed, as the server does (a reply after the connection is gone would be our bug)
    ep.receive_datagram(data, ("192.0.2.1", 5060), target.now)
    _drain(target)
    ep.connection_made(target.conn, ("192.0.2.2", 5070), "tcp")
    ep.receive_stream(target.conn, data, target.now)
    _drain(target)
    ep.connection_lost(target.conn)
    ep.connection_made(target.conn, ("192.0.2.3", 443), "ws")
    ep.receive_message(data, Source("ws", ("192.0.2.3", 443), target.conn), target.now)
    _drain(target)
    ep.connection_lost(target.conn)
    # a message-framed flow whose connection the endpoint no longer knows (closed while the frame was
    # on its way): the answers fail, nothing may raise
    ep.receive_message(data, Source("wss", ("192.0.2.4", 443), 10_000_000 + target.conn), target.now)
    _drain(target)
    ep.handle_timer(target.now + 40)
    ep.transmit()


def _drain(target: Target) -> None:
    from callto.sip.endpoint import RequestReceived

    ep = target.endpoint
    while (event := ep.next_event()) is not None:
        if isinstance(event, RequestReceived) and event.tx_id is not None:
            if event.request.method == "REGISTER":
                reply = target.registrar.handle_register(event.request, event.source, target.now)
                ep.reply(event.tx_id, reply.status, target.now, reply.reason, headers=reply.headers)
            else:
                ep.reply(event.tx_id, 480, target.now)
    ep.transmit()


def main() -> None:
    import atheris

    sys.path.insert(0, str(HERE.parents[1] / "src"))
    with atheris.instrument_imports(include=["callto.sip"]):
        import callto.sip.endpoint
        import callto.sip.grammar
        import callto.sip.message
        import callto.sip.registrar  # noqa: F401
    target = Target()

    def test_one(data: bytes) -> None:
        one_input(data, target)

    REGRESSIONS.mkdir(exist_ok=True)
    args = list(sys.argv)
    if not any(a.startswith("-artifact_prefix=") for a in args):
        args.append(f"-artifact_prefix={REGRESSIONS}/")
    corpus = Path(tempfile.mkdtemp(prefix="sip-fuzz-corpus-"))
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i}").write_bytes(seed)
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(corpus))
    atheris.Setup(args, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
