"""Registrations written by one node reach the other nodes over Redis as soon as they are in the table
(real SQLite table, real Redis pub/sub): a phone registered on node B is reachable from node A without
waiting for A's next full read, a removal follows, and a node ignores its own messages."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from callto.events.bus import EventBus
from callto.sip.ports import Binding
from callto.store import migrate
from callto.store.database import Database
from callto.switchboard.store import DatabaseBindingStore
from callto.switchboard.wiring import _push_bindings_between_nodes

pytestmark = pytest.mark.timeout(30)


class _TakesIn:
    """Stands where the switch does: records what it is asked to take in."""

    def __init__(self) -> None:
        self.changes: list[tuple[list[Binding], list[tuple[str, str]]]] = []
        self.arrived = asyncio.Event()

    def merge_binding_changes(self, changed: list[Binding], gone: list[tuple[str, str]]) -> None:
        self.changes.append((changed, gone))
        self.arrived.set()


def _binding(device: str) -> Binding:
    return Binding(
        device_id=device, user_id="7", extension="207", aor="sip:207@pbx.test", contact="sip:207@192.0.2.1:5062",
        contact_header="<sip:207@192.0.2.1:5062>", expires_at=2_000_000_000.0, call_id="c1@host", cseq=2,
        source_transport="udp", source_host="192.0.2.1", source_port=5062, registered_at=1_999_999_400.0,
        path=("<sip:edge.test;lr>",), conn_id=4,
    )


async def _wait(node: _TakesIn) -> tuple[list[Binding], list[tuple[str, str]]]:
    await asyncio.wait_for(node.arrived.wait(), 5)
    node.arrived.clear()
    return node.changes.pop(0)


def test_a_registration_written_on_one_node_is_pushed_to_the_other(tmp_path: Path, redis_url: str) -> None:
    async def scenario() -> None:
        prefix = f"callto:test-push-{secrets.token_hex(4)}"
        db = Database(f"sqlite:///{tmp_path / 'callto.db'}")
        migrate.upgrade(db)
        buses = [EventBus(redis_url, prefix), EventBus(redis_url, prefix)]
        stores = [DatabaseBindingStore(db), DatabaseBindingStore(db)]
        nodes = [_TakesIn(), _TakesIn()]
        for bus, store, node, name in zip(buses, stores, nodes, ("a", "b"), strict=True):
            _push_bindings_between_nodes(SimpleNamespace(bus=bus), store, node, name)  # type: ignore[arg-type]
            await bus.start()
            await store.start()
        try:
            await asyncio.sleep(0.3)  # both subscribed
            phone = _binding("42")
            stores[1].upsert(phone)  # node B accepted a REGISTER
            changed, gone = await _wait(nodes[0])
            assert changed == [replace(phone, conn_id=None)] and gone == []
            stores[1].delete("42", phone.binding_id)
            changed, gone = await _wait(nodes[0])
            assert changed == [] and gone == [("42", phone.binding_id)]
            assert nodes[1].changes == [], "a node does not take in its own registrations"
            assert not any(b.device_id for c, _ in nodes[0].changes for b in c), "nothing else arrived"
        finally:
            for store in stores:
                await store.stop()
            for bus in buses:
                await bus.stop()
            db.dispose()

    asyncio.run(scenario())


