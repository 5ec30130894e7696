"""Real softphones (headless baresip) registered on the switch call each other by extension."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from calls_harness import RunningSwitch, register_phone, running_switch

from callto.sip.b2bua import Disposition
from support.fixtures import BaresipFactory, baresip_factory, tone_440, tone_1000
from support.tone import describe, has_tone

__all__ = ["baresip_factory", "tone_440", "tone_1000"]

pytestmark = [pytest.mark.sip, pytest.mark.timeout(60)]


@pytest.fixture
def switch() -> Iterator[RunningSwitch]:
    with running_switch() as running:
        yield running




def test_extension_call_carries_tone_both_ways_and_callee_hangs_up(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice = register_phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
    bob = register_phone(switch, baresip_factory, "bob", tone_1000, "u-bob", "202")

    alice.dial("sip:202@pbx.callto.test")
    incoming = bob.wait_incoming(timeout=10)
    assert "201" in incoming.get("peeruri", "") or "201" in str(incoming)
    alice.wait_ringing(timeout=5)
    assert switch.call(lambda: switch.switch.user_call_state("u-bob")) == "ringing"
    bob.answer()
    alice.wait_established(timeout=5)
    bob.wait_established(timeout=5)
    assert switch.call(lambda: switch.switch.user_call_state("u-bob")) == "busy"
    time.sleep(2.5)
    bob.hangup()
    alice.wait_closed(timeout=5)
    bob.wait_closed(timeout=5)

    [record] = switch.wait_records(1)
    assert record.disposition is Disposition.ANSWERED
    assert record.hangup_cause == "callee-hangup"
    assert record.caller_user_id == "u-alice" and record.callee_user_id == "u-bob"
    assert record.answered_at is not None and record.ended_at >= record.answered_at
    assert switch.call(lambda: switch.switch.user_call_state("u-bob")) == "idle"
    heard_by_bob, heard_by_alice = bob.received_wav(), alice.received_wav()
    assert has_tone(heard_by_bob, 440, min_seconds=1.5), describe(heard_by_bob)
    assert has_tone(heard_by_alice, 1000, min_seconds=1.5), describe(heard_by_alice)


def test_caller_hangs_up_an_answered_call(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice = register_phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
    bob = register_phone(switch, baresip_factory, "bob", tone_1000, "u-bob", "202", answermode="auto")
    alice.dial("sip:202@pbx.callto.test")
    alice.wait_established(timeout=10)
    bob.wait_established(timeout=5)
    alice.hangup()
    closed = bob.wait_closed(timeout=5)
    assert closed["type"] == "CALL_CLOSED"
    [record] = switch.wait_records(1)
    assert record.hangup_cause == "caller-hangup"
    assert record.disposition is Disposition.ANSWERED


def test_user_with_two_devices_rings_both_and_the_other_is_cancelled(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice = register_phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
    desk = register_phone(switch, baresip_factory, "bobdesk", tone_1000, "u-bob", "202")
    soft = register_phone(switch, baresip_factory, "bobsoft", tone_1000, "u-bob", "202")
    switch.wait_bindings("u-bob", 2)

    alice.dial("sip:202@pbx.callto.test")
    desk.wait_incoming(timeout=10)
    soft.wait_incoming(timeout=10)
    soft.answer()
    alice.wait_established(timeout=5)
    closed = desk.wait_closed(timeout=5)  # the losing branch got CANCEL
    assert closed["type"] == "CALL_CLOSED"
    alice.hangup()
    soft.wait_closed(timeout=5)
    [record] = switch.wait_records(1)
    assert sorted(record.devices_rung) == ["dev-bobdesk", "dev-bobsoft"]
    assert record.answered_device_id == "dev-bobsoft"


def test_busy_callee_gives_486_and_a_busy_record(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice = register_phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
    bob = register_phone(switch, baresip_factory, "bob", tone_1000, "u-bob", "202")
    alice.dial("sip:202@pbx.callto.test")
    bob.wait_incoming(timeout=10)
    bob.command("hangup")  # rejecting an incoming call answers 486
    closed = alice.wait_closed(timeout=5)
    assert "486" in str(closed.get("param", "")), closed
    [record] = switch.wait_records(1)
    assert record.disposition is Disposition.BUSY


def test_caller_cancel_while_ringing_is_a_cancelled_call(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice = register_phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
    bob = register_phone(switch, baresip_factory, "bob", tone_1000, "u-bob", "202")
    alice.dial("sip:202@pbx.callto.test")
    bob.wait_incoming(timeout=10)
    alice.wait_ringing(timeout=5)
    alice.hangup()
    bob.wait_closed(timeout=5)
    [record] = switch.wait_records(1)
    assert record.disposition is Disposition.CANCELLED
    assert record.hangup_cause == "caller-cancelled"


def test_offline_extension_is_480_and_unknown_number_is_404(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    alice = register_phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
    alice.dial("sip:299@pbx.callto.test")
    closed = alice.wait_closed(timeout=5)
    assert "404" in str(closed.get("param", "")), closed


def test_ring_timeout_ends_with_480_and_a_missed_record(
    baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    with running_switch(ring_timeout=2.0) as switch:
        alice = register_phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
        bob = register_phone(switch, baresip_factory, "bob", tone_1000, "u-bob", "202")
        alice.dial("sip:202@pbx.callto.test")
        bob.wait_incoming(timeout=10)
        closed = alice.wait_closed(timeout=8)
        assert "480" in str(closed.get("param", "")), closed
        bob.wait_closed(timeout=5)
        [record] = switch.wait_records(1)
        assert record.disposition is Disposition.MISSED
        assert record.hangup_cause == "no-answer"


def test_hold_and_resume_reinvites_are_relayed_with_their_directions(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice = register_phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
    bob = register_phone(switch, baresip_factory, "bob", tone_1000, "u-bob", "202", answermode="auto")
    sent: list[bytes] = []
    server = switch.switch.server
    original = server.transmit

    def tap(data: bytes, addr: tuple[str, int], transport: str, conn_id: int | None, close: bool) -> None:
        if addr[1] == bob.sip_port:
            sent.append(data)
        original(data, addr, transport, conn_id, close)

    server.transmit = tap  # type: ignore[method-assign]
    alice.dial("sip:202@pbx.callto.test")
    alice.wait_established(timeout=10)
    bob.wait_established(timeout=5)
    time.sleep(1.5)
    alice.command("hold")
    _wait_for(lambda: any(b"a=sendonly" in d and d.startswith(b"INVITE") for d in sent), 5, "hold re-INVITE")
    alice.command("resume")
    _wait_for(lambda: sum(d.startswith(b"INVITE") and b"a=sendrecv" in d for d in sent) >= 2, 5, "resume re-INVITE")
    _wait_for(lambda: len([d for d in sent if d.startswith(b"ACK")]) >= 3, 5, "ACKs of both re-INVITEs")
    alice.hangup()
    bob.wait_closed(timeout=5)
    [record] = switch.wait_records(1)
    assert record.disposition is Disposition.ANSWERED
    # baresip 1.0's sndfile recorder stops at the first re-INVITE: what it kept is the audio before hold
    heard = bob.received_wav()
    assert has_tone(heard, 440, min_seconds=0.5), describe(heard)


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout}s")
