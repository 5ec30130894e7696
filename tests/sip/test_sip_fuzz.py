"""Hypothesis fuzzing: the parser and the endpoint never raise anything but the typed error, never hang."""

from __future__ import annotations

import contextlib
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sip_helpers import corpus_dir, load_corpus

from callto.sip.endpoint import EndpointConfig, SipEndpoint
from callto.sip.errors import SipMessageError
from callto.sip.message import StreamBuffer, parse_message

SEEDS: list[bytes] = [c.data for c in load_corpus()] if corpus_dir().is_dir() else []
SEEDS.append(
    b"REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport\r\n"
    b'From: "A" <sip:201@pbx.test>;tag=1\r\nTo: <sip:201@pbx.test>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n'
    b'Contact: <sip:201@192.0.2.1>;expires=60;+sip.instance="<urn:uuid:1>"\r\n'
    b'Authorization: Digest username="201", realm="pbx.test", nonce="n", uri="sip:pbx.test", response="r"\r\n'
    b"Content-Length: 0\r\n\r\n"
)

TOKENS = [b"\r\n", b" ", b"\t", b":", b";", b",", b"<", b">", b'"', b"\\", b"@", b"%", b"=", b"\r\n ", b"\x00", b"\xff"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and data:
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == 1:
            data[pos:pos] = draw(st.sampled_from(TOKENS))
        elif op == 2:
            data[pos:pos] = draw(st.binary(max_size=12))
        else:
            data[pos:pos] = data[: draw(st.integers(0, 60))]  # duplicate a prefix (start line, headers)
    return bytes(data)


def _parse(data: bytes) -> None:
    # CPU time of this thread, not wall time: a busy machine (two test workers, a browser) must not turn
    # a slow scheduler into a "hang", while a parser that loops still fails.
    started = time.thread_time()
    with contextlib.suppress(SipMessageError):
        parse_message(data)
    assert time.thread_time() - started < 0.5, "parser took too long"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_only_ever_raise_the_typed_parse_error(data: bytes) -> None:
    _parse(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_messages_only_ever_raise_the_typed_parse_error(data: bytes) -> None:
    _parse(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_endpoint_never_raises_into_the_loop(data: bytes) -> None:
    endpoint = SipEndpoint(EndpointConfig(domain="pbx.test"))
    endpoint.receive_datagram(data, ("127.0.0.1", 5099), 1.0)
    while endpoint.next_event() is not None:
        pass
    for item in endpoint.transmit():
        assert item.addr == ("127.0.0.1", 5099)
    endpoint.connection_made(1, ("127.0.0.1", 5100))
    endpoint.receive_stream(1, data, 1.0)
    endpoint.handle_timer(100.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=10))
def test_stream_buffer_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    buffer = StreamBuffer()
    for chunk in chunks:
        buffer.feed(chunk)
    assert len(buffer._buf) <= buffer.limits.max_message + 300


def test_pathological_inputs_parse_fast() -> None:
    long_user = b"sip:" + b"a" * 8000
    for data in (
        b"OPTIONS " + long_user + b" SIP/2.0\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\nTo: " + b"a " * 4000 + b"\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h" + b";a" * 4000 + b"\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\nFrom: <sip:" + b"%41" * 2500 + b">\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\nContact: " + b"<sip:a@b>," * 800 + b"\r\n\r\n",
    ):
        _parse(data)
