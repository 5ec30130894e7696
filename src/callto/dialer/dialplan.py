"""The dial plan: how a clicked number becomes the digits the switch sends to the trunk.

Owns the :class:`DialPlan` settings model (country, outbound prefix, international prefix, extension
pattern, emergency numbers) and the defaults derived from ``phonenumbers`` metadata for a country.
Pure: no I/O. ``GET/PUT /api/v1/admin/settings/dialplan`` stores and returns exactly this model.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callto.errors import CalltoError

DEFAULT_EXTENSION_PATTERN = r"^[1-9][0-9]{1,4}$"

_PREFIX_RE = re.compile(r"^[0-9]{0,4}$")
_EMERGENCY_RE = re.compile(r"^[0-9]{2,6}$")


class InvalidDialPlan(CalltoError):
    """A dial plan setting is not usable; ``details['fields']`` says which and why."""

    status = 422
    error = "invalid-dial-plan"


@lru_cache(maxsize=64)
def default_international_prefix(country: str) -> str:
    """The prefix a caller in ``country`` dials before a country code (IT ``00``, US ``011``).

    phonenumbers stores a regex for some regions (Brazil's carrier codes, Australia's several
    prefixes); then its preferred prefix is used, else ``00``, which the admin can override.
    """
    meta = PhoneMetadata.metadata_for_region(country.upper())
    if meta is None:
        return "00"
    preferred = meta.preferred_international_prefix
    if preferred and preferred.isdigit():
        return str(preferred)
    prefix = meta.international_prefix
    if prefix and prefix.isdigit():
        return str(prefix)
    return "00"


@lru_cache(maxsize=64)
def default_emergency_numbers(country: str) -> tuple[str, ...]:
    """Emergency numbers of ``country`` from phonenumbers' short-number metadata (IT: 112 113 115 118).

    The metadata keeps them as a regex; enumerating every 2-4 digit string against it (11,110 checks,
    cached) turns it into the explicit list an admin sees and can edit.
    """
    short = PhoneMetadata.short_metadata_for_region(country.upper())
    pattern = None
    if short is not None and short.emergency is not None:
        pattern = short.emergency.national_number_pattern
    if not pattern:
        return ("112",)
    compiled = re.compile(pattern)
    found: list[str] = []
    for length in (2, 3, 4):
        for value in range(10**length):
            candidate = str(value).zfill(length)
            if compiled.fullmatch(candidate):
                found.append(candidate)
    return tuple(found) or ("112",)


class DialPlan(BaseModel):
    """Dial plan settings; missing prefixes and emergency numbers default from the country."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    country: str = Field(default="IT", description="ISO 3166-1 alpha-2 country of the installation")
    outbound_prefix: str = Field(
        default="", description="digits the trunk needs before any external number (e.g. '0'), or empty"
    )
    international_prefix: str | None = Field(
        default=None, description="prefix before a country code; default from the country (IT '00')"
    )
    extension_pattern: str = Field(
        default=DEFAULT_EXTENSION_PATTERN, description="regex an internal extension fully matches"
    )
    emergency: tuple[str, ...] | None = Field(
        default=None, description="emergency numbers; default from the country (IT 112 113 115 118)"
    )

    @field_validator("country", mode="before")
    @classmethod
    def _country_known(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("country must be a two-letter ISO 3166 code such as 'IT'")
        code = value.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"country {value!r} is not a known ISO 3166 region (e.g. 'IT', 'US', 'GB')")
        return code

    @field_validator("outbound_prefix", mode="before")
    @classmethod
    def _outbound_prefix_digits(cls, value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str) or not _PREFIX_RE.fullmatch(value.strip()):
            raise ValueError("outbound_prefix must be empty or up to 4 digits, e.g. '0'")
        return value.strip()

    @field_validator("international_prefix", mode="before")
    @classmethod
    def _international_prefix_digits(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,4}", value.strip()):
            raise ValueError("international_prefix must be 1 to 4 digits, e.g. '00' or '011'")
        return value.strip()

    @field_validator("extension_pattern", mode="before")
    @classmethod
    def _extension_pattern_compiles(cls, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError("extension_pattern must be a non-empty regular expression")
        if len(value) > 200:
            raise ValueError("extension_pattern is longer than 200 characters")
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"extension_pattern is not a valid regular expression: {exc}") from exc
        # A pattern that accepts letters or separators would let non-digits reach a SIP URI.
        for probe in ("a", "A", "@", " ", "+", ";", ""):
            if compiled.fullmatch(probe):
                raise ValueError(f"extension_pattern must match digits only, but it matches {probe!r}")
        return value

    @field_validator("emergency", mode="before")
    @classmethod
    def _emergency_numbers(cls, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ValueError("emergency must be a list of numbers such as ['112', '113']")
        numbers: list[str] = []
        for item in value:
            text = str(item).strip() if isinstance(item, str | int) else None
            if text is None or not _EMERGENCY_RE.fullmatch(text):
                raise ValueError(f"emergency number {item!r} must be 2 to 6 digits")
            if text not in numbers:
                numbers.append(text)
        return tuple(numbers)

    @model_validator(mode="after")
    def _fill_country_defaults(self) -> DialPlan:
        # Frozen model: defaults that depend on the country are filled in once, here.
        if self.international_prefix is None:
            object.__setattr__(self, "international_prefix", default_international_prefix(self.country))
        if self.emergency is None:
            object.__setattr__(self, "emergency", default_emergency_numbers(self.country))
        return self

    @property
    def idd(self) -> str:
        """The international prefix, always set after validation."""
        return self.international_prefix or "00"

    @property
    def emergency_numbers(self) -> tuple[str, ...]:
        """The emergency numbers, always set after validation."""
        return self.emergency or ()

    @property
    def extension_regex(self) -> re.Pattern[str]:
        return _compile(self.extension_pattern)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> DialPlan:
        """Build from stored or submitted settings; bad fields become one :class:`InvalidDialPlan`."""
        try:
            return cls.model_validate(settings)
        except ValidationError as exc:
            fields = {
                ".".join(str(part) for part in err["loc"]) or "dialplan": _clean_message(err["msg"])
                for err in exc.errors()
            }
            summary = "; ".join(f"{name}: {msg}" for name, msg in fields.items())
            raise InvalidDialPlan(f"Invalid dial plan: {summary}", details={"fields": fields}) from None


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ")


@lru_cache(maxsize=32)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
