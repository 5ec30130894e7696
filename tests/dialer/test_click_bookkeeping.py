"""The click's bookkeeping that waits until the INVITE is out: a held-back ``call.dialing`` keeps its place
before the call's other events, and remembered numbers follow the dial plan."""

from __future__ import annotations

from typing import Any

import pytest

from callto.dialer.calls import CallBook, ClickCall
from callto.dialer.dialplan import DialPlan
from callto.dialer.numbers import InvalidNumber, normalize
from callto.dialer.service import DialerService
from callto.events.bus import Event, EventBus


class _Bus:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)


def _call(plan: DialPlan) -> ClickCall:
    return ClickCall(user_id=7, to="29999", number=normalize("29999", plan), device_id=3, device_kind="deskphone")


def _seen(bus: _Bus) -> list[tuple[str, Any, Any]]:
    return [(e.type, e.data["state"], e.data["strategy"]) for e in bus.events]


def test_held_back_dialing_goes_out_once_when_announced() -> None:
    bus = _Bus()
    book = CallBook(bus)  # type: ignore[arg-type]
    call = _call(DialPlan.from_settings({}))
    book.add(call, announce=False)
    assert bus.events == []
    book.announce(call.id)
    book.announce(call.id)
    assert _seen(bus) == [("call.dialing", "dialing", None)]


def test_a_later_event_sends_the_held_back_dialing_first_as_it_was() -> None:
    bus = _Bus()
    book = CallBook(bus)  # type: ignore[arg-type]
    call = _call(DialPlan.from_settings({}))
    book.add(call, announce=False)
    call.strategy = "originate"
    book.update(call.id, "ringing", device_ringing=True)
    book.announce(call.id)  # the loop's turn comes after: nothing more to send
    book.update(call.id, "failed", "busy")
    assert _seen(bus) == [
        ("call.dialing", "dialing", None),
        ("call.ringing", "ringing", "originate"),
        ("call.ended", "failed", "originate"),
    ]


def test_remembered_numbers_follow_the_dial_plan() -> None:
    service = DialerService(None, None, CallBook(EventBus()))  # type: ignore[arg-type]  # no directory or hub: only numbers
    italy = DialPlan.from_settings({})
    first = service._normalize("+39 0721 405516", italy)
    assert service._normalize("+39 0721 405516", italy) is first
    assert first == normalize("+39 0721 405516", italy)
    changed = DialPlan.from_settings({"country": "US"})
    local = service._normalize("0721 405516", italy)
    assert local.e164 == "+390721405516"
    assert service._normalize("0721 405516", changed) == normalize("0721 405516", changed)
    with pytest.raises(InvalidNumber):
        service._normalize("not a number", changed)
    with pytest.raises(InvalidNumber):
        service._normalize("not a number", changed)
