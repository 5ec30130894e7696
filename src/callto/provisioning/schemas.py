"""Request and response models of the provisioning admin API; MACs and values are checked at the edge."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from callto.phones.catalog import default_catalog, normalize_mac

Strategy = Literal["phone_http", "lan_relay", "originate"]


def _mac(value: str) -> str:
    # InvalidMac is a CalltoError (422 invalid-mac); pydantic lets it through to the error handler.
    return normalize_mac(value)


def _time_zone(value: str) -> str:
    # Checked when saved, against the same tz database the renderer uses: never first at the phone's fetch.
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"time_zone {value[:40]!r} is not an IANA time zone such as Europe/Rome") from exc
    return value


def known_languages() -> frozenset[str]:
    """Languages some vendor template can show (the catalog's language maps)."""
    return frozenset(code for v in default_catalog().vendors for code in v.maps.get("language", {}))


def _language(value: str) -> str:
    known = known_languages()
    if value not in known:
        raise ValueError(f"language {value!r} is not one phones can show; use one of {', '.join(sorted(known))}")
    return value


Mac = Annotated[str, StringConstraints(max_length=64), AfterValidator(_mac)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]
ModelId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
VendorId = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=32)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineKey(Strict):
    type: Literal["line", "blf", "speed_dial"]
    value: Annotated[str, StringConstraints(pattern=r"^[0-9*#+]{0,32}$")] = ""
    label: Label = ""


class PhoneVariables(Strict):
    """Per-phone template values (the last layer after defaults, vendor and model)."""

    time_zone: Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)] | None = None
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$"), AfterValidator(_language)] | None = None
    sip_transport: Literal["udp", "tcp", "tls"] | None = None
    line_keys: list[LineKey] | None = Field(default=None, max_length=200)


class PhoneCreate(Strict):
    mac: Mac = Field(description="00:15:65:AA:BB:CC, 00-15-65-aa-bb-cc or 001565aabbcc")
    model: ModelId
    vendor: VendorId | None = Field(default=None, description="default: suggested from the MAC's OUI")
    user_id: int | None = Field(default=None, description="assign to this user (creates their desk phone device)")
    device_id: int | None = Field(default=None, description="link this existing deskphone device of the user")
    label: Label = ""
    variables: PhoneVariables | None = None
    strategies: list[Strategy] | None = Field(default=None, description="click-to-call order for this phone")
    http_port: int | None = Field(default=None, ge=1, le=65535, description="the phone's web server port")
    http_scheme: Literal["http", "https"] | None = None
    bootstrap: bool = Field(default=False, description="also issue a one-time bootstrap provisioning URL")


class PhonePatch(Strict):
    """Only the fields sent change; ``user_id: null`` unassigns (the phone's SIP device is deleted)."""

    mac: Mac | None = None
    model: ModelId | None = None
    vendor: VendorId | None = None
    user_id: int | None = None
    device_id: int | None = None
    label: Label | None = None
    variables: PhoneVariables | None = None
    strategies: list[Strategy] | None = None
    http_port: int | None = Field(default=None, ge=1, le=65535)
    http_scheme: Literal["http", "https"] | None = None
    rotate_token: bool = Field(default=False, description="issue a new provisioning token (the old one stops)")


class RegistrationOut(BaseModel):
    registered: bool
    address: str | None = None
    user_agent: str | None = None
    since: str | None = None


class PhoneOut(BaseModel):
    id: int
    mac: str
    mac_display: str
    vendor: str
    model: str
    label: str
    user_id: int | None
    device_id: int | None
    provisioning_url: str
    provisioning_url_https: str
    bootstrap_url: str | None
    bootstrap_expires_at: datetime | None
    registration: RegistrationOut
    last_fetch_at: datetime | None
    last_fetch_ip: str | None
    last_user_agent: str | None
    last_file: str | None
    firmware: str | None
    last_reload_at: datetime | None
    last_reload_outcome: str | None
    variables: dict[str, Any]
    strategies: list[str] | None
    http_port: int | None
    http_scheme: str | None
    created_at: datetime


class FetchOut(BaseModel):
    at: datetime
    ip: str
    user_agent: str
    file: str
    via: str
    status: int


class BootstrapIn(Strict):
    hours: int = Field(default=24, ge=1, le=24 * 30, description="how long the bootstrap URL stays valid")


class BootstrapOut(BaseModel):
    bootstrap_url: str
    bootstrap_expires_at: datetime


class ReloadOut(BaseModel):
    sent: bool
    outcome: str
    message: str


class SuggestOut(BaseModel):
    mac: str
    vendor: str | None
    candidates: list[str]


class SipTransportOut(BaseModel):
    transport: Literal["udp", "tcp", "tls", "ws", "wss"]
    port: int


class SipServerOut(BaseModel):
    """What a person types into a phone configured by hand, besides the device's username and password."""

    server: str
    domain: str
    transports: list[SipTransportOut]


class ModelOut(BaseModel):
    id: str
    name: str
    line_keys: int
    accounts: int


class AutoAnswerOut(BaseModel):
    header: str
    value: str


class VendorOut(BaseModel):
    """A vendor of the catalog as ``GET /admin/phone-models`` lists it: no templates, no regexes."""

    id: str
    name: str
    oui: list[str]
    config_format: str
    actions: list[str] = Field(description="the click-to-call actions the phone's web interface offers")
    actions_verified: bool
    auto_answer: AutoAnswerOut
    models: list[ModelOut]
