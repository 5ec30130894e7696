"""Render a desk phone's config file from its vendor's Jinja2 template.

Variables are inherited ``defaults -> vendor defaults -> model -> phone`` (deep merge) and then
validated once (:class:`PhoneSettings`): hosts are hosts, ports are ports, and no value may carry a
control character, so a display name can never inject a line into a ``.cfg`` file. XML templates are
rendered with autoescaping; ``.cfg`` templates pass every value through the ``cfg`` filter, which
refuses CR/LF as a second line of defence. The provisioning package calls :func:`render_config`.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callto.phones.catalog import Catalog, Model, Vendor, default_catalog, format_mac, normalize_mac
from callto.phones.errors import InvalidPhoneConfig, UnknownConfigFile

GLOBAL_DEFAULTS: dict[str, Any] = {
    "account": {"port": 5060, "transport": "udp"},
    "time_zone": "UTC",
    "language": "en",
    "ntp_server": "pool.ntp.org",
    "line_keys": [],
    "action_uri_allow": [],
}

_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]{1,63})*$")
_URL_RE = re.compile(r"^https?://[\x21-\x7e]{1,500}$")
_SAFE_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+\-!$()*,=]{1,64}$")


def _no_control(value: str, field: str) -> str:
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            raise ValueError(f"{field} contains a control character (U+{ord(char):04X})")
    return value


def _host(value: str, field: str) -> str:
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        pass
    if not _HOST_RE.fullmatch(value):
        raise ValueError(f"{field} {value[:40]!r} is not a host name or IP address")
    return value.lower()


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SipAccountSettings(_Settings):
    server: str
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "udp"
    username: str = Field(min_length=1, max_length=64)
    auth_username: str | None = Field(default=None, max_length=64)
    password: str = Field(default="", max_length=128)
    display_name: str = Field(default="", max_length=64)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        return _host(value, "account.server")

    @field_validator("username", "auth_username")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        # These land in SIP URIs and From headers on the phone: keep to RFC 3261 unreserved-ish.
        if value is not None and not _SAFE_TOKEN_RE.fullmatch(value):
            raise ValueError("SIP user names may use letters, digits and . _ ~ + - ! $ ( ) * , = only")
        return value

    @field_validator("password", "display_name")
    @classmethod
    def _text(cls, value: str) -> str:
        return _no_control(value, "account value")


class LineKeySettings(_Settings):
    type: Literal["line", "blf", "speed_dial"]
    value: str = Field(default="", max_length=64)
    label: str = Field(default="", max_length=32)

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        if value and not re.fullmatch(r"[0-9*#+]{1,32}", value):
            raise ValueError("line key values are extension or phone numbers (digits, *, #, +)")
        return value

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        return _no_control(value, "line key label")


class PhoneSettings(_Settings):
    """Every variable a template may use, validated once after inheritance."""

    mac: str
    account: SipAccountSettings
    time_zone: str = "UTC"
    language: str = Field(default="en", pattern=r"^[a-z]{2}$")
    ntp_server: str = "pool.ntp.org"
    admin_password: str = Field(default="", max_length=64)
    line_keys: tuple[LineKeySettings, ...] = ()
    phonebook_url: str | None = None
    provisioning_url: str | None = None
    callto_address: str | None = None
    action_uri_allow: tuple[str, ...] = ()

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        return normalize_mac(value)

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"time_zone {value[:40]!r} is not an IANA time zone such as Europe/Rome") from exc
        return value

    @field_validator("ntp_server", "callto_address")
    @classmethod
    def _hosts(cls, value: str | None) -> str | None:
        return None if value is None else _host(value, "host")

    @field_validator("admin_password")
    @classmethod
    def _admin_password(cls, value: str) -> str:
        return _no_control(value, "admin_password")

    @field_validator("phonebook_url", "provisioning_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not _URL_RE.fullmatch(value):
            raise ValueError("URLs must be http(s):// and printable ASCII without spaces")
        return value

    @field_validator("action_uri_allow")
    @classmethod
    def _allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for item in value:
            try:
                out.append(str(ipaddress.ip_address(item)))
            except ValueError as exc:
                raise ValueError(f"action_uri_allow entry {item[:40]!r} must be an IP address") from exc
        return tuple(out)

    @model_validator(mode="after")
    def _callto_allowed(self) -> PhoneSettings:
        # The address callto's phone_http requests come from must always be in the allow list.
        if self.callto_address and self.callto_address not in self.action_uri_allow:
            try:
                ipaddress.ip_address(self.callto_address)
            except ValueError:
                return self
            object.__setattr__(self, "action_uri_allow", (*self.action_uri_allow, self.callto_address))
        return self


@dataclass(frozen=True, slots=True)
class RenderedConfig:
    content: str
    content_type: str
    file_name: str
    vendor: str
    model: str
    contains_secrets: bool


def deep_merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Later layers win; nested tables merge key by key; lists are replaced, not concatenated."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = deep_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value) if isinstance(value, dict | list) else value
    return merged


def resolve_variables(
    vendor: Vendor, model: Model, phone: Mapping[str, Any], *, include_secrets: bool = True
) -> PhoneSettings:
    """Inherit ``defaults -> vendor -> model -> phone`` and validate the result."""
    merged = deep_merge(GLOBAL_DEFAULTS, vendor.defaults, model.variables, phone)
    if not include_secrets:
        merged["admin_password"] = ""
        if isinstance(merged.get("account"), dict):
            merged["account"] = {**merged["account"], "password": ""}
    try:
        return PhoneSettings.model_validate(merged)
    except ValidationError as exc:
        fields = {
            ".".join(str(p) for p in err["loc"]) or "variables": str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        }
        summary = "; ".join(f"{k}: {v}" for k, v in fields.items())
        raise InvalidPhoneConfig(f"Cannot build the phone config: {summary}", details={"fields": fields}) from None


def _cfg_value(value: Any) -> str:
    text = "" if value is None else str(value)
    if any(ch in text for ch in "\r\n\x00\x0b\x0c\x85\u2028\u2029"):
        raise InvalidPhoneConfig("A value for a .cfg file contains a line break.", details={"value": text[:40]})
    return text


@lru_cache(maxsize=2)
def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("callto.phones", "templates"),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cfg"] = _cfg_value
    return env


def _tz_info(name: str) -> dict[str, str]:
    zone = zoneinfo.ZoneInfo(name)
    # Standard (winter) offset: what phones without a DST rule of their own should be told.
    january = datetime(datetime.now().year, 1, 15, 12, tzinfo=zone)
    offset = january.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    offset_text = f"{sign}{hours}" if rest == 0 else f"{sign}{hours}:{rest:02d}"
    return {
        "name": name,
        "offset": offset_text,
        "offset_seconds": str(minutes * 60),
        "posix": _posix_tz(name),
    }


@lru_cache(maxsize=64)
def _posix_tz(name: str) -> str:
    """The POSIX TZ rule string (``CET-1CEST,M3.5.0,M10.5.0/3``) from the TZif footer, or ``UTC0``."""
    for base in zoneinfo.TZPATH:
        try:
            with open(f"{base}/{name}", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        if data[:4] != b"TZif":
            continue
        footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            text = footer.decode("ascii")
        except UnicodeDecodeError:
            break
        if re.fullmatch(r"[A-Za-z0-9<>+\-,./:]{1,64}", text):
            return text
        break
    return "UTC0"


def build_context(vendor: Vendor, model: Model, settings: PhoneSettings, *, secrets: bool) -> dict[str, Any]:
    account = settings.account
    transport_map = vendor.maps.get("transport", {})
    language_map = vendor.maps.get("language", {})
    keys = list(settings.line_keys)[: model.line_keys]
    return {
        "vendor": vendor,
        "model": model,
        "mac": settings.mac,
        "mac_upper": settings.mac.upper(),
        "mac_colon": format_mac(settings.mac),
        "account": {
            "server": account.server,
            "port": account.port,
            "transport": account.transport,
            "transport_code": transport_map.get(account.transport, account.transport),
            "username": account.username,
            "auth_username": account.auth_username or account.username,
            "password": account.password if secrets else "",
            "display_name": account.display_name or account.username,
        },
        "admin_password": settings.admin_password if secrets else "",
        "secrets": secrets,
        "tz": _tz_info(settings.time_zone),
        "language": settings.language,
        "lang": language_map.get(settings.language, language_map.get("en", settings.language)),
        "ntp_server": settings.ntp_server,
        "line_keys": keys,
        "phonebook_url": settings.phonebook_url,
        "provisioning_url": settings.provisioning_url,
        "callto_address": settings.callto_address,
        "action_uri_allow": list(settings.action_uri_allow),
    }


def render_config(
    vendor: str,
    model: str,
    file_name: str,
    variables: Mapping[str, Any],
    *,
    include_secrets: bool = True,
    catalog: Catalog | None = None,
) -> RenderedConfig:
    """Render the file ``file_name`` a phone of ``vendor``/``model`` asked for.

    ``variables`` are the phone-level values (at least ``mac`` and ``account``); they override the
    model's and the vendor's. Secrets (SIP and web passwords) are written only when the file kind
    allows them *and* ``include_secrets`` is true (the provisioning package passes False for
    tokenless requests). A file name that names a different MAC than ``variables['mac']`` is refused.
    """
    cat = catalog or default_catalog()
    vendor_obj = cat.vendor(vendor)
    model_obj = vendor_obj.model(model)
    spec = None
    for candidate in vendor_obj.files:
        found = candidate.regex.fullmatch(file_name)
        if found:
            spec = candidate
            break
    if spec is None or found is None:
        raise UnknownConfigFile(
            f"{vendor_obj.name} phones do not request a file named {file_name[:64]!r}.",
            details={"vendor": vendor_obj.id, "file": file_name[:64]},
        )
    secrets = spec.secrets and include_secrets
    settings = resolve_variables(vendor_obj, model_obj, variables, include_secrets=secrets)
    named_mac = found.groupdict().get("mac")
    if named_mac and normalize_mac(named_mac) != settings.mac:
        raise UnknownConfigFile(
            "The requested file belongs to another phone.",
            details={"vendor": vendor_obj.id, "file": file_name[:64]},
        )
    autoescape = vendor_obj.config_format == "xml"
    template = _environment(autoescape).get_template(spec.template)
    try:
        content = template.render(build_context(vendor_obj, model_obj, settings, secrets=secrets))
    except jinja2.UndefinedError as exc:
        raise InvalidPhoneConfig(f"The {spec.template} template needs a value: {exc}") from exc
    return RenderedConfig(
        content=content,
        content_type=spec.content_type,
        file_name=file_name,
        vendor=vendor_obj.id,
        model=model_obj.id,
        contains_secrets=secrets,
    )
