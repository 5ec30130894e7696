"""Administration of trunks (the provider connections): storage, validation and the admin API.

The switch gets the enabled trunks through ``on_change`` whenever they change, and at start. The trunk
password is write-only: answers say whether one is set, never what it is. It is stored encrypted (the
directory's secret box, purpose ``trunk-password``: see :mod:`callto.store.secretbox`) and decrypted only
in the configurations handed to the switch, which needs it in clear for the provider's digest challenge;
:meth:`TrunkService.encrypt_stored_passwords` encrypts the rows stored in clear before that, at start.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from callto.api.deps import Admin
from callto.directory.service import DirectoryService
from callto.errors import Conflict, InvalidInput, NotFound
from callto.sip.models import Trunk
from callto.store.database import Database
from callto.store.secretbox import is_encrypted

# Associated data of the stored trunk passwords (see callto.store.secretbox): a ciphertext copied into
# another kind of secret field does not decrypt there.
TRUNK_PASSWORD = "trunk-password"

log = logging.getLogger(__name__)
_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]{1,63})*")


def _valid_host(value: str) -> bool:
    """A real IP address (IPv6 optionally in brackets) or a DNS name whose labels fit (63 characters at
    most): anything else would make the resolver fail when the trunks are applied, for every trunk."""
    try:
        ipaddress.ip_address(value.strip("[]"))
        return True
    except ValueError:
        return _NAME.fullmatch(value) is not None


class TrunkNotFound(NotFound):
    error = "trunk-not-found"


class Transport(StrEnum):
    udp = "udp"
    tcp = "tcp"
    tls = "tls"


Name = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")]
Digits = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9]{2,20}$")]
Token = Annotated[str, StringConstraints(max_length=128, pattern=r"^[^\x00-\x1f\x7f\s\"]*$")]


def _trunk_transport(value: Transport) -> Transport:
    # The switch opens connections to a provider over UDP and TCP only; TLS is offered to phones (the
    # server side), not yet to trunks. Refused when saved rather than a trunk that never connects.
    if value is Transport.tls:
        raise ValueError("trunks cannot use TLS yet: use udp or tcp")
    return value


class Did(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: Digits
    user_id: int


class TrunkIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Name
    host: Annotated[str, StringConstraints(strip_whitespace=True, max_length=253)]
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Transport = Transport.udp
    username: Token = ""
    password: Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    register_: bool = Field(default=False, alias="register", description="register with the provider")
    caller_id: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^(\+?[0-9]{2,20})?$")] = ""
    dids: list[Did] = Field(default_factory=list, max_length=1000)
    enabled: bool = True

    @field_validator("transport")
    @classmethod
    def _transport(cls, value: Transport) -> Transport:
        return _trunk_transport(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _valid_host(value):
            raise ValueError("must be a host name or an IP address")
        return value


class TrunkPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Name | None = None
    host: Annotated[str, StringConstraints(strip_whitespace=True, max_length=253)] | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    transport: Transport | None = None
    username: Token | None = None
    password: Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None
    register_: bool | None = Field(default=None, alias="register")
    caller_id: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^(\+?[0-9]{2,20})?$")] | None = None
    dids: list[Did] | None = None
    enabled: bool | None = None

    @field_validator("transport")
    @classmethod
    def _transport(cls, value: Transport | None) -> Transport | None:
        return None if value is None else _trunk_transport(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not _valid_host(value):
            raise ValueError("must be a host name or an IP address")
        return value


def trunk_config(row: Trunk, password: str) -> dict[str, Any]:
    """Everything the switch needs, with ``password`` the row's password in clear (never sent to a client)."""
    return {
        "id": row.id, "name": row.name, "host": row.host, "port": row.port, "transport": row.transport,
        "username": row.username, "password": password, "register": row.register,
        "caller_id": row.caller_id, "dids": list(row.dids or []), "enabled": row.enabled,
    }


class TrunkService:
    def __init__(self, db: Database, directory: DirectoryService) -> None:
        self.db = db
        self.directory = directory
        self.listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self.status: Callable[[], list[dict[str, Any]]] = list
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

    def configs(self) -> list[dict[str, Any]]:
        """The trunks as the switch needs them: the only place their passwords are decrypted."""
        with self.db.session() as s:
            return [trunk_config(t, self._reveal(t.password)) for t in s.scalars(select(Trunk).order_by(Trunk.id))]

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
        out = trunk_config(row, "")  # the password is never decrypted for an answer, nor sent
        del out["password"]
        out["password_set"] = bool(row.password)
        # The switch names trunks by string id ("3"), the database by integer.
        live = next((t for t in self.status() if str(t.get("id")) == str(row.id)), {})
        out["registered"] = live.get("registered")
        out["last_error"] = live.get("last_error")
        return out

    def _check_dids(self, dids: list[Did], s: Any, exclude: int | None = None) -> None:
        numbers = [d.number for d in dids]
        if len(set(numbers)) != len(numbers):
            raise InvalidInput("a DID is listed twice", details={"field": "dids"})
        for did in dids:
            self.directory.get_user(did.user_id)  # 404 user-not-found when it does not exist
        for other in s.scalars(select(Trunk)):
            if other.id == exclude:
                continue
            taken = {d["number"] for d in other.dids or []} & set(numbers)
            if taken:
                raise Conflict(
                    f"DID {sorted(taken)[0]} already routes through trunk {other.name!r}",
                    error="did-taken", details={"dids": sorted(taken)},
                )

    def _changed(self) -> None:
        configs = [c for c in self.configs() if c["enabled"]]
        for listener in self.listeners:
            listener(configs)

    def create(self, data: TrunkIn) -> dict[str, Any]:
        with self.db.session() as s:
            self._check_dids(data.dids, s)
            row = Trunk(**{**data.model_dump(by_alias=True), "dids": [d.model_dump() for d in data.dids],
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
                self._check_dids(patch.dids, s, exclude=trunk_id)
                changes["dids"] = [d.model_dump() for d in patch.dids]
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


router = APIRouter(prefix="/api/v1/admin/trunks", tags=["admin"])


def _trunks(request: Request) -> TrunkService:
    service: TrunkService = request.app.state.trunks
    return service


Trunks = Annotated[TrunkService, Depends(_trunks)]


@router.post("", status_code=201)
def create_trunk(body: TrunkIn, _: Admin, trunks: Trunks) -> dict[str, Any]:
    return trunks.create(body)


@router.get("")
def list_trunks(_: Admin, trunks: Trunks) -> list[dict[str, Any]]:
    return trunks.list()


@router.get("/{trunk_id}")
def get_trunk(trunk_id: int, _: Admin, trunks: Trunks) -> dict[str, Any]:
    return trunks.get(trunk_id)


@router.patch("/{trunk_id}")
def patch_trunk(trunk_id: int, body: TrunkPatch, _: Admin, trunks: Trunks) -> dict[str, Any]:
    return trunks.update(trunk_id, body)


@router.delete("/{trunk_id}", status_code=204)
def delete_trunk(trunk_id: int, _: Admin, trunks: Trunks) -> Response:
    trunks.delete(trunk_id)
    return Response(status_code=204)
