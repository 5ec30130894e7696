"""The switch's move events become ``call.moving`` / ``call.moved`` / ``call.move_failed`` for the user who
moves their call, and for nobody else (the other party is not told); other call events keep their shape."""

from __future__ import annotations

from callto.events.bus import Event, EventBus
from callto.switchboard.telephony import Telephony


class RecordingBus(EventBus):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Event] = []

    def publish(self, event: Event) -> None:
        self.sent.append(event)


def _switch_data(**extra: object) -> dict[str, object]:
    return {"call_id": "c1", "direction": "internal", "caller_user_id": "7", "caller_device_id": "70",
            "callee_user_id": "8", "from": "201", "to": "202", **extra}


def test_move_events_reach_only_the_moving_user_with_the_devices() -> None:
    bus = RecordingBus()
    telephony = Telephony(bus)
    telephony.on_call_event("moving", _switch_data(device_id="81", from_device_id="80", user_id="8"))
    telephony.on_call_event("move_failed", _switch_data(device_id="81", from_device_id="80", user_id="8",
                                                        reason="no-answer"))
    telephony.on_call_event("moved", _switch_data(device_id="81", from_device_id="80", user_id="8"))
    assert [(e.type, e.users) for e in bus.sent] == [
        ("call.moving", frozenset({8})), ("call.move_failed", frozenset({8})), ("call.moved", frozenset({8})),
    ]
    assert bus.sent[1].data == {"call_id": "c1", "state": "move_failed", "device_id": 81, "from_device_id": 80,
                                "reason": "no-answer"}
    assert bus.sent[2].data == {"call_id": "c1", "state": "moved", "device_id": 81, "from_device_id": 80}


def test_answered_events_keep_their_shape_without_move_fields() -> None:
    bus = RecordingBus()
    Telephony(bus).on_call_event("answered", _switch_data(device_id="80"))
    [event] = bus.sent
    assert event.type == "call.answered" and event.users == frozenset({7, 8})
    assert set(event.data) == {"call_id", "direction", "from", "to", "state", "caller_name"}
