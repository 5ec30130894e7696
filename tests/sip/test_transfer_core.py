"""Blind transfer (REFER) in the B2BUA without sockets: simulated phones, a real endpoint, time by hand."""

from __future__ import annotations

from calls_harness import DOMAIN, PLAIN_SDP, WEBRTC_SDP, World, ack_for, in_dialog

from callto.sip.auth import DigestClient
from callto.sip.b2bua import Disposition
from callto.sip.media_effects import MediaAnswerNeeded, MediaEffect, MediaOfferNeeded
from callto.sip.message import Request, Response
from callto.sip.transfer import with_transfer
from callto.sip.trunk import TrunkConfig, TrunkRouter

CAROL_SDP = PLAIN_SDP.replace(b"o=- 1 1", b"o=- 7 7").replace(b"40000", b"40400")
ALICE_ANSWER = PLAIN_SDP.replace(b"40000", b"40200")


def _world(**kwargs: object) -> World:
    # what SipSwitch does: REFER and NOTIFY reach the B2BUA instead of the endpoint's 405
    return World(endpoint_config=with_transfer, **kwargs)  # type: ignore[arg-type]


def _responses(messages: list[Request | Response], method: str | None = None) -> list[Response]:
    return [m for m in messages if isinstance(m, Response) and (method is None or m.cseq.method == method)]


def _sipfrags(messages: list[Request | Response]) -> list[tuple[str, str]]:
    """(sipfrag status line, Subscription-State) of every NOTIFY in ``messages``."""
    out = []
    for m in messages:
        if isinstance(m, Request) and m.method == "NOTIFY":
            assert (m.headers.get("event") or "").startswith("refer")
            assert m.headers.get("content-type") == "message/sipfrag;version=2.0"
            out.append((m.body.decode().strip(), m.headers.get("subscription-state") or ""))
    return out


class Bridged:
    """alice (201) called bob (202), bob answered, alice ACKed; carol (203) is free."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.alice = world.phone("alice", "u-a", "201")
        self.bob = world.phone("bob", "u-b", "202")
        self.carol = world.phone("carol", "u-c", "203")
        self.alice_invite = self.alice.call("202")
        [self.bob_invite] = self.bob.requests("INVITE")
        self.bob.answer(self.bob_invite, 200, body=PLAIN_SDP)
        [self.alice_ok] = [m for m in _responses(self.alice.received()) if m.status == 200]
        self.alice.send(ack_for(self.alice_invite, self.alice_ok))
        assert self.bob.requests("ACK")
        self.bob_seq = 1

    def refer_from_bob(
        self, refer_to: str | None = "<sip:203@pbx.callto.test>", *, auth: bool = True, extra: str | None = None
    ) -> list[Request | Response]:
        """bob REFERs (answering the 407 when ``auth``); what bob received after the last REFER."""
        bob = self.bob
        request = self._refer(refer_to, extra)
        bob.send(request)
        received = bob.received()
        challenge = [m for m in _responses(received, "REFER") if m.status == 407]
        if not (auth and challenge):
            return received
        value = DigestClient("bob", "pw-bob").authorization(
            challenge[0].headers.get_all("proxy-authenticate"), "REFER", request.uri
        )
        request = self._refer(refer_to, extra)
        request.headers.add("Proxy-Authorization", value or "")
        bob.send(request)
        return bob.received()

    def _refer(self, refer_to: str | None, extra: str | None) -> Request:
        self.bob_seq += 1
        request = in_dialog(self.bob, "REFER", self.bob_invite, self.bob_seq, we_are_callee=True)
        if refer_to is not None:
            request.headers.add("Refer-To", refer_to)
        if extra:
            name, value = extra.split(":", 1)
            request.headers.add(name, value.strip())
        return request

    def answer_notifies(self, messages: list[Request | Response]) -> None:
        for m in messages:
            if isinstance(m, Request) and m.method == "NOTIFY":
                self.bob.answer(m, 200)


def _carol_rings(call: Bridged) -> Request:
    [invite] = call.carol.requests("INVITE")
    assert invite.body == b""  # delayed offer: the target's 2xx makes the offer
    call.carol.answer(invite, 180)
    return invite


# ---------------------------------------------------------------------------------------------------------
def test_blind_transfer_notifies_moves_the_transferee_to_the_target_and_hangs_up_the_transferor() -> None:
    world = _world()
    call = Bridged(world)
    original_id = next(iter(world.b2bua.calls))
    received = call.refer_from_bob()
    assert [r.status for r in _responses(received, "REFER")] == [202]
    assert _sipfrags(received) == [("SIP/2.0 100 Trying", "active;expires=60")]
    notify = next(m for m in received if isinstance(m, Request) and m.method == "NOTIFY")
    assert notify.headers.get("event") == f"refer;id={call.bob_seq}"
    call.answer_notifies(received)

    invite = _carol_rings(call)
    assert "201" in (invite.headers.get("from") or "")  # the target sees the transferee calling
    ringing = call.bob.received()
    assert _sipfrags(ringing) == [("SIP/2.0 180 Ringing", "active;expires=60")]
    call.answer_notifies(ringing)
    assert call.alice.requests("INVITE") == []  # still talking to bob while carol rings

    call.carol.answer(invite, 200, body=CAROL_SDP)
    [reinvite] = call.alice.requests("INVITE")
    assert reinvite.body == CAROL_SDP and reinvite.call_id == call.alice_invite.call_id
    assert call.carol.requests("ACK") == []  # carol's ACK carries alice's answer: it waits for it
    call.alice.answer(reinvite, 200, body=ALICE_ANSWER)
    assert [a.cseq.seq for a in call.alice.requests("ACK")] == [reinvite.cseq.seq]
    [ack] = call.carol.requests("ACK")
    assert ack.body == ALICE_ANSWER

    end = call.bob.received()
    assert _sipfrags(end) == [("SIP/2.0 200 OK", "terminated;reason=noresource")]
    assert [m.method for m in end if isinstance(m, Request)] == ["NOTIFY", "BYE"]
    [original] = world.records
    assert original.call_id == original_id
    assert original.hangup_cause == "transferred" and original.disposition is Disposition.ANSWERED
    assert world.b2bua.user_call_state("u-b") == "idle"
    assert world.b2bua.user_call_state("u-a") == "busy" and world.b2bua.user_call_state("u-c") == "busy"
    kinds = [(kind, data["call_id"] == original_id) for kind, data in world.events]
    assert ("transferred", True) in kinds and ("answered", False) in kinds

    # the new call is an ordinary one: carol hangs up, alice gets the BYE, the record says who talked
    [new_call] = world.b2bua.calls.values()
    carol_bye = in_dialog(call.carol, "BYE", invite, 2, we_are_callee=True)
    call.carol.send(carol_bye)
    assert [m.method for m in call.alice.requests()] == ["BYE"]
    [_, record] = world.records
    assert record.call_id == new_call.id
    assert (record.caller_user_id, record.callee_user_id) == ("u-a", "u-c")
    assert (record.from_number, record.to_number) == ("201", "203")
    assert record.disposition is Disposition.ANSWERED and record.hangup_cause == "callee-hangup"
    assert record.answered_device_id == "dev-carol"


def test_refer_from_the_caller_transfers_the_callee() -> None:
    world = _world()
    call = Bridged(world)
    alice = call.alice
    request = in_dialog(alice, "REFER", call.alice_ok, 3, we_are_callee=False)
    request.headers.add("Refer-To", "sip:203@pbx.callto.test")
    alice.send(request)
    [challenge] = [r for r in _responses(alice.received(), "REFER")]
    assert challenge.status == 407
    value = DigestClient("alice", "pw-alice").authorization(
        challenge.headers.get_all("proxy-authenticate"), "REFER", request.uri
    )
    request = in_dialog(alice, "REFER", call.alice_ok, 4, we_are_callee=False)
    request.headers.add("Refer-To", "sip:203@pbx.callto.test")
    request.headers.add("Proxy-Authorization", value or "")
    alice.send(request)
    assert [r.status for r in _responses(alice.received(), "REFER")] == [202]
    invite = _carol_rings(call)
    assert "202" in (invite.headers.get("from") or "")  # bob is the one put through
    call.carol.answer(invite, 200, body=CAROL_SDP)
    [reinvite] = call.bob.requests("INVITE")
    call.bob.answer(reinvite, 200, body=ALICE_ANSWER)
    assert "BYE" in [m.method for m in alice.received() if isinstance(m, Request)]
    assert world.records[0].hangup_cause == "transferred"
    assert world.b2bua.user_call_state("u-b") == "busy" and world.b2bua.user_call_state("u-a") == "idle"


def test_refer_without_or_with_a_malformed_refer_to_is_400() -> None:
    call = Bridged(_world())
    missing = call.refer_from_bob(None)
    assert [r.status for r in _responses(missing, "REFER")] == [400]
    garbage = call.refer_from_bob("<not a uri")
    assert [r.status for r in _responses(garbage, "REFER")] == [400]
    two = call.refer_from_bob("<sip:203@pbx.callto.test>, <sip:204@pbx.callto.test>")
    assert [r.status for r in _responses(two, "REFER")] == [400]
    elsewhere = call.refer_from_bob("<sip:203@elsewhere.example>")
    assert [r.status for r in _responses(elsewhere, "REFER")] == [403]
    assert call.carol.requests("INVITE") == []
    assert len(call.world.b2bua.calls) == 1  # the call itself goes on


def test_refer_with_replaces_is_501_not_implemented() -> None:
    call = Bridged(_world())
    received = call.refer_from_bob("<sip:203@pbx.callto.test?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>")
    [answer] = _responses(received, "REFER")
    assert answer.status == 501 and "Replaces" in answer.reason


def test_refer_outside_a_dialog_is_403_and_in_an_unknown_dialog_is_481() -> None:
    world = _world()
    call = Bridged(world)
    stray = in_dialog(call.bob, "REFER", call.bob_invite, 9, we_are_callee=True)
    stray.headers.set("Call-ID", "no-such-call")
    stray.headers.add("Refer-To", "<sip:203@pbx.callto.test>")
    call.bob.send(stray)
    assert [r.status for r in _responses(call.bob.received(), "REFER")] == [481]
    outside = call.bob.invite("203", body=b"")
    outside = Request("REFER", outside.uri, outside.headers.copy())
    outside.headers.set("CSeq", "1 REFER")
    outside.headers.add("Refer-To", "<sip:203@pbx.callto.test>")
    call.bob.send(outside)
    assert [r.status for r in _responses(call.bob.received(), "REFER")] == [403]
    assert call.carol.requests("INVITE") == []


def test_refer_with_another_devices_credentials_is_403() -> None:
    world = _world()
    call = Bridged(world)
    request = call._refer("<sip:203@pbx.callto.test>", None)
    call.bob.send(request)
    [challenge] = _responses(call.bob.received(), "REFER")
    value = DigestClient("carol", "pw-carol").authorization(
        challenge.headers.get_all("proxy-authenticate"), "REFER", request.uri
    )
    request = call._refer("<sip:203@pbx.callto.test>", None)
    request.headers.add("Proxy-Authorization", value or "")
    call.bob.send(request)
    assert [r.status for r in _responses(call.bob.received(), "REFER")] == [403]
    assert call.carol.requests("INVITE") == []


def test_busy_target_notifies_486_and_the_transferee_stays_with_the_transferor() -> None:
    world = _world()
    call = Bridged(world)
    call.answer_notifies(call.refer_from_bob())
    [invite] = call.carol.requests("INVITE")
    call.carol.answer(invite, 486)
    received = call.bob.received()
    assert _sipfrags(received) == [("SIP/2.0 486 Busy Here", "terminated;reason=noresource")]
    assert "BYE" not in [m.method for m in received if isinstance(m, Request)]
    assert call.alice.requests() == []  # no re-INVITE, no BYE: alice still talks to bob
    assert world.b2bua.user_call_state("u-a") == "busy" and world.b2bua.user_call_state("u-b") == "busy"
    [failed] = world.records
    assert failed.disposition is Disposition.BUSY and failed.callee_user_id == "u-c"
    # and the original call still works: a second transfer may follow, a BYE ends it normally
    bye = in_dialog(call.bob, "BYE", call.bob_invite, call.bob_seq + 1, we_are_callee=True)
    call.bob.send(bye)
    assert [m.method for m in call.alice.requests()] == ["BYE"]
    assert world.records[1].hangup_cause == "callee-hangup"


def test_target_failing_after_the_transferor_left_hangs_up_the_transferee() -> None:
    world = _world(ring_timeout=5)
    call = Bridged(world)
    call.answer_notifies(call.refer_from_bob())
    _carol_rings(call)
    # the transferor hangs up at once (many phones do after the 202): alice waits for carol
    call.bob.send(in_dialog(call.bob, "BYE", call.bob_invite, call.bob_seq + 1, we_are_callee=True))
    assert call.alice.requests() == []
    assert world.records == []
    world.tick(5.1)  # carol does not answer
    assert call.carol.requests("CANCEL")
    assert [m.method for m in call.alice.requests()] == ["BYE"]
    causes = sorted(r.hangup_cause for r in world.records)
    assert causes == ["no-answer", "transfer-failed"]


def test_transferor_leaving_while_the_target_rings_still_completes_the_transfer() -> None:
    world = _world()
    call = Bridged(world)
    call.answer_notifies(call.refer_from_bob())
    invite = _carol_rings(call)
    call.bob.send(in_dialog(call.bob, "BYE", call.bob_invite, call.bob_seq + 1, we_are_callee=True))
    call.carol.answer(invite, 200, body=CAROL_SDP)
    [reinvite] = call.alice.requests("INVITE")
    call.alice.answer(reinvite, 200, body=ALICE_ANSWER)
    assert call.carol.requests("ACK")
    assert [r.hangup_cause for r in world.records] == ["transferred"]
    assert world.b2bua.user_call_state("u-a") == "busy"


def test_transferee_hanging_up_cancels_the_call_to_the_target() -> None:
    world = _world()
    call = Bridged(world)
    call.answer_notifies(call.refer_from_bob())
    _carol_rings(call)
    call.bob.received()
    call.alice.send(in_dialog(call.alice, "BYE", call.alice_ok, 5, we_are_callee=False))
    assert call.carol.requests("CANCEL")
    received = call.bob.received()
    assert _sipfrags(received)[-1] == ("SIP/2.0 487 Request Terminated", "terminated;reason=noresource")
    assert "BYE" in [m.method for m in received if isinstance(m, Request)]
    assert world.b2bua.calls == {}


def test_transferee_refusing_the_target_offer_keeps_the_original_call() -> None:
    world = _world()
    call = Bridged(world)
    call.answer_notifies(call.refer_from_bob())
    invite = _carol_rings(call)
    call.carol.answer(invite, 200, body=CAROL_SDP)
    [reinvite] = call.alice.requests("INVITE")
    call.alice.answer(reinvite, 488)
    carol = call.carol.requests()
    assert [m.method for m in carol] == ["ACK", "BYE"]
    assert b"m=audio 0" in carol[0].body  # her offer is refused in the ACK before the BYE
    assert _sipfrags(call.bob.received())[-1][0] == "SIP/2.0 488 Not Acceptable Here"
    assert world.b2bua.user_call_state("u-b") == "busy"


def test_second_refer_while_one_runs_is_491() -> None:
    call = Bridged(_world())
    call.answer_notifies(call.refer_from_bob())
    again = call.refer_from_bob("<sip:204@pbx.callto.test>", auth=False)
    assert [r.status for r in _responses(again, "REFER")] == [491]


def test_unknown_target_notifies_404_and_a_forbidden_number_notifies_403() -> None:
    router = TrunkRouter(resolve=lambda host: host)
    world = _world(trunks=router)
    provider = world.phone()
    router.set([TrunkConfig("t1", "P", "127.0.0.1", provider.port, caller_id="3900")])
    asked: list[tuple[str, str]] = []

    def may_call(account, dialed):  # type: ignore[no-untyped-def]
        asked.append((account.username, dialed))
        return False

    world.b2bua.may_call = may_call
    call = Bridged(world)
    received = call.refer_from_bob("<sip:nobody@pbx.callto.test>")  # neither an extension nor a number
    assert _sipfrags(received)[-1] == ("SIP/2.0 404 Not Found", "terminated;reason=noresource")
    received = call.refer_from_bob("<tel:+390721405516>")
    assert [r.status for r in _responses(received, "REFER")] == [202]
    assert _sipfrags(received)[-1] == ("SIP/2.0 403 Forbidden", "terminated;reason=noresource")
    assert asked == [("bob", "+390721405516")]  # the transferor's outbound class decides
    assert provider.requests("INVITE") == []
    assert call.alice.requests() == []
    assert world.b2bua.user_call_state("u-a") == "busy"


def test_permitted_number_goes_to_the_trunk_with_the_transferee_calling() -> None:
    router = TrunkRouter(resolve=lambda host: host)
    world = _world(trunks=router)
    provider = world.phone()
    router.set([TrunkConfig("t1", "P", "127.0.0.1", provider.port, caller_id="3900")])
    world.b2bua.may_call = lambda account, dialed: True
    call = Bridged(world)
    call.refer_from_bob(f"<sip:0721405516@{DOMAIN}>")
    [invite] = provider.requests("INVITE")
    assert invite.uri.startswith("sip:0721405516@127.0.0.1") and invite.body == b""
    provider.answer(invite, 200, body=CAROL_SDP)
    [reinvite] = call.alice.requests("INVITE")
    call.alice.answer(reinvite, 200, body=ALICE_ANSWER)
    assert provider.requests("ACK")
    [new_call] = world.b2bua.calls.values()
    assert new_call.kind == "outbound" and new_call.trunk_id == "t1"


class FakeRelay:
    """rtpengine's role for the sans-IO tests: marks what it rewrote, answering each effect at once."""

    reason = ""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def available(self) -> bool:
        return True

    def answer_effect(self, effect: MediaEffect) -> str | None:
        """What rtpengine would answer, at once (the world feeds it back with its time)."""
        if isinstance(effect, MediaOfferNeeded):
            self.calls.append(("offer", effect.call_id, effect.from_tag))
            return effect.sdp.replace("o=-", "o=relayed-offer")
        if isinstance(effect, MediaAnswerNeeded):
            self.calls.append(("answer", effect.call_id, effect.to_tag))
            return effect.sdp.replace("o=-", "o=relayed-answer")
        self.calls.append(("delete", effect.call_id, effect.from_tag))
        return None


def test_webrtc_transferee_reaches_a_plain_target_through_the_media_relay() -> None:
    relay = FakeRelay()
    world = _world(media=relay)
    world.media_answers = relay.answer_effect
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    carol = world.phone("carol", "u-c", "203")
    alice_invite = alice.call("202", body=WEBRTC_SDP)
    [bob_invite] = bob.requests("INVITE")
    assert b"relayed-offer" in bob_invite.body
    bob.answer(bob_invite, 200, body=PLAIN_SDP)
    [ok] = [m for m in _responses(alice.received()) if m.status == 200]
    alice.send(ack_for(alice_invite, ok))
    call = Bridged.__new__(Bridged)
    call.world, call.alice, call.bob, call.carol = world, alice, bob, carol
    call.alice_invite, call.bob_invite, call.alice_ok, call.bob_seq = alice_invite, bob_invite, ok, 1
    bob.received()
    call.answer_notifies(call.refer_from_bob())
    invite = _carol_rings(call)
    carol.answer(invite, 200, body=CAROL_SDP)
    [reinvite] = alice.requests("INVITE")
    assert b"relayed-offer" in reinvite.body  # carol's plain offer, rewritten for the browser
    alice.answer(reinvite, 200, body=WEBRTC_SDP)
    [ack] = carol.requests("ACK")
    assert b"relayed-answer" in ack.body
    [new_call] = world.b2bua.calls.values()
    assert ("offer", new_call.id, new_call.winner.media_tag) in relay.calls  # type: ignore[union-attr]
    original = world.records[0]
    assert original.hangup_cause == "transferred"
    assert ("delete", original.call_id, world.b2bua.calls[new_call.id].a.media_tag) in relay.calls  # type: ignore[union-attr]
