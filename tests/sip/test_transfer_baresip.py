"""Blind transfer with real softphones: baresip's ``transfer`` command sends the REFER to the switch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from calls_harness import RunningSwitch, register_phone, running_switch

from callto.sip.b2bua import Disposition
from support.baresip import Baresip
from support.fixtures import BaresipFactory, baresip_factory, tone_440, tone_1000
from support.tone import describe, has_tone

__all__ = ["baresip_factory", "tone_440", "tone_1000"]

pytestmark = [pytest.mark.sip, pytest.mark.timeout(90)]


@pytest.fixture
def switch() -> Iterator[RunningSwitch]:
    with running_switch() as running:
        yield running




def _bridge(switch: RunningSwitch, factory: BaresipFactory, tone_440: Path, tone_1000: Path) -> tuple[Baresip, ...]:
    """alice (201, plays 440 Hz) calls bob (202), bob answers; carol (203) is registered."""
    alice = register_phone(switch, factory, "alice", tone_440, "u-alice", "201")
    bob = register_phone(switch, factory, "bob", tone_1000, "u-bob", "202", answermode="auto")
    carol = register_phone(switch, factory, "carol", tone_1000, "u-carol", "203")
    alice.dial("sip:202@pbx.callto.test")
    alice.wait_established(timeout=10)
    bob.wait_established(timeout=5)
    return alice, bob, carol


def test_callee_blind_transfers_the_caller_who_then_talks_to_the_target(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice, bob, carol = _bridge(switch, baresip_factory, tone_440, tone_1000)
    original_id = switch.wait_event("answered")["call_id"]
    bob.command("transfer", "sip:203@pbx.callto.test")
    incoming = carol.wait_incoming(timeout=10)
    assert "201" in str(incoming)  # the target sees the transferee calling
    carol.answer()
    carol.wait_established(timeout=5)
    bob.wait_closed(timeout=10)  # the switch hangs up the transferor once the target talks
    switch.wait_event("transferred", call_id=original_id)
    time.sleep(3.0)  # alice's tone now reaches carol
    [record] = switch.wait_records(1)
    assert record.call_id == original_id
    assert record.hangup_cause == "transferred" and record.disposition is Disposition.ANSWERED
    assert switch.call(lambda: switch.switch.user_call_state("u-bob")) == "idle"
    assert switch.call(lambda: switch.switch.user_call_state("u-carol")) == "busy"
    carol.hangup()
    alice.wait_closed(timeout=5)
    carol.wait_closed(timeout=5)
    records = switch.wait_records(2)
    new = records[1]
    assert (new.caller_user_id, new.callee_user_id) == ("u-alice", "u-carol")
    assert new.disposition is Disposition.ANSWERED and new.hangup_cause == "callee-hangup"
    heard_by_carol = carol.received_wav()
    assert has_tone(heard_by_carol, 440, min_seconds=2.0), describe(heard_by_carol)


def test_transfer_to_a_busy_target_reports_486_to_the_transferor_and_the_switch_keeps_the_call(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice, bob, carol = _bridge(switch, baresip_factory, tone_440, tone_1000)
    original_id = switch.wait_event("answered")["call_id"]
    bob.command("transfer", "sip:203@pbx.callto.test")
    carol.wait_incoming(timeout=10)
    carol.command("hangup")  # rejecting answers 486
    carol.wait_closed(timeout=5)
    failed = switch.wait_event("ended", disposition="busy")
    assert failed["call_id"] != original_id and failed["to"] == "203"
    assert bob.process is not None
    deadline = time.monotonic() + 5
    while "transfer failed: 486" not in bob.process.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "transfer failed: 486" in bob.process.output()  # the NOTIFY's sipfrag reached the transferor
    # baresip 1.0 hangs up by itself when its transfer fails; the switch never ends the original call: its
    # record says the transferor hung up, and only then does alice get a BYE
    alice.wait_closed(timeout=5)
    ended = {r.call_id: r for r in switch.wait_records(2)}
    assert ended[original_id].hangup_cause == "callee-hangup"
    assert ended[failed["call_id"]].disposition is Disposition.BUSY
