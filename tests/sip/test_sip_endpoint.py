"""The feed/drain endpoint: two endpoints wired together in memory, streams, keepalives, refusals, timers."""

from __future__ import annotations

from callto.sip.endpoint import (
    CancelReceived,
    EndpointConfig,
    Event,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    SipEndpoint,
    Source,
    TransactionTimedOut,
)
from callto.sip.message import Headers, Request, Response, parse_message
from callto.sip.transaction import Timers

A_ADDR = ("127.0.0.1", 5070)
B_ADDR = ("127.0.0.1", 5080)


def _endpoint(domain: str, addr: tuple[str, int], **kw: object) -> SipEndpoint:
    return SipEndpoint(
        EndpointConfig(domain=domain, local_hosts=frozenset({addr[0]}), via_host=addr[0], via_port=addr[1], **kw)  # type: ignore[arg-type]
    )


def _events(ep: SipEndpoint) -> list[Event]:
    out = []
    while (event := ep.next_event()) is not None:
        out.append(event)
    return out


def _pump(a: SipEndpoint, b: SipEndpoint, now: float, drop: int = 0) -> None:
    """Deliver what each side transmits to the other (dropping the first ``drop`` datagrams)."""
    moved = True
    while moved:
        moved = False
        for src, dst, src_addr in ((a, b, A_ADDR), (b, a, B_ADDR)):
            for item in src.transmit():
                moved = True
                if drop > 0:
                    drop -= 1
                    continue
                dst.receive_datagram(item.data, src_addr, now)


def _invite(to: str = "sip:201@b.test") -> Request:
    headers = Headers(
        [
            ("From", "<sip:100@a.test>;tag=a1"),
            ("To", f"<{to}>"),
            ("Call-ID", "call-xyz"),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:100@127.0.0.1:5070>"),
            ("Content-Type", "application/sdp"),
        ]
    )
    return Request("INVITE", to, headers, b"v=0\r\n")


def test_b2bua_sends_invite_and_receives_ringing_then_ok() -> None:
    a = _endpoint("a.test", A_ADDR)
    b = _endpoint("b.test", B_ADDR)
    tx = a.send_request(_invite(), Source("udp", B_ADDR), now=0.0)
    _pump(a, b, 0.0)
    [incoming] = [e for e in _events(b) if isinstance(e, RequestReceived)]
    assert incoming.request.method == "INVITE" and incoming.request.body == b"v=0\r\n"
    assert incoming.source == Source("udp", A_ADDR)
    assert incoming.tx_id is not None
    b.reply(incoming.tx_id, 180, 0.1)
    b.reply(incoming.tx_id, 200, 0.2, headers=[("Contact", "<sip:201@127.0.0.1:5080>")], body=b"v=0\r\n")
    _pump(a, b, 0.2)
    responses = [e for e in _events(a) if isinstance(e, ResponseReceived)]
    assert [r.response.status for r in responses] == [100, 180, 200]
    assert all(r.tx_id == tx for r in responses)
    assert responses[1].response.to.tag == responses[2].response.to.tag  # one To tag per transaction
    assert responses[2].response.vias[0].received == "127.0.0.1"


def test_failure_is_acked_by_the_transaction_and_not_retransmitted() -> None:
    a = _endpoint("a.test", A_ADDR)
    b = _endpoint("b.test", B_ADDR)
    a.send_request(_invite(), Source("udp", B_ADDR), now=0.0)
    _pump(a, b, 0.0)
    [incoming] = [e for e in _events(b) if isinstance(e, RequestReceived)]
    assert incoming.tx_id is not None
    b.reply(incoming.tx_id, 486, 0.1)
    _pump(a, b, 0.1)
    assert [e.response.status for e in _events(a) if isinstance(e, ResponseReceived)] == [100, 486]
    assert _events(b) == []  # the ACK was absorbed by the server transaction
    b.handle_timer(0.7)
    assert b.transmit() == []  # confirmed: no timer G retransmission


def test_lost_request_is_retransmitted_by_timer_a() -> None:
    a = _endpoint("a.test", A_ADDR)
    b = _endpoint("b.test", B_ADDR)
    a.send_request(_invite(), Source("udp", B_ADDR), now=0.0)
    _pump(a, b, 0.0, drop=1)
    assert _events(b) == []
    assert a.get_timer() == 0.5
    a.handle_timer(0.5)
    _pump(a, b, 0.5)
    assert [type(e) for e in _events(b)] == [RequestReceived]


def test_unanswered_request_times_out_with_timer_f() -> None:
    a = _endpoint("a.test", A_ADDR)
    tx = a.send_request(
        Request(
            "OPTIONS",
            "sip:b.test",
            Headers(
                [("From", "<sip:a@a.test>;tag=1"), ("To", "<sip:b.test>"), ("Call-ID", "o1"), ("CSeq", "1 OPTIONS")]
            ),
        ),
        Source("udp", B_ADDR),
        0.0,
    )
    now = 0.0
    while (deadline := a.get_timer()) is not None:
        now = deadline
        a.handle_timer(now)
    [timeout] = [e for e in _events(a) if isinstance(e, TransactionTimedOut)]
    assert timeout.tx_id == tx and timeout.timer == "F" and now == 32.0
    assert a.transaction_count == 0


def test_cancel_is_answered_and_reported_then_invite_gets_487() -> None:
    a = _endpoint("a.test", A_ADDR)
    b = _endpoint("b.test", B_ADDR)
    tx = a.send_request(_invite(), Source("udp", B_ADDR), now=0.0)
    _pump(a, b, 0.0)
    [incoming] = [e for e in _events(b) if isinstance(e, RequestReceived)]
    assert incoming.tx_id is not None
    b.reply(incoming.tx_id, 180, 0.1)
    _pump(a, b, 0.1)
    cancel_tx = a.cancel(tx, 0.2)
    assert cancel_tx is not None
    _pump(a, b, 0.2)
    [cancelled] = [e for e in _events(b) if isinstance(e, CancelReceived)]
    assert cancelled.tx_id == incoming.tx_id
    b.reply(cancelled.tx_id, 487, 0.3)
    _pump(a, b, 0.3)
    statuses = [(e.tx_id, e.response.status) for e in _events(a) if isinstance(e, ResponseReceived)]
    assert (cancel_tx, 200) in statuses and (tx, 487) in statuses


def test_cancel_without_invite_is_481() -> None:
    b = _endpoint("b.test", B_ADDR)
    raw = (
        b"CANCEL sip:201@b.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKnone\r\n"
        b"From: <sip:a@a.test>;tag=1\r\nTo: <sip:201@b.test>\r\nCall-ID: n\r\nCSeq: 1 CANCEL\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    b.receive_datagram(raw, A_ADDR, 0.0)
    [item] = b.transmit()
    assert item.data.startswith(b"SIP/2.0 481")


def _options(branch: str = "z9hG4bKopt", extra: str = "") -> bytes:
    return (
        f"OPTIONS sip:b.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch={branch};rport\r\n"
        f"From: <sip:a@a.test>;tag=1\r\nTo: <sip:b.test>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_options_keepalive_is_answered_with_capabilities_back_to_the_source_port() -> None:
    b = _endpoint("b.test", B_ADDR)
    b.receive_datagram(_options(), ("198.51.100.7", 40001), 0.0)
    [item] = b.transmit()
    assert item.addr == ("198.51.100.7", 40001)  # not the Via's 10.9.9.9:5060
    resp = parse_message(item.data)
    assert isinstance(resp, Response) and resp.status == 200
    assert "REGISTER" in (resp.headers.get("Allow") or "")
    assert resp.headers.get("Accept") == "application/sdp"
    assert resp.vias[0].received == "198.51.100.7" and resp.vias[0].rport == 40001
    assert _events(b) == []


def test_request_retransmission_gets_the_same_answer_without_a_new_event() -> None:
    b = _endpoint("b.test", B_ADDR)
    b.receive_datagram(_options(), A_ADDR, 0.0)
    b.receive_datagram(_options(), A_ADDR, 0.4)
    first, second = b.transmit()
    assert first.data == second.data


def test_answered_request_is_absorbed_until_timer_j_then_new_again() -> None:
    b = _endpoint("b.test", B_ADDR)
    b.receive_datagram(_options(), A_ADDR, 0.0)
    [answer] = b.transmit()
    assert b.transaction_count == 1 and b.get_timer() == 32.0  # Timer J: 64*T1 over UDP
    b.handle_timer(31.9)
    b.receive_datagram(_options(), A_ADDR, 31.9)
    [again] = b.transmit()
    assert again.data == answer.data and again.addr == A_ADDR
    b.handle_timer(32.0)
    assert b.transaction_count == 0 and b.get_timer() is None
    b.receive_datagram(_options(), A_ADDR, 32.5)  # after Timer J the same branch is a new transaction
    [fresh] = b.transmit()
    assert fresh.data.startswith(b"SIP/2.0 200") and fresh.data != answer.data  # a new To tag
    assert _events(b) == []


def test_answered_transactions_beyond_the_cap_stop_absorbing_the_oldest_first() -> None:
    b = _endpoint("b.test", B_ADDR, max_completed=2)
    for i in range(3):
        b.receive_datagram(_options(f"z9hG4bK{i}"), A_ADDR, 0.0)
    first = b.transmit()[0]
    assert b.transaction_count == 2
    b.receive_datagram(_options("z9hG4bK0"), A_ADDR, 1.0)  # forgotten: answered anew, not from memory
    [again] = b.transmit()
    assert again.data.startswith(b"SIP/2.0 200") and again.data != first.data


def test_malformed_request_gets_400_and_a_rejection_event() -> None:
    b = _endpoint("b.test", B_ADDR)
    b.receive_datagram(_options().replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"), A_ADDR, 0.0)
    [item] = b.transmit()
    assert item.data.startswith(b"SIP/2.0 400 Bad Request (malformed CSeq)")
    [event] = _events(b)
    assert isinstance(event, MessageRejected) and event.status == 400


def test_garbage_and_malformed_acks_are_dropped_silently() -> None:
    b = _endpoint("b.test", B_ADDR)
    b.receive_datagram(b"\x00\xff garbage", A_ADDR, 0.0)
    b.receive_datagram(b"ACK sip:b.test SIP/2.0\r\nVia: nonsense\r\n\r\n", A_ADDR, 0.0)
    b.receive_datagram(b"\r\n\r\n", A_ADDR, 0.0)
    assert b.transmit() == []
    assert [e.status for e in _events(b) if isinstance(e, MessageRejected)] == [0, 400]  # the ACK: never answered


def test_unknown_method_is_501_and_known_unallowed_is_405_with_allow() -> None:
    b = _endpoint("b.test", B_ADDR)
    b.receive_datagram(_options("z9hG4bK1").replace(b"OPTIONS", b"FOO"), A_ADDR, 0.0)
    b.receive_datagram(_options("z9hG4bK2").replace(b"OPTIONS", b"PUBLISH"), A_ADDR, 0.0)
    answers = [parse_message(i.data) for i in b.transmit()]
    assert [(r.status, "Allow" in r.headers) for r in answers if isinstance(r, Response)] == [(501, True), (405, True)]


def test_require_of_unsupported_extension_is_420_listing_it() -> None:
    b = _endpoint("b.test", B_ADDR)
    b.receive_datagram(_options(extra="Require: 100rel, path\r\n"), A_ADDR, 0.0)
    [item] = b.transmit()
    resp = parse_message(item.data)
    assert isinstance(resp, Response) and resp.status == 420 and resp.headers.get("Unsupported") == "100rel"


def test_foreign_domain_is_404_or_483_when_out_of_hops() -> None:
    b = _endpoint("b.test", B_ADDR)
    b.receive_datagram(_options("z9hG4bK1").replace(b"sip:b.test SIP", b"sip:elsewhere.test SIP"), A_ADDR, 0.0)
    b.receive_datagram(
        _options("z9hG4bK2", "Max-Forwards: 0\r\n").replace(b"sip:b.test SIP", b"sip:elsewhere.test SIP"), A_ADDR, 0.0
    )
    assert [i.data[:11] for i in b.transmit()] == [b"SIP/2.0 404", b"SIP/2.0 483"]


def test_transaction_table_is_bounded() -> None:
    b = _endpoint("b.test", B_ADDR, max_transactions=2)
    for i in range(3):
        b.receive_datagram(
            _options(f"z9hG4bK{i}").replace(b"OPTIONS sip", b"INFO sip").replace(b"1 OPTIONS", b"1 INFO"), A_ADDR, 0.0
        )
    assert [i.data[:11] for i in b.transmit()][-1] == b"SIP/2.0 503"
    assert b.transaction_count == 2


def test_tcp_stream_is_framed_pings_ponged_and_broken_framing_closes() -> None:
    b = _endpoint("b.test", B_ADDR)
    b.connection_made(7, ("127.0.0.1", 45000))
    data = b"\r\n\r\n" + _options().replace(b"UDP", b"TCP")
    b.receive_stream(7, data[:50], 0.0)
    b.receive_stream(7, data[50:], 0.0)
    pong, answer = b.transmit()
    assert pong.data == b"\r\n" and pong.conn_id == 7
    assert answer.data.startswith(b"SIP/2.0 200") and answer.conn_id == 7 and answer.transport == "tcp"
    b.receive_stream(7, _options("z9hG4bKbad").replace(b"Content-Length: 0\r\n", b""), 0.0)
    error, close = b.transmit()
    assert error.data.startswith(b"SIP/2.0 400") and close.close


def test_response_to_a_closed_connection_ends_the_transaction() -> None:
    b = _endpoint("b.test", B_ADDR, timers=Timers())
    b.connection_made(1, ("127.0.0.1", 45001))
    b.receive_stream(1, _options().replace(b"OPTIONS sip", b"INFO sip").replace(b"1 OPTIONS", b"1 INFO"), 0.0)
    [event] = _events(b)
    assert isinstance(event, RequestReceived) and event.tx_id is not None
    b.connection_lost(1)
    b.reply(event.tx_id, 200, 0.1)
    assert b.transmit() == []
    assert any(isinstance(e, TransactionTimedOut) for e in _events(b))


def test_wildcard_listener_takes_any_ip_literal_as_ours_but_not_other_names() -> None:
    b = _endpoint("b.test", B_ADDR, accept_ip_literals=True)
    b.receive_datagram(_options("z9hG4bK1").replace(b"sip:b.test SIP", b"sip:192.0.2.99:5060 SIP"), A_ADDR, 0.0)
    b.receive_datagram(_options("z9hG4bK2").replace(b"sip:b.test SIP", b"sip:other.test SIP"), A_ADDR, 0.0)
    assert [i.data[:11] for i in b.transmit()] == [b"SIP/2.0 200", b"SIP/2.0 404"]
