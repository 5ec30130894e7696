"""Each feature publishes typed events from its own ``events.py``, and their wire form (name and fields)
is the one web, Link, webhooks and the other nodes read: pinned here, name by name."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

import callto
from callto.dialer.events import ClickProgress
from callto.directory.events import (
    DeviceAdded,
    DeviceOffline,
    DeviceOnline,
    DeviceRemoved,
    DndChanged,
    LoggedOut,
    MainDeviceChanged,
    PreferencesChanged,
    UserAdded,
    UserChanged,
    UserRemoved,
)
from callto.events.bus import Event, FeatureEvent
from callto.history.events import HistoryNew, HistorySeen, HistoryUpdated
from callto.phonebook.events import CardReady, ImportProgress
from callto.presence.events import PresenceChanged
from callto.switchboard.events import BindingsChanged, CallMove, CallProgress

SRC = Path(callto.__file__).parent
NUMBER = {"kind": "internal", "dialed": "201"}

WIRE: list[tuple[FeatureEvent, str, dict[str, Any]]] = [
    (HistoryNew({"id": 1}, 2), "history.new", {"entry": {"id": 1}, "missed_unseen": 2}),
    (HistoryUpdated({"id": 1}, 0), "history.updated", {"entry": {"id": 1}, "missed_unseen": 0}),
    (HistorySeen(), "history.seen", {"missed_unseen": 0}),
    (PresenceChanged(3, "busy", "available"), "presence.changed",
     {"user_id": 3, "presence": "busy", "previous": "available"}),
    (PresenceChanged(3, None, removed=True), "presence.changed", {"user_id": 3, "presence": None, "removed": True}),
    (ClickProgress("dialing", "c1", "dialing", "201", NUMBER, 7, None), "call.dialing",
     {"call_id": "c1", "state": "dialing", "to": "201", "number": NUMBER, "device_id": 7, "strategy": None}),
    (ClickProgress("ended", "c1", "failed", "201", NUMBER, 7, "originate", "busy", {"sip_call_id": "s"}),
     "call.ended", {"call_id": "c1", "state": "failed", "to": "201", "number": NUMBER, "device_id": 7,
                    "strategy": "originate", "sip_call_id": "s", "reason": "busy"}),
    (CallProgress("ringing", "s1", "internal", "201", "202", details={"stage": "device", "other": 1}),
     "call.ringing", {"call_id": "s1", "direction": "internal", "from": "201", "to": "202", "state": "ringing",
                      "caller_name": None, "stage": "device"}),
    (CallMove("moved", "s1", 5, 4), "call.moved", {"call_id": "s1", "state": "moved", "device_id": 5,
                                                   "from_device_id": 4}),
    (CallMove("move_failed", "s1", 5, 4, "no-answer", has_reason=True), "call.move_failed",
     {"call_id": "s1", "state": "move_failed", "device_id": 5, "from_device_id": 4, "reason": "no-answer"}),
    (BindingsChanged("n1", [{"a": 1}], [["d", "b"]]), "sip.bindings",
     {"node": "n1", "put": [{"a": 1}], "gone": [["d", "b"]]}),
    (UserAdded(1), "directory.user_added", {"user_id": 1}),
    (UserChanged(1), "directory.user_changed", {"user_id": 1}),
    (UserRemoved(1), "directory.user_removed", {"user_id": 1}),
    (DndChanged(1, True), "presence.dnd", {"user_id": 1, "dnd": True}),
    (PreferencesChanged({"language": "it"}), "me.preferences", {"language": "it"}),
    (MainDeviceChanged(4), "me.main_device", {"device_id": 4}),
    (DeviceAdded(4, "webphone"), "device.added", {"device_id": 4, "kind": "webphone"}),
    (DeviceRemoved(4), "device.removed", {"device_id": 4}),
    (DeviceOnline(4), "device.online", {"device_id": 4}),
    (DeviceOffline(4), "device.offline", {"device_id": 4}),
    (LoggedOut(1, "j", 9.5), "auth.logged_out", {"user_id": 1, "jti": "j", "exp": 9.5}),
    (CardReady({"name": "Anna"}, "s1", "incoming"), "card", {"name": "Anna", "call_id": "s1", "direction": "incoming"}),
    (ImportProgress({"done": 3}), "phonebook.import.progress", {"done": 3}),
]


@pytest.mark.parametrize(("event", "kind", "data"), WIRE, ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(WIRE)])
def test_a_typed_event_goes_on_the_wire_with_its_old_name_and_fields(
    event: FeatureEvent, kind: str, data: dict[str, Any]
) -> None:
    wire = Event.of(event, frozenset({1})).wire()
    assert wire["type"] == kind
    assert wire["data"] == data
    assert Event.decode(Event.of(event, None).encode()).data == json.loads(json.dumps(data))


def _string_named_events(path: Path) -> list[int]:
    """Lines where ``Event(...)`` is built with a literal name instead of a feature's typed event."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Event":
            first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "type"), None)
            if isinstance(first, ast.Constant | ast.JoinedStr):
                found.append(node.lineno)
    return found


def test_features_publish_typed_events_not_names_and_dicts() -> None:
    features = ("dialer", "directory", "history", "phonebook", "presence", "switchboard", "events")
    offenders = {
        str(path.relative_to(SRC)): lines
        for name in features
        for path in sorted((SRC / name).rglob("*.py"))
        if (lines := _string_named_events(path))
    }
    assert not offenders, offenders
