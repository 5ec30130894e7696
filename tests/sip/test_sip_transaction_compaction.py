"""Transactions in Completed/Confirmed keep wire bytes, not parsed messages, and still behave per RFC 3261 17."""

from __future__ import annotations

from callto.sip.endpoint import (
    EndpointConfig,
    Event,
    RequestReceived,
    ResponseReceived,
    SipEndpoint,
    Source,
    TransactionTimedOut,
)
from callto.sip.message import Headers, Request, make_response, parse_message
from callto.sip.transaction import Transaction, TxState

A_ADDR = ("127.0.0.1", 5070)
B_ADDR = ("127.0.0.1", 5080)

INVITE = (
    b"INVITE sip:201@b.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcompact1;rport\r\n"
    b"From: <sip:100@a.test>;tag=a1\r\nTo: <sip:201@b.test>\r\nCall-ID: compact-1\r\nCSeq: 1 INVITE\r\n"
    b"Contact: <sip:100@127.0.0.1:5070>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


def _endpoint(domain: str, addr: tuple[str, int]) -> SipEndpoint:
    return SipEndpoint(
        EndpointConfig(domain=domain, local_hosts=frozenset({addr[0]}), via_host=addr[0], via_port=addr[1])
    )


def _events(ep: SipEndpoint) -> list[Event]:
    out = []
    while (event := ep.next_event()) is not None:
        out.append(event)
    return out


def _only_tx(ep: SipEndpoint) -> Transaction:
    [tx] = ep._txs.values()
    return tx


def _ack_for(response: bytes) -> bytes:
    to = next(line for line in response.split(b"\r\n") if line.lower().startswith(b"to:"))
    return (
        INVITE.replace(b"INVITE sip:201@b.test", b"ACK sip:201@b.test")
        .replace(b"1 INVITE", b"1 ACK")
        .replace(b"To: <sip:201@b.test>", to)
    )


def _reject_invite(b: SipEndpoint) -> bytes:
    b.receive_datagram(INVITE, A_ADDR, 0.0)
    [incoming] = [e for e in _events(b) if isinstance(e, RequestReceived)]
    assert incoming.tx_id is not None
    b.transmit()  # the 100 Trying
    b.reply(incoming.tx_id, 486, 0.1)
    [busy] = b.transmit()
    assert busy.data.startswith(b"SIP/2.0 486 ")
    return busy.data


def test_rejected_invite_keeps_bytes_and_answers_retransmissions_with_the_same_486() -> None:
    b = _endpoint("b.test", B_ADDR)
    busy = _reject_invite(b)
    tx = _only_tx(b)
    assert tx.state is TxState.COMPLETED
    assert tx.parsed is None and tx.last_response is None and tx.response_wire == busy
    b.receive_datagram(INVITE, A_ADDR, 0.2)  # the caller did not get the 486
    assert [t.data for t in b.transmit()] == [busy]
    assert _events(b) == []  # absorbed, the TU does not see it again
    b.handle_timer(0.6)  # Timer G
    assert [t.data for t in b.transmit()] == [busy]


def test_ack_still_confirms_a_compacted_rejected_invite_and_timer_i_ends_it() -> None:
    b = _endpoint("b.test", B_ADDR)
    busy = _reject_invite(b)
    b.receive_datagram(_ack_for(busy), A_ADDR, 0.3)
    assert _events(b) == []  # the ACK of a non-2xx ends in the transaction
    tx = _only_tx(b)
    assert tx.state is TxState.CONFIRMED
    b.receive_datagram(INVITE, A_ADDR, 0.4)  # Confirmed absorbs a late retransmission without answering
    assert b.transmit() == []
    b.handle_timer(0.3 + 5.0)  # Timer I (T4)
    assert b.transaction_count == 0
    assert b.transmit() == []


def test_timer_h_on_a_compacted_invite_still_reports_its_request() -> None:
    b = _endpoint("b.test", B_ADDR)
    _reject_invite(b)
    now = 0.1
    timeouts: list[TransactionTimedOut] = []
    while b.transaction_count and now < 40:
        now = b.get_timer() or now + 1
        b.handle_timer(now)
        timeouts += [e for e in _events(b) if isinstance(e, TransactionTimedOut)]
    assert [t.timer for t in timeouts] == ["H"]
    assert now >= 0.1 + 32
    request = timeouts[0].request
    assert request.method == "INVITE" and request.call_id == "compact-1"
    assert request.vias[0].branch == "z9hG4bKcompact1"


def _outgoing(a: SipEndpoint, method: str) -> tuple[int, Request]:
    headers = Headers(
        [("From", "<sip:100@a.test>;tag=a1"), ("To", "<sip:201@b.test>"), ("Call-ID", "out-1"), ("CSeq", f"1 {method}")]
    )
    tx_id = a.send_request(Request(method, "sip:201@b.test", headers), Source("udp", B_ADDR), 0.0)
    [sent] = a.transmit()
    request = parse_message(sent.data)
    assert isinstance(request, Request)
    return tx_id, request


def test_retransmitted_final_response_to_our_invite_gets_the_same_ack_again() -> None:
    a = _endpoint("a.test", A_ADDR)
    tx_id, invite = _outgoing(a, "INVITE")
    busy = make_response(invite, 486, to_tag="b1").to_bytes()
    a.receive_datagram(busy, B_ADDR, 0.1)
    [ack] = a.transmit()
    assert ack.data.startswith(b"ACK sip:201@b.test ") and ack.addr == B_ADDR
    [event] = _events(a)
    assert isinstance(event, ResponseReceived) and event.tx_id == tx_id and event.request is not None
    assert event.request.call_id == "out-1"
    tx = _only_tx(a)
    assert tx.parsed is None and tx.ack is None and tx.ack_wire == ack.data
    a.receive_datagram(busy, B_ADDR, 0.6)  # our ACK was lost: the peer retransmits its 486
    assert [t.data for t in a.transmit()] == [ack.data]
    assert _events(a) == []  # the TU heard of the 486 once
    a.handle_timer(0.1 + 32.0)  # Timer D
    assert a.transaction_count == 0


def test_answered_non_invite_client_transaction_absorbs_retransmitted_responses_until_timer_k() -> None:
    a = _endpoint("a.test", A_ADDR)
    tx_id, bye = _outgoing(a, "BYE")
    ok = make_response(bye, 200, to_tag="b1").to_bytes()
    a.receive_datagram(ok, B_ADDR, 0.1)
    [event] = _events(a)
    assert isinstance(event, ResponseReceived) and event.tx_id == tx_id and event.response.status == 200
    tx = _only_tx(a)
    assert tx.state is TxState.COMPLETED and tx.parsed is None
    a.receive_datagram(ok, B_ADDR, 0.2)
    assert _events(a) == [] and a.transmit() == []
    a.handle_timer(0.1 + 5.0)  # Timer K (T4)
    assert a.transaction_count == 0
