"""Moving a live call between a user's desk phones with real softphones (baresip) on the running switch:
the caller's tone reaches the device the call moved to; a device that does not answer leaves the call
where it was, with the caller still heard there; history gets one record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from calls_harness import RunningSwitch, register_phone, running_switch

from callto.sip.b2bua import Disposition
from support.fixtures import BaresipFactory, baresip_factory, tone_440, tone_1000
from support.tone import describe, has_tone

__all__ = ["baresip_factory", "tone_440", "tone_1000"]

pytestmark = [pytest.mark.sip, pytest.mark.timeout(90)]


@pytest.fixture
def switch() -> Iterator[RunningSwitch]:
    with running_switch(ring_timeout=4.0) as running:  # a move rings at most the switch's ring time
        yield running


def test_a_call_moves_to_the_users_other_desk_phone_and_then_stays_when_the_first_does_not_answer(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice = register_phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
    desk = register_phone(switch, baresip_factory, "desk", tone_1000, "u-bob", "202", device="bob-desk")
    other = register_phone(switch, baresip_factory, "other", tone_1000, "u-bob", "202", device="bob-other")
    alice.dial("sip:202@pbx.callto.test")
    desk.wait_incoming(timeout=10)
    other.wait_incoming(timeout=10)
    desk.answer()
    alice.wait_established(timeout=10)
    other.wait_closed(timeout=5)  # the fork's other branch is cancelled
    call_id = switch.wait_event("answered")["call_id"]

    # someone else's device, and a user without a call, are refused before anything rings
    assert switch.loop.run(switch.switch.move_call("u-bob", "dev-alice")) == (False, "not-your-device")
    assert switch.loop.run(switch.switch.move_call("u-nobody", "bob-other")) == (False, "no-call")

    moving = asyncio.run_coroutine_threadsafe(switch.switch.move_call("u-bob", "bob-other"), switch.loop.loop)
    other.wait_incoming(timeout=10)
    other.answer()
    other.wait_established(timeout=10)
    assert moving.result(15) == (True, "moved")
    desk.wait_closed(timeout=10)  # the old device is hung up once the new one talks
    switch.wait_event("moved", call_id=call_id)
    time.sleep(3.0)
    assert not [e for e in alice.events if e.get("type") == "CALL_CLOSED"], "the caller was dropped"

    # back to the first desk phone, which does not answer: the call stays on the other one
    moving = asyncio.run_coroutine_threadsafe(switch.switch.move_call("u-bob", "bob-desk"), switch.loop.loop)
    desk.wait_incoming(timeout=10)
    assert moving.result(15) == (False, "no-answer")
    desk.wait_closed(timeout=5)
    failed = switch.wait_event("move_failed", call_id=call_id)
    assert failed["reason"] == "no-answer"
    time.sleep(2.0)
    alice.hangup()
    other.wait_closed(timeout=10)
    [record] = switch.wait_records(1)
    assert record.call_id == call_id and record.disposition is Disposition.ANSWERED
    assert record.answered_device_id == "bob-other"
    heard = other.received_wav()
    assert has_tone(heard, 440, min_seconds=2.0), describe(heard)
