"""RFC 3261 section 17 transactions, driven by numbers for time (no sleeping)."""

from __future__ import annotations

import pytest

from callto.sip.errors import SipLocalError
from callto.sip.message import Headers, Request, Response, make_response, parse_message
from callto.sip.transaction import (
    TRANSITIONS,
    ClientTransaction,
    PassUp,
    Send,
    ServerTransaction,
    Terminated,
    TimedOut,
    Timers,
    TxKind,
    TxState,
    server_key,
)

T = Timers()


def _request(method: str, branch: str = "z9hG4bKabc", via: str = "192.0.2.1:5060") -> Request:
    headers = Headers(
        [
            ("Via", f"SIP/2.0/UDP {via};branch={branch}"),
            ("From", "<sip:a@example.com>;tag=f1"),
            ("To", "<sip:b@example.com>"),
            ("Call-ID", "call-1"),
            ("CSeq", f"1 {method}"),
            ("Max-Forwards", "70"),
        ]
    )
    return Request(method, "sip:b@example.com", headers)


def _response(request: Request, status: int) -> Response:
    return make_response(request, status, to_tag="t1")


def _sends(actions: list[object]) -> list[object]:
    return [a.message for a in actions if isinstance(a, Send)]


def test_invite_client_retransmits_on_timer_a_doubling_until_timer_b() -> None:
    invite = _request("INVITE")
    tx = ClientTransaction(invite, reliable=False, timers=T, now=0.0)
    assert _sends(tx.start(0.0)) == [invite]
    sent_at = []
    now = 0.0
    while not tx.terminated:
        now = tx.next_deadline() or now
        actions = tx.handle_timer(now)
        if _sends(actions):
            sent_at.append(now)
        if any(isinstance(a, TimedOut) for a in actions):
            assert [a.timer for a in actions if isinstance(a, TimedOut)] == ["B"]
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert now == 32.0


def test_invite_client_over_tcp_does_not_retransmit() -> None:
    tx = ClientTransaction(_request("INVITE"), reliable=True, timers=T, now=0.0)
    tx.start(0.0)
    assert set(tx.deadlines) == {"B"}


def test_invite_client_acks_failure_inside_the_transaction_and_absorbs_retransmissions() -> None:
    invite = _request("INVITE")
    tx = ClientTransaction(invite, reliable=False, timers=T, now=0.0)
    tx.start(0.0)
    ringing = tx.receive(_response(invite, 180), 0.1)
    assert [type(a) for a in ringing] == [PassUp] and tx.state is TxState.PROCEEDING
    busy = _response(invite, 486)
    actions = tx.receive(busy, 0.2)
    [ack] = _sends(actions)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.headers.get("To") == busy.headers.get("To")
    assert ack.vias[0].branch == invite.vias[0].branch and ack.cseq.seq == 1
    assert any(isinstance(a, PassUp) for a in actions)
    again = tx.receive(busy, 0.3)
    assert _sends(again) == [ack] and not any(isinstance(a, PassUp) for a in again)
    assert tx.state is TxState.COMPLETED
    assert tx.handle_timer(0.2 + 32.0) == [Terminated()]


def test_invite_client_passes_every_2xx_up_in_accepted_until_timer_m() -> None:
    invite = _request("INVITE")
    tx = ClientTransaction(invite, reliable=False, timers=T, now=0.0)
    tx.start(0.0)
    ok = _response(invite, 200)
    assert tx.receive(ok, 1.0) == [PassUp(ok)]
    assert tx.state is TxState.ACCEPTED
    assert tx.receive(ok, 1.5) == [PassUp(ok)]
    assert tx.handle_timer(1.0 + 32.0) == [Terminated()]


def test_non_invite_client_caps_retransmissions_at_t2_and_times_out_with_f() -> None:
    tx = ClientTransaction(_request("REGISTER"), reliable=False, timers=T, now=0.0)
    tx.start(0.0)
    times = []
    now = 0.0
    while not tx.terminated:
        now = tx.next_deadline() or now
        if _sends(tx.handle_timer(now)):
            times.append(now)
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert now == 32.0


def test_non_invite_client_in_proceeding_retransmits_every_t2() -> None:
    request = _request("BYE")
    tx = ClientTransaction(request, reliable=False, timers=T, now=0.0)
    tx.start(0.0)
    tx.receive(_response(request, 100), 0.1)
    assert tx.handle_timer(0.5) == [Send(request)]
    assert tx.deadlines["E"] == pytest.approx(4.5)


def test_non_invite_client_final_then_timer_k() -> None:
    request = _request("OPTIONS")
    tx = ClientTransaction(request, reliable=False, timers=T, now=0.0)
    tx.start(0.0)
    ok = _response(request, 200)
    assert tx.receive(ok, 0.2) == [PassUp(ok)]
    assert tx.receive(ok, 0.3) == []  # absorbed
    assert tx.handle_timer(0.2 + 5.0) == [Terminated()]


def test_invite_server_retransmits_failure_on_g_until_ack_then_i() -> None:
    invite = _request("INVITE")
    tx = ServerTransaction(invite, reliable=False, timers=T, now=0.0)
    trying = _response(invite, 100)
    tx.respond(trying, 0.0)
    assert tx.receive_request(invite, 0.1) == [Send(trying)]  # retransmitted INVITE gets the last response
    busy = _response(invite, 486)
    tx.respond(busy, 1.0)
    assert tx.state is TxState.COMPLETED
    assert tx.handle_timer(1.5) == [Send(busy)]
    assert tx.handle_timer(2.5) == [Send(busy)]
    ack = _request("ACK")
    assert tx.receive_request(ack, 2.6) == []
    assert tx.state is TxState.CONFIRMED
    assert tx.handle_timer(2.6 + 5.0) == [Terminated()]


def test_invite_server_without_ack_times_out_on_h() -> None:
    invite = _request("INVITE")
    tx = ServerTransaction(invite, reliable=False, timers=T, now=0.0)
    tx.respond(_response(invite, 603), 0.0)
    actions = tx.handle_timer(32.0)
    assert TimedOut("H") in actions and tx.terminated


def test_invite_server_2xx_goes_to_accepted_and_allows_2xx_retransmission() -> None:
    invite = _request("INVITE")
    tx = ServerTransaction(invite, reliable=False, timers=T, now=0.0)
    ok = _response(invite, 200)
    tx.respond(ok, 0.0)
    assert tx.state is TxState.ACCEPTED
    assert tx.respond(ok, 0.5) == [Send(ok)]
    assert tx.receive_request(invite, 0.6) == []  # absorbed, the TU retransmits 2xx
    assert tx.handle_timer(32.0) == [Terminated()]


def test_invite_server_in_accepted_keeps_no_response_for_timer_l() -> None:
    # the 2xx (and the 100 before it) would only be garbage kept alive for 32 s: Accepted never resends it
    invite = _request("INVITE")
    tx = ServerTransaction(invite, reliable=False, timers=T, now=0.0)
    tx.respond(_response(invite, 100), 0.0)
    tx.respond(_response(invite, 200), 0.1)
    assert tx.last_response is None
    assert tx.receive_request(invite, 0.6) == []
    assert tx.handle_timer(32.1) == [Terminated()]


def test_non_invite_server_answers_retransmissions_with_the_final_until_j() -> None:
    request = _request("REGISTER")
    tx = ServerTransaction(request, reliable=False, timers=T, now=0.0)
    assert tx.receive_request(request, 0.1) == []  # Trying: nothing to resend yet
    ok = _response(request, 200)
    tx.respond(ok, 0.2)
    assert tx.receive_request(request, 0.3) == [Send(ok)]
    assert tx.handle_timer(0.2 + 32.0) == [Terminated()]


def test_answering_twice_is_a_local_error() -> None:
    request = _request("OPTIONS")
    tx = ServerTransaction(request, reliable=True, timers=T, now=0.0)
    tx.respond(_response(request, 200), 0.0)
    with pytest.raises(SipLocalError):
        tx.respond(_response(request, 500), 0.1)


def test_reliable_server_transaction_ends_at_once() -> None:
    request = _request("REGISTER")
    tx = ServerTransaction(request, reliable=True, timers=T, now=0.0)
    tx.respond(_response(request, 200), 5.0)
    assert tx.next_deadline() == 5.0
    assert tx.handle_timer(5.0) == [Terminated()]


def test_rfc2543_requests_match_by_dialog_fields() -> None:
    raw = (
        b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9\r\nFrom: <sip:a@x>;tag=9\r\n"
        b"To: <sip:b@example.com>\r\nCall-ID: old\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    invite = parse_message(raw)
    ack = parse_message(raw.replace(b"7 INVITE", b"7 ACK").replace(b"INVITE sip", b"ACK sip"))
    assert isinstance(invite, Request) and isinstance(ack, Request)
    assert server_key(invite) == server_key(ack)
    assert server_key(invite)[0] == "2543"


def test_transition_table_covers_every_kind_and_only_legal_states() -> None:
    assert set(TRANSITIONS) == set(TxKind)
    for states in TRANSITIONS.values():
        assert TxState.TERMINATED not in states
        for moves in states.values():
            assert all(isinstance(target, TxState) for target in moves.values())
