"""What the trunk admin API accepts: a trunk (host, transport, credentials, caller id) and its DIDs,
checked when they are received, so a trunk that could never connect is refused when saved; and what it
answers (`TrunkOut`: no password, only whether one is set, and the live registration state)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from callto.api.numbers import checked_number
from callto.sip.trunk import ip_literal

_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]{1,63})*")


def _valid_host(value: str) -> bool:
    """A real IP address (IPv6 optionally in brackets) or a DNS name whose labels fit (63 characters at
    most): anything else would make the resolver fail when the trunks are applied, for every trunk."""
    return ip_literal(value) is not None or _NAME.fullmatch(value) is not None


class Transport(StrEnum):
    udp = "udp"
    tcp = "tcp"
    tls = "tls"


Name = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")]


DidNumber = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(checked_number)]
Token = Annotated[str, StringConstraints(max_length=128, pattern=r"^[^\x00-\x1f\x7f\s\"]*$")]


def _trunk_transport(value: Transport) -> Transport:
    # The switch opens connections to a provider over UDP and TCP only; TLS is offered to phones (the
    # server side), not yet to trunks. Refused when saved rather than a trunk that never connects.
    if value is Transport.tls:
        raise ValueError("trunks cannot use TLS yet: use udp or tcp")
    return value


class Did(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: DidNumber = Field(description="as typed: '+39 0721 405516', '(0721) 405-516', 'tel:+390721405516'")
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


class DidOut(BaseModel):
    number: str = Field(description="as the admin typed it")
    user_id: int


class TrunkOut(BaseModel):
    """A trunk as the admin API shows it: never the password, only whether one is set."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    name: str
    host: str
    port: int
    transport: Transport
    username: str
    register_: bool = Field(alias="register")
    caller_id: str
    dids: list[DidOut]
    enabled: bool
    password_set: bool
    registered: bool | None = Field(description="null while the switch has no news of the trunk")
    last_error: str | None
