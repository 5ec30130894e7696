"""The baresip harness: two headless phones call each other directly and hear each other's tone."""

from __future__ import annotations

import time

from support.fixtures import BaresipFactory
from support.tone import describe, has_tone


def test_two_baresip_phones_hear_each_others_tone(
    baresip_factory: BaresipFactory, tone_440: object, tone_1000: object
) -> None:
    alice = baresip_factory("alice", tone_440)
    bob = baresip_factory("bob", tone_1000, answermode="manual")

    alice.dial(bob.uri)
    incoming = bob.wait_incoming(timeout=5)
    assert alice.uri.split("@")[0] in incoming["peeruri"]
    alice.wait_ringing(timeout=5)
    bob.answer()
    alice.wait_established(timeout=5)
    bob.wait_established(timeout=5)
    time.sleep(2.5)
    bob.hangup()
    bob.wait_closed(timeout=5)
    closed = alice.wait_closed(timeout=5)
    assert closed["type"] == "CALL_CLOSED"

    heard_by_alice = alice.received_wav()
    heard_by_bob = bob.received_wav()
    assert has_tone(heard_by_alice, 1000, min_seconds=1.5), describe(heard_by_alice)
    assert has_tone(heard_by_bob, 440, min_seconds=1.5), describe(heard_by_bob)
    assert has_tone(alice.sent_wav(), 440), describe(alice.sent_wav())
