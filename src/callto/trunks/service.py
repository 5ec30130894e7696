"""Trunk storage: the rows of the ``Trunk`` model, their encrypted passwords and DIDs, and the
configurations handed to the switch.

The switch gets the enabled trunks through ``on_change`` whenever they change, and at start. The trunk
password is write-only: answers say whether one is set, never what it is. It is stored encrypted (the
directory's secret box, purpose ``trunk-password``: see :mod:`callto.store.secretbox`) and decrypted only
in the configurations handed to the switch, which needs it in clear for the provider's digest challenge;
:meth:`TrunkService.encrypt_stored_passwords` encrypts the rows stored in clear before that, at start.

DIDs are read by the one number parser (:mod:`callto.dialer.numbers`, as click-to-call and the phonebook
are): the same forms are accepted (``tel:``/``callto:``/``sip:`` links, separators, parentheses,
``(0)``) and refused with the same ``invalid-number`` error naming the row and the value. Each is stored
as typed and normalized (E.164 when it can be placed in the dial plan's country, else its digits); the
switch is handed every rendering a provider may send for it (E.164 and, for a home number, national).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from callto.dialer.numbers import number_forms, read_number
from callto.directory.service import DirectoryService
from callto.errors import Conflict, InvalidInput, NotFound
from callto.store.database import Database
from callto.store.secretbox import is_encrypted
from callto.trunks.models import Trunk
from callto.trunks.schemas import Did, TrunkIn, TrunkPatch

# Associated data of the stored trunk passwords (see callto.store.secretbox): a ciphertext copied into
# another kind of secret field does not decrypt there.
TRUNK_PASSWORD = "trunk-password"
# The dial plan (owned by the dialer) lives in this installation-wide setting; DIDs typed without a country
# code are read in its country.
DIALPLAN_SETTING = "dialplan"
DEFAULT_COUNTRY = "IT"

log = logging.getLogger(__name__)


class TrunkNotFound(NotFound):
    error = "trunk-not-found"


def trunk_config(row: Trunk, password: str, dids: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the switch needs, with ``password`` the row's password in clear (never sent to a client)."""
    return {
        "id": row.id, "name": row.name, "host": row.host, "port": row.port, "transport": row.transport,
        "username": row.username, "password": password, "register": row.register,
        "caller_id": row.caller_id, "dids": dids, "enabled": row.enabled,
    }


def stored_did(did: Did, country: str) -> dict[str, Any]:
    """What is stored for ``did``: its normalized number (E.164 when it can be placed, else the parser's
    digits with a leading '+' kept), the text as typed, and the user it rings."""
    forms = number_forms(did.number, country)
    return {"number": forms.e164 or read_number(did.number).number, "typed": did.number, "user_id": did.user_id}


def public_did(entry: dict[str, Any]) -> dict[str, Any]:
    # As typed (rows from before kept only the number): what the admin sees and sends back when editing.
    return {"number": entry.get("typed") or entry["number"], "user_id": entry["user_id"]}


def did_renderings(number: str, country: str) -> list[str]:
    """The forms a provider may put in the Request-URI for the stored DID ``number``: as stored, E.164, and
    the national digits when the number is of the dial plan's country (``0721405516``); the switch also
    matches ``00``/bare country code variants of each by itself."""
    forms = number_forms(number, country)
    out = [number]
    if forms.e164:
        out.append(forms.e164)
        if forms.national and number_forms(forms.national, country).e164 == forms.e164:
            out.append(forms.national)
    return list(dict.fromkeys(out))


class TrunkService:
    def __init__(
        self,
        db: Database,
        directory: DirectoryService,
        *,
        status: Callable[[], list[dict[str, Any]]] = list,
        listeners: Sequence[Callable[[list[dict[str, Any]]], None]] = (),
    ) -> None:
        self.db = db
        self.directory = directory
        # Who is told the enabled trunks' configurations after every change (the switch), and where the
        # live state of each trunk (registered, failing) comes from.
        self.listeners = tuple(listeners)
        self.status = status
        # The event loop the switch runs on (and the API is served from); set by the API's dependency.
        self.loop: asyncio.AbstractEventLoop | None = None
        # Made once per process, as the server starts: the place for the start-up migration, before the
        # switch is handed its first configurations.
        encrypted = self.encrypt_stored_passwords()
        if encrypted:
            log.info("trunk passwords stored in clear encrypted: %d", encrypted)

    def _seal(self, password: str) -> str:
        # No password stays empty: nothing to hide, and "no password set" stays visible as such.
        return self.directory.box.encrypt(password, TRUNK_PASSWORD) if password else ""

    def _reveal(self, stored: str) -> str:
        return self.directory.box.reveal(stored, TRUNK_PASSWORD) if stored else ""

    def country(self) -> str:
        """The dial plan's country: DIDs without a country code are read in it."""
        plan: Any = self.directory.get_setting(DIALPLAN_SETTING)
        value = plan.get("country") if isinstance(plan, dict) else None
        return value if isinstance(value, str) and value else DEFAULT_COUNTRY

    def configs(self) -> list[dict[str, Any]]:
        """The trunks as the switch needs them: the only place their passwords are decrypted. Each DID is
        listed in every rendering a provider may send, all ringing its user."""
        country = self.country()
        with self.db.session() as s:
            return [
                trunk_config(t, self._reveal(t.password), [
                    {"number": number, "user_id": d["user_id"]}
                    for d in t.dids or [] for number in did_renderings(d["number"], country)
                ])
                for t in s.scalars(select(Trunk).order_by(Trunk.id))
            ]

    def encrypt_stored_passwords(self) -> int:
        """The data migration to encryption at rest (run at every start; idempotent): trunk passwords
        still in clear are encrypted. An encrypted one that does not decrypt with this key stops the start
        here, by name, rather than as a trunk that fails its registration later."""
        with self.db.session() as s:
            rows = list(s.scalars(select(Trunk).where(Trunk.password != "")))
            sample = next((t.password for t in rows if is_encrypted(t.password)), None)
            if sample is not None:
                self._reveal(sample)
            clear = [t for t in rows if not is_encrypted(t.password)]
            for row in clear:
                row.password = self._seal(row.password)
        return len(clear)

    def _public(self, row: Trunk) -> dict[str, Any]:
        out = trunk_config(row, "", [public_did(d) for d in row.dids or []])  # no password decrypted, nor sent
        del out["password"]
        out["password_set"] = bool(row.password)
        # The switch names trunks by string id ("3"), the database by integer.
        live = next((t for t in self.status() if str(t.get("id")) == str(row.id)), {})
        out["registered"] = live.get("registered")
        out["last_error"] = live.get("last_error")
        return out

    def _stored_dids(self, dids: list[Did], s: Any, exclude: int | None = None) -> list[dict[str, Any]]:
        """``dids`` as stored, once checked: no number twice (in any of its spellings), every user exists,
        no number routed by another trunk already."""
        country = self.country()
        first: dict[str, int] = {}  # number key (E.164 digits, else digits) -> row it first appears on
        for index, did in enumerate(dids):
            key = number_forms(did.number, country).key
            if key in first:
                raise InvalidInput(
                    f"dids.{index}.number: the DID {did.number!r} is listed twice (also row {first[key]})",
                    details={"field": f"dids.{index}.number", "value": did.number, "index": index,
                             "same_as": first[key]},
                )
            first[key] = index
        for did in dids:
            self.directory.get_user(did.user_id)  # 404 user-not-found when it does not exist
        for other in s.scalars(select(Trunk)):
            if other.id == exclude:
                continue
            theirs = {number_forms(d["number"], country).key for d in other.dids or []}
            taken = [did.number for did in dids if number_forms(did.number, country).key in theirs]
            if taken:
                raise Conflict(
                    f"DID {taken[0]!r} already routes through trunk {other.name!r}",
                    error="did-taken", details={"dids": taken, "trunk": other.name},
                )
        return [stored_did(did, country) for did in dids]

    def _changed(self) -> None:
        configs = [c for c in self.configs() if c["enabled"]]
        loop = self.loop
        if loop is not None and loop.is_running() and not _runs(loop):
            # The admin API runs in worker threads, but the switch belongs to its event loop (it starts
            # tasks there): the listeners run on it, and the answer waits until they have.
            asyncio.run_coroutine_threadsafe(self._tell(configs), loop).result(timeout=30)
            return
        for listener in self.listeners:
            listener(configs)

    async def _tell(self, configs: list[dict[str, Any]]) -> None:
        for listener in self.listeners:
            listener(configs)

    def create(self, data: TrunkIn) -> dict[str, Any]:
        with self.db.session() as s:
            dids = self._stored_dids(data.dids, s)
            row = Trunk(**{**data.model_dump(by_alias=True), "dids": dids,
                           "transport": data.transport.value, "password": self._seal(data.password)})
            s.add(row)
            try:
                s.flush()
            except IntegrityError as exc:
                raise Conflict(f"a trunk named {data.name!r} exists", error="already-exists") from exc
            out = self._public(row)
        self._changed()
        return out

    def list(self) -> list[dict[str, Any]]:
        with self.db.session() as s:
            return [self._public(t) for t in s.scalars(select(Trunk).order_by(Trunk.id))]

    def get(self, trunk_id: int) -> dict[str, Any]:
        with self.db.session() as s:
            return self._public(self._row(s, trunk_id))

    @staticmethod
    def _row(s: Any, trunk_id: int) -> Trunk:
        row = s.get(Trunk, trunk_id)
        if row is None:
            raise TrunkNotFound(f"there is no trunk with id {trunk_id}", details={"trunk_id": trunk_id})
        return row  # type: ignore[no-any-return]

    def update(self, trunk_id: int, patch: TrunkPatch) -> dict[str, Any]:
        changes = patch.model_dump(exclude_unset=True, by_alias=True)
        with self.db.session() as s:
            row = self._row(s, trunk_id)
            if patch.dids is not None:
                changes["dids"] = self._stored_dids(patch.dids, s, exclude=trunk_id)
            if isinstance(changes.get("password"), str):
                changes["password"] = self._seal(changes["password"])
            for key, value in changes.items():
                if value is None and key != "dids":
                    raise InvalidInput(f"{key} cannot be null", details={"field": key})
                setattr(row, key, value.value if isinstance(value, StrEnum) else value)
            try:
                s.flush()
            except IntegrityError as exc:
                raise Conflict("a trunk with that name exists", error="already-exists") from exc
            out = self._public(row)
        self._changed()
        return out

    def delete(self, trunk_id: int) -> None:
        with self.db.session() as s:
            s.delete(self._row(s, trunk_id))
        self._changed()


def _runs(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop in this thread
        return False
