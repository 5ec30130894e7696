"""A node takes in the bindings other nodes accepted (read from the shared store): new and newer ones
join, ones that left the store go, and its own registrations are never dropped by a stale read."""

from __future__ import annotations

from dataclasses import replace

from callto.sip.ports import Binding, InMemoryBindingStore, StaticCredentials
from callto.sip.registrar import DeviceOffline, DeviceOnline, Registrar, RegistrarConfig

NOW = 1_000_000.0


def _binding(device: str, *, registered_at: float = NOW, cseq: int = 1, contact: str | None = None) -> Binding:
    return Binding(
        device_id=device,
        user_id=f"u-{device}",
        extension="201",
        aor="sip:201@callto.test",
        contact=contact or f"sip:{device}@127.0.0.1:5070",
        contact_header="",
        expires_at=NOW + 600,
        call_id=f"reg-{device}",
        cseq=cseq,
        source_transport="udp",
        source_host="127.0.0.1",
        source_port=5070,
        registered_at=registered_at,
        conn_id=9,
    )


def _registrar() -> Registrar:
    return Registrar(RegistrarConfig(realm="callto.test"), StaticCredentials(), InMemoryBindingStore())


def test_a_binding_another_node_accepted_joins_and_reports_the_device_online() -> None:
    registrar = _registrar()
    events = registrar.merge_stored([_binding("d1")], NOW)
    assert [type(e) for e in events] == [DeviceOnline]
    [taken] = registrar.bindings_for_user("u-d1")
    assert taken.conn_id is None, "another node's connection is not ours"
    assert registrar.merge_stored([_binding("d1")], NOW + 1) == [], "the same binding again changes nothing"


def test_a_newer_registration_elsewhere_replaces_ours_and_an_older_row_does_not() -> None:
    registrar = _registrar()
    registrar.merge_stored([_binding("d1", registered_at=NOW, cseq=5)], NOW)
    newer = replace(_binding("d1", registered_at=NOW + 10, cseq=6), source_port=5080)
    registrar.merge_stored([newer], NOW)
    [taken] = registrar.bindings("d1")
    assert taken.source_port == 5080
    registrar.merge_stored([_binding("d1", registered_at=NOW + 10, cseq=6)], NOW)  # not newer: ours stays
    [kept] = registrar.bindings("d1")
    assert kept.source_port == 5080


def test_a_binding_that_left_the_store_goes_and_the_device_is_offline() -> None:
    registrar = _registrar()
    registrar.merge_stored([_binding("d1"), _binding("d2")], NOW)
    events = registrar.merge_stored([_binding("d2")], NOW + 1)
    assert events == [DeviceOffline("d1", "u-d1", "201", "unregistered", taken_in=True)]
    assert registrar.bindings("d1") == [] and registrar.bindings("d2")


def test_an_expired_stored_binding_is_not_taken_in() -> None:
    registrar = _registrar()
    assert registrar.merge_stored([replace(_binding("d1"), expires_at=NOW - 1)], NOW) == []
    assert registrar.bindings("d1") == []


def test_our_own_registration_is_not_dropped_when_it_is_missing_from_the_read() -> None:
    registrar = _registrar()
    registrar.merge_stored([_binding("d1", registered_at=NOW)], NOW)
    # This node then accepts a newer REGISTER itself (as the REGISTER path does), not yet written.
    device = registrar._by_device["d1"]
    registrar._put(device, _binding("d1").binding_id, _binding("d1", registered_at=NOW + 30, cseq=2))
    assert registrar.merge_stored([], NOW + 31) == []
    assert registrar.bindings("d1"), "a binding this node accepted stays until it expires or unregisters here"


def test_a_pushed_change_joins_at_once_and_a_pushed_removal_takes_it_away() -> None:
    registrar = _registrar()
    events = registrar.merge_changes([_binding("d1")], [], NOW)
    assert [type(e) for e in events] == [DeviceOnline]
    assert registrar.bindings_for_user("u-d1"), "reachable before any full read of the store"
    key = ("d1", _binding("d1").binding_id)
    gone = DeviceOffline("d1", "u-d1", "201", "unregistered", taken_in=True)
    assert registrar.merge_changes([], [key], NOW + 1) == [gone]
    assert registrar.bindings("d1") == []


def test_a_pushed_change_leaves_other_bindings_and_our_own_registrations_alone() -> None:
    registrar = _registrar()
    registrar.merge_stored([_binding("d1")], NOW)
    own = _binding("d2", registered_at=NOW + 5)
    registrar._put(registrar._by_device.setdefault("d2", {}), own.binding_id, own)  # accepted by this node
    assert registrar.merge_changes([_binding("d3")], [("d2", own.binding_id)], NOW + 6) != []
    assert registrar.bindings("d1"), "a partial push is not a full read: what it does not name stays"
    assert registrar.bindings("d2"), "another node cannot unregister a binding this node holds as its own"
    assert registrar.merge_changes([replace(_binding("d1"), expires_at=NOW - 1)], [], NOW) == []
