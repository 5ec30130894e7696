"""The switch's ports backed by callto: SIP accounts from the directory, bindings in the database.

Both sit on the REGISTER path, which runs on the event loop: accounts are cached briefly (and dropped
when the directory changes), bindings are kept in memory and written to the database behind, in a
worker thread, in batches; a restart loses at most the last fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any

from sqlalchemy import delete, select

from callto.directory.service import DirectoryService
from callto.events.bus import Event
from callto.sip.models import SipBinding
from callto.sip.ports import Binding, SipAccount
from callto.store.database import Database

log = logging.getLogger(__name__)

ACCOUNT_TTL = 10.0
FLUSH_INTERVAL = 0.5


class DirectoryCredentials:
    """``Credentials`` for the registrar and the B2BUA, from the directory's devices."""

    def __init__(self, directory: DirectoryService, ttl: float = ACCOUNT_TTL) -> None:
        self.directory = directory
        self.ttl = ttl
        self._cache: dict[str, tuple[float, SipAccount | None, str]] = {}
        self._loaded: dict[str, tuple[SipAccount, str]] = {}

    def preload(self) -> int:
        """Load every account at once, so REGISTERs do not wait on the database (run off the loop).
        Any directory change drops the preloaded set; lookups then go to the database again."""
        loaded = {}
        for account in self.directory.all_sip_accounts():
            loaded[account.username] = (
                SipAccount(
                    username=account.username, password=account.password, device_id=str(account.device_id),
                    user_id=str(account.user_id), extension=account.extension or "",
                ),
                account.outbound,
            )
        self._loaded = loaded
        return len(loaded)

    def lookup(self, username: str) -> SipAccount | None:
        preloaded = self._loaded.get(username)
        if preloaded is not None:
            return preloaded[0]
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
        preloaded = self._loaded.get(username)
        if preloaded is not None:
            return preloaded[1]
        self.lookup(username)
        hit = self._cache.get(username)
        return hit[2] if hit else "internal"

    def on_event(self, event: Event) -> None:
        """Directory changes (device removed, user changed) must take effect at the next REGISTER."""
        if event.type.startswith(("device.", "directory.")) and event.type not in ("device.online", "device.offline"):
            self._cache.clear()
            self._loaded = {}


def _to_row(binding: Binding) -> dict[str, Any]:
    data = dataclasses.asdict(binding)
    data["path"] = list(binding.path)
    data["conn_id"] = None  # a connection does not survive a restart
    return data


def _from_row(data: dict[str, Any]) -> Binding:
    fields = {f.name for f in dataclasses.fields(Binding)}
    values = {k: v for k, v in data.items() if k in fields}
    values["path"] = tuple(values.get("path") or ())
    return Binding(**values)


class DatabaseBindingStore:
    """``BindingStore`` with write-behind to the ``sip_bindings`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: dict[tuple[str, str], Binding | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def load_all(self) -> list[Binding]:
        with self.db.session() as s:
            rows = s.scalars(select(SipBinding)).all()
            out = []
            for row in rows:
                try:
                    out.append(_from_row(row.data))
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
        return batch

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

    def _flush(self, batch: dict[tuple[str, str], Binding | None]) -> None:
        if not batch:
            return
        with self.db.session() as s:
            for (device_id, binding_id), binding in batch.items():
                s.execute(
                    delete(SipBinding).where(
                        SipBinding.device_id == device_id, SipBinding.binding_id == binding_id
                    )
                )
                if binding is not None:
                    s.add(
                        SipBinding(
                            device_id=device_id,
                            binding_id=binding_id[:512],
                            data=_to_row(binding),
                            expires_at=binding.expires_at,
                        )
                    )
