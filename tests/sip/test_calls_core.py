"""The B2BUA without sockets: a real SipEndpoint and Registrar, simulated phones, time passed by hand."""

from __future__ import annotations

import pytest
from calls_harness import DOMAIN, HOLD_SDP, PLAIN_SDP, WEBRTC_SDP, Phone, World, ack_for, in_dialog

from callto.media.rtpengine import MediaProfile
from callto.sip.b2bua import Disposition, strip_auto_answer
from callto.sip.dialog import Dialog
from callto.sip.endpoint import (
    Source,
)
from callto.sip.message import Headers, Request, Response, make_response
from callto.sip.sdp import is_hold, is_webrtc, parse_sdp, profile_of, reject_all
from callto.sip.trunk import TrunkConfig, TrunkRouter, same_number


def _finals(messages: list[Request | Response]) -> list[int]:
    return [m.status for m in messages if isinstance(m, Response) and m.status >= 200]


def _statuses(messages: list[Request | Response]) -> list[int]:
    return [m.status for m in messages if isinstance(m, Response)]


# ---------------------------------------------------------------------------------------------------------
def test_unauthenticated_invite_is_challenged_with_407() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    world.phone("bob", "u-b", "202")
    alice.send(alice.invite("202"))
    [challenge] = [m for m in alice.received() if isinstance(m, Response) and m.status >= 200]
    assert challenge.status == 407
    assert "Digest" in (challenge.headers.get("proxy-authenticate") or "")
    assert world.b2bua.calls == {}


def test_fork_first_answer_wins_and_the_other_branch_is_cancelled() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    desk = world.phone("bobdesk", "u-b", "202")
    soft = world.phone("bobsoft", "u-b", "202")
    alice.call("202")
    [inv_desk] = desk.requests("INVITE")
    [inv_soft] = soft.requests("INVITE")
    assert inv_desk.uri == f"sip:bobdesk-c@127.0.0.1:{desk.port}"  # the stored Contact is the Request-URI
    desk.answer(inv_desk, 180)
    soft.answer(inv_soft, 180)
    assert 180 in _statuses(alice.received())
    assert world.b2bua.user_call_state("u-b") == "ringing"
    soft.answer(inv_soft, 200, body=PLAIN_SDP)
    [cancel] = desk.requests("CANCEL")
    assert cancel.call_id == inv_desk.call_id
    ok = [m for m in alice.received() if isinstance(m, Response) and m.status == 200]
    assert ok and ok[0].body == PLAIN_SDP  # same profile: SDP passes untouched
    assert [m.method for m in soft.requests()] == []  # the callee's ACK waits for the caller's
    assert world.b2bua.user_call_state("u-b") == "busy"


def test_caller_ack_is_carried_to_the_callee_end_to_end() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    invite = alice.call("202")
    [inv] = bob.requests("INVITE")
    bob.answer(inv, 200, body=PLAIN_SDP)
    [ok] = [m for m in alice.received() if isinstance(m, Response) and m.status == 200]
    alice.send(ack_for(invite, ok))
    [ack] = bob.requests("ACK")
    assert ack.cseq.seq == inv.cseq.seq and ack.call_id == inv.call_id


def test_unacknowledged_2xx_is_retransmitted_over_udp() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    alice.call("202")
    [inv] = bob.requests("INVITE")
    bob.answer(inv, 200, body=PLAIN_SDP)
    assert _finals(alice.received()) == [200]
    world.tick(0.6)
    assert _finals(alice.received()) == [200]


def test_ring_timeout_cancels_every_branch_and_answers_480() -> None:
    world = World(ring_timeout=5)
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    alice.call("202")
    [inv] = bob.requests("INVITE")
    bob.answer(inv, 180)
    world.tick(5.1)
    assert bob.requests("CANCEL")
    assert 480 in _finals(alice.received())
    [record] = world.records
    assert record.disposition is Disposition.MISSED and record.hangup_cause == "no-answer"


def test_all_branches_busy_answers_486_and_records_busy() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    desk = world.phone("bobdesk", "u-b", "202")
    soft = world.phone("bobsoft", "u-b", "202")
    alice.call("202")
    [inv_desk] = desk.requests("INVITE")
    [inv_soft] = soft.requests("INVITE")
    desk.answer(inv_desk, 486)
    assert 486 not in _finals(alice.received())  # the other branch still rings
    soft.answer(inv_soft, 480)
    assert 486 in _finals(alice.received())
    assert world.records[0].disposition is Disposition.BUSY


def test_unknown_extension_is_404_and_offline_user_is_480() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    alice.call("299")
    assert 404 in _finals(alice.received())
    world.b2bua.user_for_extension = lambda ext: "u-c" if ext == "203" else None
    alice.call("203")
    assert 480 in _finals(alice.received())


def test_caller_cancel_cancels_every_branch_and_answers_487() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    invite = alice.call("202")
    [inv] = bob.requests("INVITE")
    bob.answer(inv, 180)
    alice.received()
    cancel = Request(
        "CANCEL",
        invite.uri,
        Headers(
            [
                ("Via", invite.headers.get_list("via")[0]),
                ("From", invite.headers.get("from") or ""),
                ("To", invite.headers.get("to") or ""),
                ("Call-ID", invite.call_id),
                ("CSeq", f"{invite.cseq.seq} CANCEL"),
                ("Max-Forwards", "70"),
            ]
        ),
    )
    alice.send(cancel)
    assert sorted(_finals(alice.received())) == [200, 487]
    assert bob.requests("CANCEL")
    assert world.records[0].disposition is Disposition.CANCELLED


def test_a_second_answer_is_acked_and_hung_up() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    desk = world.phone("bobdesk", "u-b", "202")
    soft = world.phone("bobsoft", "u-b", "202")
    alice.call("202")
    [inv_desk] = desk.requests("INVITE")
    [inv_soft] = soft.requests("INVITE")
    desk.answer(inv_desk, 200, body=PLAIN_SDP)
    soft.answer(inv_soft, 200, body=PLAIN_SDP)  # crossed our CANCEL
    methods = [m.method for m in soft.requests()]
    assert "ACK" in methods and "BYE" in methods


def test_auto_answer_headers_from_outside_are_stripped_on_relay() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    alice.call(
        "202",
        extra=[
            ("Call-Info", "<sip:evil.example>;answer-after=0"),
            ("Alert-Info", "<http://x.example/ring>;info=alert-autoanswer"),
            ("Alert-Info", "<http://x.example/Bellcore-dr2>"),
            ("Answer-Mode", "Auto"),
            ("Subject", "hello"),
        ],
    )
    [inv] = bob.requests("INVITE")
    text = inv.to_bytes().decode()
    assert "answer-after" not in text and "autoanswer" not in text and "Answer-Mode" not in text
    assert "Bellcore-dr2" in text and "Subject: hello" in text


def test_strip_auto_answer_keeps_ordinary_headers() -> None:
    headers = Headers(
        [
            ("Call-Info", "<sip:a>;answer-after=0, <http://b/photo>;purpose=icon"),
            ("Alert-Info", "<sip:x>;info=Auto Answer"),
            ("Priv-Answer-Mode", "Auto"),
        ]
    )
    removed = strip_auto_answer(headers)
    assert len(removed) == 3
    assert headers.get_list("call-info") == ["<http://b/photo>;purpose=icon"]
    assert "alert-info" not in headers and "priv-answer-mode" not in headers


def _answered_call(world: World) -> tuple[Phone, Phone, Request, Request, Response]:
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    invite = alice.call("202")
    [inv] = bob.requests("INVITE")
    bob.answer(inv, 200, body=PLAIN_SDP)
    [ok] = [m for m in alice.received() if isinstance(m, Response) and m.status == 200]
    alice.send(ack_for(invite, ok))
    bob.requests("ACK")
    return alice, bob, invite, inv, ok


def test_bye_from_callee_is_relayed_to_the_caller_and_recorded() -> None:
    world = World()
    alice, bob, _invite, inv, _ok = _answered_call(world)
    bob.send(in_dialog(bob, "BYE", inv, 10, we_are_callee=True))
    assert 200 in _finals(bob.received())
    [bye] = alice.requests("BYE")
    assert bye.call_id == _invite.call_id
    [record] = world.records
    assert record.disposition is Disposition.ANSWERED and record.hangup_cause == "callee-hangup"
    assert world.b2bua.user_call_state("u-b") == "idle"


def test_hold_reinvite_is_relayed_and_its_answer_returned() -> None:
    world = World()
    alice, bob, _invite, _inv, ok = _answered_call(world)
    reinvite = in_dialog(alice, "INVITE", ok, 3, HOLD_SDP, we_are_callee=False)
    alice.send(reinvite)
    [relayed] = bob.requests("INVITE")
    assert relayed.body == HOLD_SDP and is_hold(relayed.body)
    assert relayed.to.tag == f"tt{bob.port}"
    bob.answer(relayed, 200, body=PLAIN_SDP.replace(b"sendrecv", b"recvonly"), tag=f"tt{bob.port}")
    assert "ACK" in [m.method for m in bob.requests()]
    assert 200 in _finals(alice.received())


def test_info_dtmf_is_relayed_inside_the_dialog() -> None:
    world = World()
    alice, bob, _invite, _inv, ok = _answered_call(world)
    info = in_dialog(alice, "INFO", ok, 4, we_are_callee=False)
    info.headers.add("Content-Type", "application/dtmf-relay")
    info.body = b"Signal=5\r\nDuration=160\r\n"
    alice.send(info)
    [relayed] = bob.requests("INFO")
    assert relayed.body == info.body and relayed.headers.get("content-type") == "application/dtmf-relay"
    bob.send(make_response(relayed, 200))
    assert 200 in _finals(alice.received())


def test_lower_cseq_inside_a_dialog_gets_500() -> None:
    world = World()
    alice, _bob, _invite, _inv, ok = _answered_call(world)
    alice.send(in_dialog(alice, "INFO", ok, 1, we_are_callee=False))  # the INVITE had CSeq 2
    assert 500 in _finals(alice.received())


def test_request_for_an_unknown_dialog_gets_481() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    fake = alice.invite("202")
    fake.headers.set("To", f"<sip:202@{DOMAIN}>;tag=nosuch")
    fake.method = "INFO"
    fake.headers.set("CSeq", "1 INFO")
    alice.send(fake)
    assert 481 in _finals(alice.received())


def test_webrtc_caller_to_plain_phone_without_media_fails_fast_with_a_reason() -> None:
    class NoRelay:
        reason = "rtpengine binary not found"

        def available(self) -> bool:
            return False

    world = World(media=NoRelay())
    alice = world.phone("alice", "u-a", "201")
    world.phone("bob", "u-b", "202")
    alice.call("202", body=WEBRTC_SDP)
    [final] = [m for m in alice.received() if isinstance(m, Response) and m.status >= 200]
    assert final.status == 488
    assert "rtpengine binary not found" in (final.headers.get("warning") or "")
    assert world.records[0].hangup_cause == "media-unavailable"


def test_outside_number_goes_to_the_trunk_and_its_challenge_is_answered() -> None:
    router = TrunkRouter(resolve=lambda host: host)
    world = World(trunks=router)
    provider = world.phone()
    router.set([TrunkConfig("t1", "P", "127.0.0.1", provider.port, username="tu", password="tp", caller_id="3900")])
    alice = world.phone("alice", "u-a", "201")
    alice.call("0721405516")
    [inv] = provider.requests("INVITE")
    assert inv.uri == f"sip:0721405516@127.0.0.1:{provider.port}"
    challenge = make_response(
        inv,
        407,
        to_tag="p1",
        headers=[("Proxy-Authenticate", 'Digest realm="prov", nonce="n1", algorithm=MD5, qop="auth"')],
    )
    provider.send(challenge)
    [retry] = provider.requests("INVITE")
    assert 'username="tu"' in (retry.headers.get("proxy-authorization") or "")
    assert retry.cseq.seq == inv.cseq.seq + 1 and retry.call_id == inv.call_id


def test_inbound_call_from_a_trunk_routes_by_did_without_a_challenge() -> None:
    router = TrunkRouter(resolve=lambda host: host)
    world = World(trunks=router)
    provider = world.phone()
    router.set([TrunkConfig("t1", "P", "127.0.0.1", provider.port, dids=("+390721405202=202",))])
    bob = world.phone("bob", "u-b", "202")
    provider.username = "caller"
    provider.send(provider.invite("00390721405202"))
    [inv] = bob.requests("INVITE")
    assert inv.to.uri_text == f"sip:202@{DOMAIN}"
    assert 407 not in _finals(provider.received())


# --- SDP, dialogs, numbers ---------------------------------------------------------------------------------
def test_sdp_profile_detection() -> None:
    assert profile_of(PLAIN_SDP) is MediaProfile.PLAIN
    assert profile_of(WEBRTC_SDP) is MediaProfile.WEBRTC
    assert is_webrtc(parse_sdp(WEBRTC_SDP.replace(b"UDP/TLS/RTP/SAVPF", b"RTP/AVPF")))  # ICE + DTLS is enough
    assert profile_of(None) is None


def test_sdp_round_trip_keeps_lines_and_reject_all_zeroes_ports() -> None:
    assert parse_sdp(PLAIN_SDP).to_bytes() == PLAIN_SDP
    rejected = parse_sdp(reject_all(WEBRTC_SDP))
    assert [m.port for m in rejected.media] == [0]


def test_hold_detection() -> None:
    assert is_hold(HOLD_SDP)
    assert not is_hold(PLAIN_SDP)
    assert is_hold(PLAIN_SDP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0"))


def test_dialog_requests_increment_cseq_and_follow_the_route_set() -> None:
    dialog = Dialog(
        "cid",
        "lt",
        "rt",
        "<sip:a@x>",
        "<sip:b@y>",
        "sip:b@10.0.0.1:5070",
        Source("udp", ("127.0.0.1", 1)),
        "<sip:callto@127.0.0.1>",
        route_set=["<sip:proxy.example;lr>"],
        local_seq=7,
    )
    bye = dialog.request("BYE")
    assert bye.cseq.seq == 8 and bye.uri == "sip:b@10.0.0.1:5070"
    assert bye.headers.get("route") == "<sip:proxy.example;lr>"
    assert bye.from_.tag == "lt" and bye.to.tag == "rt"
    ack = dialog.ack(8)
    assert ack.cseq.seq == 8 and ack.cseq.method == "ACK"


@pytest.mark.parametrize(
    ("a", "b", "same"), [("+390721", "00390721", True), ("390721", "+390721", True), ("0721", "0722", False)]
)
def test_did_number_forms_compare_equal(a: str, b: str, same: bool) -> None:
    assert same_number(a, b) is same


def test_finished_calls_leave_no_state_behind() -> None:
    world = World()
    alice, bob, _invite, inv, _ok = _answered_call(world)
    bob.send(in_dialog(bob, "BYE", inv, 10, we_are_callee=True))
    [bye] = alice.requests("BYE")
    alice.send(make_response(bye, 200))
    world.tick(41)
    world.deliver()
    book = world.b2bua.book
    b2bua = world.b2bua
    assert (book.calls, book.client, book.server, book.dialogs, book.relays, book.byes) == (
        {},
        {},
        {},
        {},
        {},
        set(),
    )
    assert b2bua.get_timer() is None


def test_inbound_did_without_extension_asks_route_did_with_the_configured_number() -> None:
    router = TrunkRouter(resolve=lambda host: host)
    world = World(trunks=router)
    provider = world.phone()
    router.set([TrunkConfig("t1", "P", "127.0.0.1", provider.port, dids=("+39 0721 405202",))])
    bob = world.phone("bob", "u-b", "202")
    asked: list[tuple[str, str]] = []

    def route_did(trunk_id: str, did: str) -> str | None:
        asked.append((trunk_id, did))
        return "u-b"

    world.b2bua.route_did = route_did
    provider.username = "caller"
    provider.send(provider.invite("00390721405202"))
    assert asked == [("t1", "+390721405202")]
    assert bob.requests("INVITE")


def test_a_did_for_a_user_without_an_extension_rings_with_the_devices_own_aor_in_to() -> None:
    router = TrunkRouter(resolve=lambda host: host)
    world = World(trunks=router)
    provider = world.phone()
    router.set([TrunkConfig("t1", "P", "127.0.0.1", provider.port, dids=("+390721405209",))])
    carol = world.phone("carol", "u-c", "")
    world.b2bua.route_did = lambda trunk_id, did: "u-c"
    provider.username = "caller"
    provider.send(provider.invite("00390721405209"))
    [inv] = carol.requests("INVITE")
    assert inv.to.uri_text == f"sip:carol@{DOMAIN}", "not sip:@domain, which the phone's 200 would carry back"


def test_provider_refusing_our_credentials_gives_the_device_503_not_a_challenge() -> None:
    router = TrunkRouter(resolve=lambda host: host)
    world = World(trunks=router)
    provider = world.phone()
    router.set([TrunkConfig("t1", "P", "127.0.0.1", provider.port, username="tu", password="wrong")])
    alice = world.phone("alice", "u-a", "201")
    alice.call("0721405516")
    challenge = [("WWW-Authenticate", 'Digest realm="prov", nonce="n1", algorithm=MD5')]
    [first] = provider.requests("INVITE")
    provider.send(make_response(first, 401, to_tag="p1", headers=challenge))
    [second] = provider.requests("INVITE")
    assert 'username="tu"' in (second.headers.get("authorization") or "")
    provider.send(make_response(second, 401, to_tag="p2", headers=challenge))
    assert provider.requests("INVITE") == []  # one retry only
    assert 503 in _finals(alice.received())
    assert world.records[0].disposition is Disposition.FAILED


def test_caller_connection_lost_hangs_up_the_other_side() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    alice.connect(77)
    bob = world.phone("bob", "u-b", "202")
    invite = alice.call("202")
    [inv] = bob.requests("INVITE")
    bob.answer(inv, 200, body=PLAIN_SDP)
    [ok] = [m for m in alice.received() if isinstance(m, Response) and m.status == 200]
    alice.send(ack_for(invite, ok))
    bob.requests("ACK")
    world.endpoint.connection_lost(77)
    world.b2bua.connection_lost(77, world.now)
    world.pump()
    assert bob.requests("BYE")
    [record] = world.records
    assert record.hangup_cause == "connection-lost" and record.disposition is Disposition.ANSWERED
