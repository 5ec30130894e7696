"""Moving a live call to another of the user's devices, in the B2BUA without sockets: simulated phones, a
real endpoint, time passed by hand (the controller in callto.sip.move)."""

from __future__ import annotations

from typing import Any

import pytest
from calls_harness import PLAIN_SDP, WEBRTC_SDP, World, ack_for, in_dialog

from callto.sip.b2bua import Disposition
from callto.sip.media_effects import MediaAnswerNeeded, MediaEffect, MediaOfferNeeded
from callto.sip.message import Request, Response
from callto.sip.move import MoveRefused, start_move

DESK2_SDP = PLAIN_SDP.replace(b"o=- 1 1", b"o=- 7 7").replace(b"40000", b"40400")
ALICE_ANSWER = PLAIN_SDP.replace(b"40000", b"40200")
AUTO = ("Call-Info", "<sip:pbx.callto.test>;answer-after=0")


class Talking:
    """alice (201) called bob (202); bob answered on his desk phone; bob's second device ``bob2`` is free."""

    def __init__(self, world: World, *, alice_sdp: bytes = PLAIN_SDP) -> None:
        self.world = world
        self.alice = world.phone("alice", "u-a", "201")
        self.bob = world.phone("bob", "u-b", "202")
        self.bob2 = world.phone("bob2", "u-b", "202")
        self.carol = world.phone("carol", "u-c", "203")
        self.alice_invite = self.alice.call("202", body=alice_sdp)
        [self.bob_invite] = self.bob.requests("INVITE")
        [ringing_twin] = self.bob2.requests("INVITE")
        self.bob.answer(self.bob_invite, 200, body=PLAIN_SDP)
        self.bob2.answer(ringing_twin, 487)
        self.bob2.received()
        [ok] = [m for m in self.alice.received() if isinstance(m, Response) and m.status == 200]
        self.alice_ok = ok
        self.alice.send(ack_for(self.alice_invite, ok))
        assert self.bob.requests("ACK")
        self.results: list[tuple[bool, str]] = []
        [self.call_id] = list(world.b2bua.calls)

    def move_to_bob2(self, **kwargs: Any) -> Request:
        start_move(self.world.b2bua, "u-b", "dev-bob2", self.world.now,
                   lambda ok, why: self.results.append((ok, why)), auto_answer=AUTO, **kwargs)
        [invite] = self.bob2.requests("INVITE")
        return invite


def _kinds(world: World) -> list[str]:
    return [kind for kind, _ in world.events]


def test_answered_call_moves_to_the_users_other_device_and_the_old_one_is_hung_up() -> None:
    world = World()
    talk = Talking(world)
    invite = talk.move_to_bob2()
    assert invite.body == b""  # delayed offer: the target's 2xx offers
    assert invite.headers.get("call-info") == AUTO[1]  # the vendor's auto-answer header
    assert "201" in (invite.headers.get("from") or "")  # the target shows the other party
    talk.bob2.answer(invite, 180)
    assert talk.alice.requests() == [] and talk.bob.requests() == []  # still talking on the desk phone
    talk.bob2.answer(invite, 200, body=DESK2_SDP)
    [reinvite] = talk.alice.requests("INVITE")
    assert reinvite.body == DESK2_SDP and reinvite.call_id == talk.alice_invite.call_id
    assert talk.bob.requests() == []  # the old device keeps the call until alice took the new offer
    talk.alice.answer(reinvite, 200, body=ALICE_ANSWER)
    assert [a.cseq.seq for a in talk.alice.requests("ACK")] == [reinvite.cseq.seq]
    [ack] = talk.bob2.requests("ACK")
    assert ack.body == ALICE_ANSWER
    assert [m.method for m in talk.bob.requests()] == ["BYE"]
    assert talk.results == [(True, "moved")]
    assert world.records == [] and list(world.b2bua.calls) == [talk.call_id]  # one call, still the same
    moved = next(data for kind, data in world.events if kind == "moved")
    assert moved["call_id"] == talk.call_id
    assert (moved["device_id"], moved["from_device_id"]) == ("dev-bob2", "dev-bob")
    assert world.b2bua.user_call_state("u-b") == "busy"

    # alice hangs up: bob2 gets the BYE, and history has one record, answered on bob2
    bye = _bye_from_alice(talk)
    talk.alice.send(bye)
    assert [m.method for m in talk.bob2.requests()] == ["BYE"]
    [record] = world.records
    assert record.call_id == talk.call_id and record.disposition is Disposition.ANSWERED
    assert record.answered_device_id == "dev-bob2"
    assert "dev-bob" in record.devices_rung and "dev-bob2" in record.devices_rung


def _bye_from_alice(talk: Talking) -> Request:
    return in_dialog(talk.alice, "BYE", talk.alice_ok, 10, we_are_callee=False)


def test_a_moved_call_can_move_back_and_a_party_moved_twice_keeps_one_record() -> None:
    world = World()
    talk = Talking(world)
    invite = talk.move_to_bob2()
    talk.bob2.answer(invite, 200, body=DESK2_SDP)
    [reinvite] = talk.alice.requests("INVITE")
    talk.alice.answer(reinvite, 200, body=ALICE_ANSWER)
    talk.bob.received()
    back: list[tuple[bool, str]] = []
    start_move(world.b2bua, "u-b", "dev-bob", world.now, lambda ok, why: back.append((ok, why)))
    [invite_back] = talk.bob.requests("INVITE")
    talk.bob.answer(invite_back, 200, body=PLAIN_SDP, tag="tt-back")
    [reinvite2] = talk.alice.requests("INVITE")
    assert reinvite2.body == PLAIN_SDP
    talk.alice.answer(reinvite2, 200, body=ALICE_ANSWER)
    assert back == [(True, "moved")]
    assert [m.method for m in talk.bob2.requests() if isinstance(m, Request)] == ["ACK", "BYE"]
    assert world.records == []
    world.b2bua.hangup(talk.call_id, world.now)
    [record] = world.records
    assert record.answered_device_id == "dev-bob"


@pytest.mark.parametrize(("status", "reason"), [(486, "busy"), (603, "declined"), (480, "no-answer")])
def test_a_target_that_refuses_leaves_the_call_where_it_was(status: int, reason: str) -> None:
    world = World()
    talk = Talking(world)
    invite = talk.move_to_bob2()
    talk.bob2.answer(invite, status)
    assert talk.results == [(False, reason)]
    assert talk.alice.requests() == [] and talk.bob.requests() == []  # nobody noticed
    failed = next(data for kind, data in world.events if kind == "move_failed")
    assert failed["reason"] == reason and failed["call_id"] == talk.call_id
    assert world.records == [] and list(world.b2bua.calls) == [talk.call_id]
    assert world.b2bua.calls[talk.call_id].controller is None  # another move may start
    talk.move_to_bob2()


def test_a_target_that_does_not_answer_in_time_is_cancelled_and_the_call_stays() -> None:
    world = World()
    talk = Talking(world)
    invite = talk.move_to_bob2(ring_timeout=5.0)
    talk.bob2.answer(invite, 180)
    world.tick(6.0)
    assert [c for c in talk.bob2.requests("CANCEL") if c.call_id == invite.call_id]
    assert talk.results == [(False, "no-answer")]
    assert talk.alice.requests() == [] and talk.bob.requests() == []
    assert world.b2bua.user_call_state("u-b") == "busy" and world.records == []


def test_the_caller_hanging_up_while_the_target_rings_cancels_the_target() -> None:
    world = World()
    talk = Talking(world)
    invite = talk.move_to_bob2()
    world.b2bua.hangup(talk.call_id, world.now)
    assert [c for c in talk.bob2.requests("CANCEL") if c.call_id == invite.call_id]
    assert talk.results == [(False, "call-ended")]
    [record] = world.records
    assert record.answered_device_id == "dev-bob"


def test_only_the_users_own_call_and_devices_can_take_part() -> None:
    world = World()
    talk = Talking(world)
    b2bua = world.b2bua
    with pytest.raises(MoveRefused) as refused:
        start_move(b2bua, "u-c", "dev-carol", world.now, lambda ok, why: None)  # carol has no call
    assert refused.value.reason == "no-call"
    with pytest.raises(MoveRefused) as refused:
        start_move(b2bua, "u-b", "dev-carol", world.now, lambda ok, why: None)  # carol's phone is not bob's
    assert refused.value.reason == "not-your-device"
    with pytest.raises(MoveRefused) as refused:
        start_move(b2bua, "u-b", "dev-bob", world.now, lambda ok, why: None)
    assert refused.value.reason == "same-device"
    with pytest.raises(MoveRefused) as refused:
        start_move(b2bua, "u-b", "dev-nowhere", world.now, lambda ok, why: None)
    assert refused.value.reason == "not-registered"
    with pytest.raises(MoveRefused) as refused:
        start_move(b2bua, "u-c", "dev-bob2", world.now, lambda ok, why: None, call_id=talk.call_id)
    assert refused.value.reason == "no-call"  # someone else's call is as good as none
    talk.move_to_bob2()
    with pytest.raises(MoveRefused) as refused:
        start_move(b2bua, "u-b", "dev-bob2", world.now, lambda ok, why: None)
    assert refused.value.reason == "move-running"
    assert talk.carol.requests() == []


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


def test_a_browser_caller_reaches_the_new_plain_device_through_the_media_relay() -> None:
    relay = FakeRelay()
    world = World(media=relay)
    world.media_answers = relay.answer_effect
    talk = Talking(world, alice_sdp=WEBRTC_SDP)
    call = world.b2bua.calls[talk.call_id]
    assert call.media_active and call.a is not None
    old_tag = call.a.media_tag
    invite = talk.move_to_bob2()
    talk.bob2.answer(invite, 200, body=DESK2_SDP)
    [reinvite] = talk.alice.requests("INVITE")
    assert b"relayed-offer" in reinvite.body  # bob2's plain offer, rewritten for the browser
    target = world.b2bua.calls[next(c for c in world.b2bua.calls if c != talk.call_id)].winner
    assert target is not None
    # the old session goes, the new one is the call's own (its later re-INVITEs find it)
    assert relay.calls[-2:] == [("delete", talk.call_id, old_tag), ("offer", talk.call_id, target.media_tag)]
    talk.alice.answer(reinvite, 200, body=WEBRTC_SDP)
    [ack] = talk.bob2.requests("ACK")
    assert b"relayed-answer" in ack.body
    assert talk.results == [(True, "moved")]
    assert call.winner is target and call.media_active



def test_a_media_relay_that_fails_the_new_offer_leaves_the_call_where_it_was() -> None:
    relay = FakeRelay()
    world = World(media=relay)
    world.media_answers = relay.answer_effect
    talk = Talking(world, alice_sdp=WEBRTC_SDP)
    world.media_answers = lambda effect: None  # from now on the relay fails every request
    invite = talk.move_to_bob2()
    talk.bob2.answer(invite, 200, body=DESK2_SDP)
    assert talk.results == [(False, "media-failed")]
    assert talk.alice.requests() == [] and talk.bob.requests() == []  # nobody noticed
    assert [m.method for m in talk.bob2.requests()] == ["ACK", "BYE"]  # its offer refused, then hung up
    assert world.records == [] and list(world.b2bua.calls) == [talk.call_id]
