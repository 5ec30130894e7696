"""Answered calls are kept outside the process until they end, and a BYE built from what was kept ends
each leg inside its dialog (sans-IO: simulated phones, time passed in)."""

from __future__ import annotations

from calls_harness import PLAIN_SDP, World, ack_for, in_dialog

from callto.sip.message import Response
from callto.sip.ports import ActiveCall, InMemoryActiveCalls
from callto.sip.recovery import CSEQ_HEADROOM, bye_for


def _world() -> tuple[World, InMemoryActiveCalls]:
    world = World()
    kept = InMemoryActiveCalls()
    world.b2bua.active_calls = kept
    world.b2bua.node = "node-a"
    return world, kept


def test_an_answered_call_is_kept_with_both_dialogs_and_dropped_when_it_ends() -> None:
    world, kept = _world()
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    invite = alice.call("202")
    [inv] = bob.requests("INVITE")
    assert kept.calls == {}, "a ringing call is not kept"
    bob.answer(inv, 200, body=PLAIN_SDP)
    [ok] = [m for m in alice.received() if isinstance(m, Response) and m.status == 200]
    alice.send(ack_for(invite, ok))
    bob.requests("ACK")

    [active] = kept.load_node("node-a")
    assert kept.load_node("node-b") == []
    assert active.caller_user_id == "u-a" and active.callee_user_id == "u-b"
    assert {leg.call_id for leg in active.legs} == {invite.call_id, inv.call_id}
    assert {leg.port for leg in active.legs} == {alice.port, bob.port}

    bob.send(in_dialog(bob, "BYE", inv, 10, we_are_callee=True))
    alice.requests("BYE")
    assert kept.calls == {}


def test_the_kept_dialog_ends_each_leg_with_a_bye_the_phone_accepts() -> None:
    world, kept = _world()
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    invite = alice.call("202")
    [inv] = bob.requests("INVITE")
    bob.answer(inv, 200, body=PLAIN_SDP)
    [ok] = [m for m in alice.received() if isinstance(m, Response) and m.status == 200]
    alice.send(ack_for(invite, ok))
    [active] = kept.load_node("node-a")

    by_call = {leg.call_id: leg for leg in active.legs}
    bye, dest = bye_for(by_call[inv.call_id])
    assert dest.addr == ("127.0.0.1", bob.port)
    assert bye.method == "BYE" and bye.call_id == inv.call_id
    assert bye.from_.tag == inv.from_.tag  # our tag towards bob: the dialog bob knows
    assert bye.to.tag  # bob's tag from his 200
    assert bye.cseq.seq > inv.cseq.seq + CSEQ_HEADROOM - 1  # newer than anything sent since the answer

    bye_a, dest_a = bye_for(by_call[invite.call_id])
    assert dest_a.addr == ("127.0.0.1", alice.port)
    assert bye_a.to.tag == invite.from_.tag  # towards alice, her tag is the remote one


def test_a_node_is_dead_after_its_beat_stood_still_long_enough_and_only_once() -> None:
    from callto.sip.recovery import DeadNodes

    watch = DeadNodes(after=4.0)
    assert watch.observe({"a": 1, "b": 1}, 100.0) == []
    assert watch.observe({"a": 2, "b": 1}, 102.0) == []
    assert watch.observe({"a": 3, "b": 1}, 103.9) == []  # b stood still 3.9 s: not yet
    assert watch.observe({"a": 4, "b": 1}, 104.0) == [("b", 1)]
    assert watch.observe({"a": 5, "b": 1}, 105.0) == []  # said once; it starts over if it stays listed
    assert watch.observe({"a": 5}, 109.5) == [("a", 5)]  # a stopped at 105.0


def test_a_restarted_node_whose_counter_went_back_is_alive() -> None:
    from callto.sip.recovery import DeadNodes

    watch = DeadNodes(after=4.0)
    watch.observe({"a": 50}, 0.0)
    assert watch.observe({"a": 1}, 3.0) == []  # restarted: the counter moved (down), so it lives
    assert watch.observe({"a": 2}, 6.0) == []


def test_the_answer_is_handed_over_once_with_what_the_record_needs_and_an_unanswered_call_never() -> None:
    world = World()
    answered: list[ActiveCall] = []
    world.b2bua.on_call_answered = answered.append  # no store: the history hears of the answer all the same
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    invite = alice.call("202")
    [inv] = bob.requests("INVITE")
    bob.answer(inv, 180)
    assert answered == [], "ringing is not an answer"
    bob.answer(inv, 200, body=PLAIN_SDP)
    [ok] = [m for m in alice.received() if isinstance(m, Response) and m.status == 200]
    alice.send(ack_for(invite, ok))
    [call] = answered
    assert (call.caller_user_id, call.callee_user_id, call.from_number, call.to_number) == ("u-a", "u-b", "201", "202")
    assert call.answered_at >= call.started_at and call.answered_device_id is not None
    bob.send(in_dialog(bob, "BYE", inv, 10, we_are_callee=True))
    alice.requests("BYE")
    [record] = world.records
    assert record.call_id == call.call_id and record.answered_at == call.answered_at
    assert len(answered) == 1

    carol = world.phone("carol", "u-c", "203")
    alice.call("203")
    [inv] = carol.requests("INVITE")
    carol.answer(inv, 486)
    assert len(world.records) == 2 and len(answered) == 1, "a busy call is recorded at its end only"
