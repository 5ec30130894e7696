"""The switch's ports backed by callto: SIP accounts from the directory, bindings in the database.

Both sit on the REGISTER path, which runs on the event loop: every account is loaded at start and kept in
memory (reloaded off the loop after a directory change), bindings are kept in memory and written to the
database behind, in a worker thread, in batches (one DELETE and one multi-row upsert per flush); a
restart loses at most the last fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from callto.directory.events import DeviceOffline, DeviceOnline
from callto.directory.service import DirectoryService
from callto.events.bus import Event
from callto.sip.ports import ActiveCall, ActiveLeg, Binding, SipAccount
from callto.store.database import Database
from callto.switchboard.models import SipActiveCall, SipBinding, SipNode

log = logging.getLogger(__name__)

ACCOUNT_TTL = 10.0
FLUSH_INTERVAL = 0.5

_ID_LENGTH = 512  # sip_bindings.binding_id's length: a longer binding id is stored cut there
_TABLE = cast(Table, SipBinding.__table__)
_DELETE = delete(_TABLE).where(_TABLE.c.device_id == bindparam("d"), _TABLE.c.binding_id == bindparam("b"))


class DirectoryCredentials:
    """``Credentials`` for the registrar and the B2BUA, from the directory's devices.

    Every account is loaded at start (:meth:`preload`, off the loop); while that set is current a lookup
    is one dict access and an unknown username is refused without asking the database. A directory change
    drops the set and reloads it in a worker thread; until the reload lands, lookups ask the database
    (one indexed query, cached ``ttl`` seconds), so a removed device is refused at its next REGISTER.
    """

    def __init__(self, directory: DirectoryService, ttl: float = ACCOUNT_TTL) -> None:
        self.directory = directory
        self.ttl = ttl
        self._cache: dict[str, tuple[float, SipAccount | None, str]] = {}
        self._loaded: dict[str, tuple[SipAccount, str]] | None = None  # None: not loaded, or stale
        self._generation = 0  # bumped by every directory change: a reload started before one is stale
        self._reload: asyncio.Task[None] | None = None

    def _read_all(self) -> dict[str, tuple[SipAccount, str]]:
        loaded = {}
        for account in self.directory.all_sip_accounts():
            loaded[account.username] = (
                SipAccount(
                    username=account.username, password=account.password, device_id=str(account.device_id),
                    user_id=str(account.user_id), extension=account.extension or "",
                ),
                account.outbound,
            )
        return loaded

    def preload(self) -> int:
        """Load every account at once, so REGISTERs do not wait on the database (run off the loop)."""
        generation = self._generation
        loaded = self._read_all()
        if generation == self._generation:
            self._loaded = loaded
        return len(loaded)

    def lookup(self, username: str) -> SipAccount | None:
        loaded = self._loaded
        if loaded is not None:
            preloaded = loaded.get(username)
            return preloaded[0] if preloaded is not None else None
        now = time.monotonic()
        hit = self._cache.get(username)
        if hit is not None and hit[0] > now:
            return hit[1]
        account = self.directory.sip_account(username)
        found = None
        outbound = "internal"
        if account is not None:
            found = SipAccount(
                username=account.username,
                password=account.password,
                device_id=str(account.device_id),
                user_id=str(account.user_id),
                extension=account.extension or "",
            )
            outbound = account.outbound
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[username] = (now + self.ttl, found, outbound)
        return found

    def outbound_class(self, username: str) -> str:
        loaded = self._loaded
        if loaded is not None:
            preloaded = loaded.get(username)
            return preloaded[1] if preloaded is not None else "internal"
        self.lookup(username)
        hit = self._cache.get(username)
        return hit[2] if hit else "internal"

    def on_event(self, event: Event) -> None:
        """Directory changes (device removed, user changed) must take effect at the next REGISTER."""
        online_state = (DeviceOnline.kind, DeviceOffline.kind)
        if event.type.startswith(("device.", "directory.")) and event.type not in online_state:
            self._cache.clear()
            self._loaded = None
            self._generation += 1
            self._schedule_reload()

    def _schedule_reload(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a script, a test): lookups keep asking the database
        if self._reload is None or self._reload.done():
            self._reload = loop.create_task(self._reload_all(), name="sip-accounts-reload")

    async def _reload_all(self) -> None:
        # a change while loading makes the result stale: load again until one load saw no change
        for _attempt in range(10):
            generation = self._generation
            try:
                loaded = await asyncio.to_thread(self._read_all)
            except Exception:
                log.exception("reloading the SIP accounts failed; lookups ask the database meanwhile")
                return
            if generation == self._generation:
                self._loaded = loaded
                return


_BINDING_FIELDS = tuple(f.name for f in dataclasses.fields(Binding))


def binding_row(binding: Binding) -> dict[str, Any]:
    """A binding as the JSON the table stores (and the cluster's registration messages carry)."""
    # field by field: dataclasses.asdict deep-copies recursively, ten times slower on a hot batch
    data = {name: getattr(binding, name) for name in _BINDING_FIELDS}
    data["path"] = list(binding.path)
    data["conn_id"] = None  # a connection does not survive a restart
    return data


def binding_from_row(data: dict[str, Any]) -> Binding:
    """The inverse of :func:`binding_row` (TypeError or ValueError on a row it cannot read)."""
    fields = {f.name for f in dataclasses.fields(Binding)}
    values = {k: v for k, v in data.items() if k in fields}
    values["path"] = tuple(values.get("path") or ())
    return Binding(**values)


class DatabaseBindingStore:
    """``BindingStore`` with write-behind to the ``sip_bindings`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: dict[tuple[str, str], Binding | None] = {}
        self._in_flight: dict[tuple[str, str], Binding | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Told, on the loop, of every batch once it is in the table (binding, or None for removed): the
        # wiring pushes it to the other nodes of a cluster, which then need not wait for their next full read.
        self.on_flushed: Callable[[dict[tuple[str, str], Binding | None]], None] | None = None

    def load_all(self) -> list[Binding]:
        with self.db.session() as s:
            rows = s.scalars(select(SipBinding)).all()
            out = []
            for row in rows:
                try:
                    out.append(binding_from_row(row.data))
                except (TypeError, ValueError):
                    log.warning("dropping an unreadable stored binding of device %s", row.device_id)
            return out

    def upsert(self, binding: Binding) -> None:
        self._pending[(binding.device_id, binding.binding_id)] = binding
        self._wake.set()

    def delete(self, device_id: str, binding_id: str) -> None:
        self._pending[(device_id, binding_id)] = None
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name="sip-binding-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._flush, self._take())

    def _take(self) -> dict[tuple[str, str], Binding | None]:
        batch, self._pending = self._pending, {}
        self._in_flight = batch
        return batch

    def unsettled(self) -> set[tuple[str, str]]:
        """The bindings this node has not finished writing (queued, or in the batch being written): for
        those, this node's memory is newer than the row. Call on the event loop."""
        return set(self._pending) | set(self._in_flight)

    async def load_settled(self) -> list[Binding]:
        """Every stored binding but the unsettled ones (before or after the read), for
        :meth:`Registrar.merge_stored`: a binding this node just removed must not come back from its row."""
        before = self.unsettled()
        rows = await asyncio.to_thread(self.load_all)
        unsettled = before | self.unsettled()
        return [b for b in rows if (b.device_id, b.binding_id) not in unsettled]

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(FLUSH_INTERVAL)
            batch = self._take()
            if not batch:
                continue
            try:
                await asyncio.to_thread(self._flush, batch)
            except Exception:
                log.exception("saving %d registrations failed; will retry", len(batch))
                for key, value in batch.items():
                    self._pending.setdefault(key, value)
                self._wake.set()
                await asyncio.sleep(2.0)
                continue
            finally:
                self._in_flight = {}
            if self.on_flushed is not None:
                try:
                    self.on_flushed(batch)
                except Exception:
                    log.exception("telling other nodes of %d saved registrations failed", len(batch))

    def _flush(self, batch: dict[tuple[str, str], Binding | None]) -> None:
        """Write one batch in one transaction: a DELETE for the removed bindings and one multi-row upsert
        for the others (Core statements, executemany: no ORM unit of work per binding). Runs in a worker
        thread, so the less Python it runs per binding, the less it holds the GIL against the event loop."""
        if not batch:
            return
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        gone: dict[tuple[str, str], dict[str, str]] = {}
        for (device_id, binding_id), binding in batch.items():
            key = (device_id, binding_id[:_ID_LENGTH])  # the column's length: the stored id is cut there
            if binding is None:
                rows.pop(key, None)
                gone[key] = {"d": key[0], "b": key[1]}
            else:
                gone.pop(key, None)
                rows[key] = {
                    "device_id": key[0],
                    "binding_id": key[1],
                    "data": binding_row(binding),
                    "expires_at": binding.expires_at,
                }
        table = _TABLE
        with self.db.engine.begin() as conn:
            if gone:
                conn.execute(_DELETE, list(gone.values()))
            if rows:
                dialect = conn.dialect.name
                if dialect in ("sqlite", "postgresql"):
                    ins = sqlite_insert(table) if dialect == "sqlite" else pg_insert(table)
                    upsert = ins.on_conflict_do_update(
                        index_elements=[table.c.device_id, table.c.binding_id],
                        set_={"data": ins.excluded.data, "expires_at": ins.excluded.expires_at},
                    )
                    conn.execute(upsert, list(rows.values()))
                else:  # pragma: no cover - only SQLite and PostgreSQL are supported
                    conn.execute(_DELETE, [{"d": d, "b": b} for d, b in rows])
                    conn.execute(insert(table), list(rows.values()))



_ACTIVE = cast(Table, SipActiveCall.__table__)


def _active_from_row(data: dict[str, Any]) -> ActiveCall:
    legs = tuple(ActiveLeg(**{**leg, "route_set": tuple(leg["route_set"])}) for leg in data["legs"])
    fields = {k: v for k, v in data.items() if k != "legs"}
    fields["devices_rung"] = tuple(fields.get("devices_rung", ()))
    return ActiveCall(**fields, legs=legs)


class DatabaseActiveCalls:
    """``ActiveCallStore`` in the ``sip_active_calls`` table, written behind like the bindings: ``save`` and
    ``drop`` only queue, a task flushes every ``interval`` seconds in a worker thread. A crash within that
    interval of an answer loses that one call's recovery (its phones end it themselves when they notice)."""

    def __init__(self, db: Database, interval: float = 0.2) -> None:
        self.db = db
        self.interval = interval
        self._pending: dict[str, ActiveCall | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def save(self, call: ActiveCall) -> None:
        self._pending[call.call_id] = call
        self._wake.set()

    def drop(self, call_id: str) -> None:
        self._pending[call_id] = None
        self._wake.set()

    def load_node(self, node: str) -> list[ActiveCall]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(_ACTIVE.c.call_id, _ACTIVE.c.data).where(_ACTIVE.c.node == node)).all()
        out = []
        for call_id, data in rows:
            try:
                out.append(_active_from_row(data))
            except (KeyError, TypeError, ValueError):
                log.warning("dropping an unreadable stored call %s", call_id)
                self.drop(call_id)
        return out

    async def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name="sip-active-call-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        batch, self._pending = self._pending, {}
        await asyncio.to_thread(self._flush, batch)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.interval)
            batch, self._pending = self._pending, {}
            if not batch:
                continue
            try:
                await asyncio.to_thread(self._flush, batch)
            except Exception:
                log.exception("saving %d calls in progress failed; will retry", len(batch))
                for key, value in batch.items():
                    self._pending.setdefault(key, value)
                self._wake.set()
                await asyncio.sleep(2.0)

    def _flush(self, batch: dict[str, ActiveCall | None]) -> None:
        if not batch:
            return
        with self.db.engine.begin() as conn:
            # A call answered and ended within one interval needs no row at all: one DELETE covers both.
            conn.execute(delete(_ACTIVE).where(_ACTIVE.c.call_id.in_(list(batch))))
            rows = [
                {"call_id": c.call_id, "node": c.node, "data": dataclasses.asdict(c)}
                for c in batch.values()
                if c is not None
            ]
            if rows:
                conn.execute(insert(_ACTIVE), rows)


_NODES = cast(Table, SipNode.__table__)


class DatabaseNodes:
    """``NodeRegistry`` in the ``sip_nodes`` table (one row per node; the beat is an integer counter)."""

    def __init__(self, db: Database, node: str) -> None:
        self.db = db
        self.node = node
        self._beat = 0

    def beat(self) -> None:
        self._beat += 1
        with self.db.engine.begin() as conn:
            updated = conn.execute(
                update(_NODES).where(_NODES.c.node == self.node).values(beat=self._beat)
            ).rowcount
            if not updated:
                conn.execute(insert(_NODES), [{"node": self.node, "beat": self._beat}])

    def beats(self) -> dict[str, int]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(_NODES.c.node, _NODES.c.beat).where(_NODES.c.node != self.node)).all()
        return {node: beat for node, beat in rows}

    def claim_calls(self, dead: str) -> list[ActiveCall]:
        claim = f"{self.node}<{dead}"[:128]
        with self.db.engine.begin() as conn:
            # One UPDATE moves the rows: whichever survivor runs it first has them, the others find none.
            conn.execute(update(_ACTIVE).where(_ACTIVE.c.node == dead).values(node=claim))
            rows = conn.execute(select(_ACTIVE.c.call_id, _ACTIVE.c.data).where(_ACTIVE.c.node == claim)).all()
            conn.execute(delete(_ACTIVE).where(_ACTIVE.c.node == claim))
        out = []
        for call_id, data in rows:
            try:
                out.append(_active_from_row(data))
            except (KeyError, TypeError, ValueError):
                log.warning("dropping an unreadable stored call %s of dead node %s", call_id, dead)
        return out

    def forget(self, dead: str, beat: int) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(delete(_NODES).where(_NODES.c.node == dead, _NODES.c.beat == beat))

    def leave(self) -> None:
        """A clean stop: this node's row goes, so nobody waits for it to be declared dead."""
        with self.db.engine.begin() as conn:
            conn.execute(delete(_NODES).where(_NODES.c.node == self.node))
