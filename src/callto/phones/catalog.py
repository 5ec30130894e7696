"""The desk phone catalog: vendor knowledge as data, loaded and validated from ``vendors/*.toml``.

One TOML file per vendor says which OUI prefixes it owns, which config files its phones request
(regexes with a ``mac`` group), the Jinja2 template and content type for each, the HTTP action URL
templates click-to-call uses (``call``, ``answer``, ``hangup``, ``hold``, ``dtmf``), the auth scheme
of the phone's web server, the auto-answer header variant, value maps (transport codes, language
names) and the models with their line key counts. Adding a vendor or a model means adding data and a
template, not Python. This module also owns MAC normalisation and OUI-based vendor suggestions, and
``match_request`` (which vendor and MAC a provisioning request is for).
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callto.phones.errors import CatalogError, InvalidMac, UnknownModel, UnknownVendor

ACTIONS = ("call", "answer", "hangup", "hold", "dtmf")
# Placeholders an action URL template may use; anything else is a catalog error at load time.
ACTION_PLACEHOLDERS = frozenset({"number", "digits", "keys", "password", "username"})
_MAC_RE = re.compile(r"^(?:[0-9a-f]{2}([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4})$", re.IGNORECASE)
_HEX_PREFIX_RE = re.compile(r"^[0-9A-F]{6,9}$")
_ID_RE = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
_MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


def normalize_mac(value: str) -> str:
    """``00:15:65:AA:BB:CC``, ``00-15-65-aa-bb-cc`` or ``001565aabbcc`` -> ``001565aabbcc``.

    Anything else (mixed separators, wrong length, non-hex, surrounding junk) is :class:`InvalidMac`.
    """
    if not isinstance(value, str):
        raise InvalidMac("A MAC address must be text such as 00:15:65:AA:BB:CC.")
    text = value.strip()
    if not _MAC_RE.fullmatch(text):
        raise InvalidMac(
            f"{text[:40]!r} is not a MAC address; use 00:15:65:AA:BB:CC, 00-15-65-aa-bb-cc or 001565aabbcc.",
            details={"mac": text[:40]},
        )
    mac = re.sub(r"[:-]", "", text).lower()
    if int(mac[:2], 16) & 1:
        raise InvalidMac(f"{text!r} is a multicast address, not the address of a phone.", details={"mac": text[:40]})
    return mac


def format_mac(mac: str, separator: str = ":", *, upper: bool = False) -> str:
    normalized = normalize_mac(mac)
    pairs = [normalized[i : i + 2] for i in range(0, 12, 2)]
    joined = separator.join(pairs)
    return joined.upper() if upper else joined


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConfigFileSpec(_Strict):
    """A file the vendor's phones request, and how callto answers it."""

    pattern: str
    template: str
    content_type: str
    secrets: bool

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"file pattern {value!r} does not compile: {exc}") from exc
        if not value.startswith("^") or not value.endswith("$"):
            raise ValueError(f"file pattern {value!r} must be anchored with ^ and $")
        unknown = set(compiled.groupindex) - {"mac", "model"}
        if unknown:
            raise ValueError(f"file pattern {value!r} has unknown groups {sorted(unknown)}")
        return value

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE)


class HttpSpec(_Strict):
    """How the phone's own web server authenticates and says yes."""

    auth: Literal["basic", "digest", "query", "none"]
    username: str = "admin"
    success_status: tuple[int, ...] = (200,)
    failure_body: str | None = None
    verified: bool = True

    @field_validator("failure_body")
    @classmethod
    def _failure_body_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value


class AutoAnswer(_Strict):
    """The header callto adds to its own INVITE so the phone answers at once (``{host}`` = callto)."""

    header: Literal["Alert-Info", "Call-Info"]
    value: str

    def render(self, host: str) -> tuple[str, str]:
        return self.header, self.value.replace("{host}", host)


class Model(_Strict):
    id: str
    name: str
    line_keys: int = Field(ge=0, le=200)
    accounts: int = Field(ge=1, le=64)
    product_id: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _model_id(cls, value: str) -> str:
        if not _MODEL_ID_RE.fullmatch(value):
            raise ValueError(f"model id {value!r} must be letters, digits, '_', '.' or '-'")
        return value


class Vendor(_Strict):
    id: str
    name: str
    oui: tuple[str, ...]
    config_format: Literal["cfg", "fanvil", "xml"]
    user_agent: str
    files: tuple[ConfigFileSpec, ...]
    http: HttpSpec
    actions: dict[str, Any] = Field(default_factory=dict)
    auto_answer: AutoAnswer
    defaults: dict[str, Any] = Field(default_factory=dict)
    maps: dict[str, dict[str, str]] = Field(default_factory=dict)
    models: tuple[Model, ...]

    @field_validator("id")
    @classmethod
    def _vendor_id(cls, value: str) -> str:
        if not _ID_RE.fullmatch(value):
            raise ValueError(f"vendor id {value!r} must be lowercase letters, digits, '_' or '-'")
        return value

    @field_validator("oui")
    @classmethod
    def _oui_hex(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for prefix in value:
            cleaned = re.sub(r"[:-]", "", prefix).upper()
            if not _HEX_PREFIX_RE.fullmatch(cleaned):
                raise ValueError(f"OUI prefix {prefix!r} must be 6 to 9 hex digits")
            out.append(cleaned)
        return tuple(out)

    @field_validator("user_agent")
    @classmethod
    def _ua_compiles(cls, value: str) -> str:
        re.compile(value)
        return value

    @model_validator(mode="after")
    def _check_actions_and_models(self) -> Vendor:
        for name, template in self.actions.items():
            if name == "keys":
                if not isinstance(template, dict) or not all(isinstance(v, str) for v in template.values()):
                    raise ValueError("actions.keys must map keypad characters to key names")
                continue
            if name not in ACTIONS:
                raise ValueError(f"unknown action {name!r}; known: {', '.join(ACTIONS)}")
            if not isinstance(template, str) or not template.startswith("/"):
                raise ValueError(f"action {name!r} must be a path starting with '/'")
            fields = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
            unknown = fields - ACTION_PLACEHOLDERS
            if unknown:
                raise ValueError(f"action {name!r} uses unknown placeholders {sorted(unknown)}")
        ids = [m.id for m in self.models]
        if len(ids) != len(set(ids)):
            raise ValueError("model ids must be unique within a vendor")
        if not self.models:
            raise ValueError("a vendor needs at least one model")
        return self

    def model(self, model_id: str) -> Model:
        for model in self.models:
            if model.id.lower() == model_id.lower():
                return model
        raise UnknownModel(
            f"{self.name} has no model {model_id!r}; known: {', '.join(m.id for m in self.models)}.",
            details={"vendor": self.id, "model": model_id},
        )

    def action_template(self, action: str) -> str | None:
        template = self.actions.get(action)
        return template if isinstance(template, str) else None

    @property
    def keypad_map(self) -> dict[str, str]:
        keys = self.actions.get("keys")
        return dict(keys) if isinstance(keys, dict) else {}

    def to_json(self) -> dict[str, Any]:
        """The public view for ``GET /api/v1/admin/phone-models``: no templates, no regexes."""
        return {
            "id": self.id,
            "name": self.name,
            "oui": list(self.oui),
            "config_format": self.config_format,
            "actions": sorted(a for a in ACTIONS if self.action_template(a)),
            "actions_verified": self.http.verified,
            "auto_answer": {"header": self.auto_answer.header, "value": self.auto_answer.value},
            "models": [
                {"id": m.id, "name": m.name, "line_keys": m.line_keys, "accounts": m.accounts} for m in self.models
            ],
        }


@dataclass(frozen=True, slots=True)
class FileMatch:
    """What a provisioning request is: vendor, MAC (when the name or User-Agent carries one), spec."""

    vendor: Vendor
    mac: str | None
    spec: ConfigFileSpec
    model_hint: str | None = None


class Catalog:
    """All vendors, indexed. Immutable after construction."""

    def __init__(self, vendors: Iterable[Vendor]) -> None:
        self._vendors: dict[str, Vendor] = {}
        for vendor in vendors:
            if vendor.id in self._vendors:
                raise CatalogError(f"vendor {vendor.id!r} is defined twice")
            self._vendors[vendor.id] = vendor
        # Longest prefix first, so a Gigaset sub-block of Snom's 000413 wins over Snom.
        self._oui: list[tuple[str, str]] = sorted(
            ((prefix, v.id) for v in self._vendors.values() for prefix in v.oui),
            key=lambda item: -len(item[0]),
        )

    @property
    def vendors(self) -> tuple[Vendor, ...]:
        return tuple(self._vendors.values())

    def vendor(self, vendor_id: str) -> Vendor:
        try:
            return self._vendors[vendor_id.lower()]
        except KeyError:
            raise UnknownVendor(
                f"Unknown phone vendor {vendor_id!r}; known: {', '.join(sorted(self._vendors))}.",
                details={"vendor": vendor_id},
            ) from None

    def model(self, vendor_id: str, model_id: str) -> Model:
        return self.vendor(vendor_id).model(model_id)

    def suggest_vendors(self, mac: str) -> list[Vendor]:
        """Vendors whose OUI prefix matches ``mac``, most specific prefix first."""
        upper = normalize_mac(mac).upper()
        seen: list[Vendor] = []
        longest = 0
        for prefix, vendor_id in self._oui:
            if upper.startswith(prefix) and len(prefix) >= longest:
                longest = len(prefix)
                vendor = self._vendors[vendor_id]
                if vendor not in seen:
                    seen.append(vendor)
        return seen

    def suggest_vendor(self, mac: str) -> Vendor | None:
        """The vendor a MAC's OUI points to, or None when unknown or ambiguous."""
        found = self.suggest_vendors(mac)
        return found[0] if len(found) == 1 else None

    def match_file(self, file_name: str, user_agent: str | None = None) -> FileMatch | None:
        """Which vendor (and MAC) a requested config file is for, or None when nobody claims it.

        Several vendors may claim one name (``<mac>.xml`` is both Snom and Gigaset); the User-Agent,
        then the MAC's OUI, decide. A name matching nothing, or still ambiguous, is None.
        """
        if not isinstance(file_name, str) or "/" in file_name or len(file_name) > 128:
            return None
        candidates: list[FileMatch] = []
        for vendor in self._vendors.values():
            for spec in vendor.files:
                found = spec.regex.fullmatch(file_name)
                if not found:
                    continue
                groups = found.groupdict()
                mac = groups.get("mac")
                candidates.append(
                    FileMatch(
                        vendor=vendor,
                        mac=normalize_mac(mac) if mac else None,
                        spec=spec,
                        model_hint=groups.get("model"),
                    )
                )
                break
        if not candidates:
            return None
        ua_vendor, ua_mac, ua_model = self._from_user_agent(user_agent)
        if len(candidates) > 1 and ua_vendor is not None:
            candidates = [c for c in candidates if c.vendor.id == ua_vendor]
        if len(candidates) > 1:
            macs = {c.mac for c in candidates if c.mac}
            if len(macs) == 1:
                oui_vendor = self.suggest_vendor(macs.pop())
                if oui_vendor is not None:
                    candidates = [c for c in candidates if c.vendor.id == oui_vendor.id]
        if len(candidates) != 1:
            return None
        match = candidates[0]
        if match.mac is None and ua_mac is not None and ua_vendor == match.vendor.id:
            match = FileMatch(vendor=match.vendor, mac=ua_mac, spec=match.spec, model_hint=match.model_hint)
        if match.model_hint is None and ua_model is not None and ua_vendor == match.vendor.id:
            match = FileMatch(vendor=match.vendor, mac=match.mac, spec=match.spec, model_hint=ua_model)
        return match

    def match_request(self, file_name: str, user_agent: str | None = None) -> tuple[str, str] | None:
        """``(vendor_id, mac)`` for a provisioning request, or None when vendor or MAC is unknown."""
        match = self.match_file(file_name, user_agent)
        if match is None or match.mac is None:
            return None
        return match.vendor.id, match.mac

    def parse_user_agent(self, user_agent: str | None) -> dict[str, str | None]:
        """Vendor, model, firmware and MAC a phone announces in its User-Agent (for the phone list)."""
        vendor, mac, model = self._from_user_agent(user_agent)
        firmware = None
        if vendor is not None and user_agent:
            found = re.search(self._vendors[vendor].user_agent, user_agent)
            firmware = found.groupdict().get("firmware") if found else None
        return {"vendor": vendor, "model": model, "firmware": firmware, "mac": mac}

    def _from_user_agent(self, user_agent: str | None) -> tuple[str | None, str | None, str | None]:
        if not user_agent or len(user_agent) > 512:
            return None, None, None
        for vendor in self._vendors.values():
            found = re.search(vendor.user_agent, user_agent)
            if found:
                groups = found.groupdict()
                mac = None
                if groups.get("mac"):
                    try:
                        mac = normalize_mac(groups["mac"])
                    except InvalidMac:
                        mac = None
                return vendor.id, mac, groups.get("model")
        return None, None, None

    def to_json(self) -> list[dict[str, Any]]:
        return [v.to_json() for v in self._vendors.values()]


def load_vendor(text: str, source: str = "<string>") -> Vendor:
    """Parse and validate one vendor file; any problem is a :class:`CatalogError` naming the file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return Vendor.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise CatalogError(f"{source}: {problems}", details={"file": source}) from exc


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The catalog shipped in ``callto/phones/vendors``; loaded and validated once."""
    vendors = []
    folder = resources.files("callto.phones").joinpath("vendors")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            vendors.append(load_vendor(entry.read_text(encoding="utf-8"), source=entry.name))
    templates = resources.files("callto.phones").joinpath("templates")
    for vendor in vendors:
        for spec in vendor.files:
            if not templates.joinpath(spec.template).is_file():
                raise CatalogError(f"{vendor.id}: template {spec.template!r} does not exist")
    return Catalog(vendors)


def suggest_vendor(mac: str) -> str | None:
    """The vendor id a MAC's OUI suggests, or None (unknown or shared prefix)."""
    vendor = default_catalog().suggest_vendor(mac)
    return vendor.id if vendor else None


def match_request(file_name: str, user_agent: str | None = None) -> tuple[str, str] | None:
    """``(vendor_id, mac)`` for a file a phone asked for, or None; see :meth:`Catalog.match_request`."""
    return default_catalog().match_request(file_name, user_agent)
