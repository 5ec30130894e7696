"""The B2BUA's deadlines (ring timeout, 2xx retransmission, ACK wait) with many calls at once: each fires
for its own call only, answered calls leave no timer behind, and the next wake-up is always the earliest
deadline still pending (the B2BUA keeps them on a heap instead of looking at every call)."""

from __future__ import annotations

from calls_harness import PLAIN_SDP, World, ack_for

from callto.sip.b2bua import Disposition
from callto.sip.message import Request, Response


def _ok(messages: list[Request | Response]) -> list[Response]:
    return [m for m in messages if isinstance(m, Response) and m.status == 200 and m.cseq.method == "INVITE"]


def test_ring_timeouts_fire_for_every_unanswered_call_among_many_answered_ones() -> None:
    world = World(ring_timeout=10)
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    invites = [alice.call("202") for _ in range(40)]
    legs = bob.requests("INVITE")
    assert len(legs) == 40 and len(world.b2bua.calls) == 40
    assert world.b2bua.get_timer() == world.now + 10
    for i, leg in enumerate(legs):
        bob.answer(leg, 180)
        if i % 2 == 0:
            bob.answer(leg, 200, body=PLAIN_SDP)
    oks = _ok(alice.received())
    assert len(oks) == 20
    # each answered call retransmits its 2xx until the caller's ACK: the soonest deadline is that one
    assert world.b2bua.get_timer() == world.now + 0.5
    by_call = {invite.call_id: invite for invite in invites}
    for ok in oks:
        alice.send(ack_for(by_call[ok.call_id], ok))
    assert world.b2bua.get_timer() == world.now + 10, "acknowledged calls leave only the ringing ones' timers"
    world.tick(5)
    assert world.records == []
    world.tick(5.1)
    assert len(world.records) == 20
    assert {r.disposition for r in world.records} == {Disposition.MISSED}
    assert {r.hangup_cause for r in world.records} == {"no-answer"}
    assert len(world.b2bua.calls) == 20 and all(c.answered_at is not None for c in world.b2bua.calls.values())
    later = world.b2bua.get_timer()
    assert later is not None and later >= world.now + 29, "only the forgetting of ended calls is left"


def test_a_caller_that_never_acknowledges_is_hung_up_after_the_ack_wait_and_its_2xx_backs_off() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    alice.call("202")
    [leg] = bob.requests("INVITE")
    bob.answer(leg, 200, body=PLAIN_SDP)
    assert len(_ok(alice.received())) == 1
    sent = 0
    for _ in range(70):  # 35 s in half seconds: past the 32 s ACK wait
        world.tick(0.5)
        sent += len(_ok(alice.received()))
    # retransmissions at 0.5, 1, 2, 4, 4, 4 ... s (RFC 3261 13.3.1.4), then BYE to both sides
    assert 9 <= sent <= 12, sent
    [record] = world.records
    assert record.hangup_cause == "no-ack" and record.disposition is Disposition.ANSWERED
    assert bob.requests("BYE")
