"""Request and response models of the phonebook and customer-card API; validation happens here."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from callto.api.numbers import checked_number

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,252}$")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _no_control_but_lines(value: str) -> str:
    if _CONTROL_KEEP_LINES.search(value):
        raise ValueError("must not contain control characters")
    return value


check_number = checked_number  # the one check of every number field (callto.api.numbers)


def _email(value: str) -> str:
    if value and not EMAIL_RE.match(value):
        raise ValueError("is not an e-mail address")
    return value


class NumberType(StrEnum):
    work = "work"
    mobile = "mobile"
    home = "home"
    fax = "fax"
    other = "other"


PhoneNumber = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40), AfterValidator(check_number)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_no_control)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email)]
Notes = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_no_control_but_lines)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NumberIn(Strict):
    type: NumberType = NumberType.work
    number: PhoneNumber


class ContactIn(Strict):
    name: Name = ""
    company: Name = ""
    numbers: list[NumberIn] = Field(default_factory=list, max_length=20)
    email: Email = ""
    notes: Notes = ""
    shared: bool = Field(default=False, description="a company-wide contact (administrators only)")

    @model_validator(mode="after")
    def _named(self) -> ContactIn:
        if not self.name and not self.company:
            raise ValueError("a contact needs a name or a company")
        return self


class ContactPatch(Strict):
    name: Name | None = None
    company: Name | None = None
    numbers: list[NumberIn] | None = Field(default=None, max_length=20)
    email: Email | None = None
    notes: Notes | None = None


class NumberOut(BaseModel):
    type: NumberType
    number: str = Field(description="the number as it was typed or imported")
    e164: str | None = Field(default=None, description="its E.164 form, when it can be placed in a country")
    display: str = Field(default="", description="how screens show it: national for the dial plan's country")


class ContactOut(BaseModel):
    id: int
    name: str
    company: str
    numbers: list[NumberOut]
    email: str
    notes: str
    shared: bool


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ImportRowError(BaseModel):
    row: int
    problem: str
    field: str | None = None
    error: str = Field(default="invalid-row", description="stable id clients translate (invalid-number, ...)")
    reason: str | None = Field(default=None, description="for invalid-number, the parser's reason")
    value: str | None = Field(default=None, description="the refused value, as in the file")
    column: str | None = Field(default=None, description="the file's column header, when it has one")


class ImportOut(BaseModel):
    import_id: str
    format: str
    encoding: str | None
    total: int
    imported: int
    failed: int
    errors: list[ImportRowError]
    errors_truncated: bool


class SourceKind(StrEnum):
    sql = "sql"
    http = "http"


class SqlConfig(Strict):
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class HttpConfig(Strict):
    url_template: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    headers: dict[str, Annotated[str, StringConstraints(max_length=2000)]] = Field(default_factory=dict)


class CardSourceIn(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    kind: SourceKind
    enabled: bool = True
    position: int = Field(default=0, ge=0, le=1000)
    timeout_ms: int = Field(default=2000, ge=50, le=30000)
    config: dict[str, Any]


class CardSourcePatch(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None = None
    enabled: bool | None = None
    position: int | None = Field(default=None, ge=0, le=1000)
    timeout_ms: int | None = Field(default=None, ge=50, le=30000)
    config: dict[str, Any] | None = None


class CardSourceOut(BaseModel):
    """A source as administrators see it, credentials included."""

    id: int
    name: str
    kind: SourceKind
    enabled: bool
    position: int
    timeout_ms: int
    config: dict[str, Any]


class SourceResult(BaseModel):
    id: int
    name: str
    kind: str
    status: Literal["ok", "empty", "timeout", "error"]
    elapsed_ms: int
    data: Any = None
    problem: str | None = None
    number_fields: dict[str, str] = Field(
        default_factory=dict,
        description="'<row>.<field>' -> display form, for the values of data that are phone numbers",
    )


class CardOut(BaseModel):
    number: str
    e164: str | None
    display: str = Field(default="", description="the number as screens show it (dial plan format)")
    contacts: list[ContactOut]
    calls: list[dict[str, Any]]
    sources: list[SourceResult]
