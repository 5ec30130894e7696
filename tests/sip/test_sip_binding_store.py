"""The switch's write-behind of registrations to the database, and its SIP accounts loaded from the directory.

Bindings are written in batches (one DELETE and one multi-row upsert per flush) and must read back exactly;
a refresh replaces the stored row, an un-REGISTER removes it, a binding id longer than the column is stored
cut and can still be refreshed and removed. Accounts come from one query at start; a directory change
falls back to the database until the reload lands.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from callto.events.bus import Event
from callto.sip.ports import Binding
from callto.store import migrate
from callto.store.database import Database
from callto.switchboard.store import DatabaseBindingStore, DirectoryCredentials


def _binding(device: str, contact: str, *, expires_at: float = 2_000_000_000.0, **kw: Any) -> Binding:
    return Binding(
        device_id=device, user_id="7", extension="207", aor="sip:207@pbx.test", contact=contact,
        contact_header=f"<{contact}>;expires=600", expires_at=expires_at, call_id="c1@host", cseq=2,
        source_transport="udp", source_host="192.0.2.1", source_port=5062, registered_at=1_999_999_400.0,
        user_agent="phone/1.0", path=("<sip:edge.test;lr>",), **kw,
    )


def _store(url: str) -> tuple[Database, DatabaseBindingStore]:
    db = Database(url)
    migrate.upgrade(db)
    return db, DatabaseBindingStore(db)


def _flush(store: DatabaseBindingStore) -> None:
    store._flush(store._take())


def test_bindings_written_behind_read_back_exactly_and_refreshes_replace_them(database_url: str) -> None:
    db, store = _store(database_url)
    try:
        first = _binding("1", "sip:201@192.0.2.1:5062;transport=udp")
        other = _binding("2", "sip:202@192.0.2.2:5062", instance="<urn:uuid:1>", reg_id=1, q=0.5)
        store.upsert(first)
        store.upsert(other)
        _flush(store)
        assert sorted(store.load_all(), key=lambda b: b.device_id) == [first, other]
        refreshed = replace(first, expires_at=2_000_000_600.0, cseq=3)
        store.upsert(refreshed)
        store.delete("2", other.binding_id)
        _flush(store)
        assert store.load_all() == [refreshed]
    finally:
        db.dispose()


def test_last_change_in_a_batch_wins_and_overlong_ids_are_cut_consistently(database_url: str) -> None:
    db, store = _store(database_url)
    try:
        long_contact = "sip:201@192.0.2.1:5062;x=" + "a" * 600
        gone = _binding("1", "sip:gone@192.0.2.1")
        store.upsert(gone)
        store.delete("1", gone.binding_id)  # added and removed within one batch: nothing is written
        store.upsert(_binding("1", long_contact))
        _flush(store)
        [stored] = store.load_all()
        assert stored.contact == long_contact  # the data keeps it whole; only the key column is cut
        store.upsert(_binding("1", long_contact, expires_at=2_000_000_900.0))  # refresh of the cut key
        _flush(store)
        assert [b.expires_at for b in store.load_all()] == [2_000_000_900.0]
        store.delete("1", long_contact)
        _flush(store)
        assert store.load_all() == []
    finally:
        db.dispose()


def test_writer_task_saves_pending_bindings_when_stopped(database_url: str) -> None:
    db, store = _store(database_url)

    async def run() -> None:
        await store.start()
        store.upsert(_binding("3", "sip:203@192.0.2.3"))
        await store.stop()

    try:
        asyncio.run(run())
        assert [b.device_id for b in DatabaseBindingStore(db).load_all()] == ["3"]
    finally:
        db.dispose()


class _Directory:
    """The two DirectoryService calls DirectoryCredentials makes, counting the per-user ones."""

    def __init__(self) -> None:
        self.accounts = {"u1": self._account("u1", 1)}
        self.single_lookups = 0

    @staticmethod
    def _account(username: str, device_id: int) -> SimpleNamespace:
        return SimpleNamespace(username=username, password="pw", device_id=device_id, user_id=9, extension="209",
                               outbound="national")

    def all_sip_accounts(self) -> list[SimpleNamespace]:
        return list(self.accounts.values())

    def sip_account(self, username: str) -> SimpleNamespace | None:
        self.single_lookups += 1
        return self.accounts.get(username)


def test_accounts_come_from_the_preload_and_a_directory_change_reloads_them() -> None:
    directory = _Directory()
    credentials = DirectoryCredentials(directory)  # type: ignore[arg-type]

    async def run() -> None:
        credentials.preload()
        found = credentials.lookup("u1")
        assert found is not None and found.device_id == "1" and credentials.outbound_class("u1") == "national"
        assert credentials.lookup("nobody") is None
        assert directory.single_lookups == 0  # the preloaded set answers both, unknown names included
        del directory.accounts["u1"]
        directory.accounts["u2"] = directory._account("u2", 2)
        credentials.on_event(Event("device.removed", {"device_id": 1}, None))
        assert credentials.lookup("u1") is None  # at once, from the database, before the reload lands
        assert directory.single_lookups == 1
        for _ in range(100):
            await asyncio.sleep(0.01)
            if credentials._loaded is not None:
                break
        again = credentials.lookup("u2")
        assert again is not None and again.device_id == "2"
        assert directory.single_lookups == 1  # the reloaded set answers again
        credentials.on_event(Event("device.online", {"device_id": 2}, None))
        assert credentials._loaded is not None  # online/offline are not directory changes

    asyncio.run(run())
