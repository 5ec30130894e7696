"""Request and response models of the integrations: API tokens, service calls, webhooks, screen pop."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Scope = Literal["calls:write", "calls:read", "history:read", "phonebook:read", "phonebook:write"]
EventType = Literal[
    "call.ringing", "call.answered", "call.ended", "call.missed", "history.new", "history.updated", "presence.changed",
]


class ErrorOut(BaseModel):
    """Every refusal: a stable ``error`` id, a message for people, and details."""

    error: str
    message: str
    details: dict[str, Any]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for typed errors."""
    text = {400: "Bad request", 401: "Missing, invalid, expired or revoked token", 403: "Refused: scope, role",
            404: "Not found", 409: "Conflict", 422: "Invalid input", 503: "Storage unavailable"}
    return {s: {"model": ErrorOut, "description": text.get(s, "Error")} for s in statuses}


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
    scopes: list[Scope] = Field(min_length=1)
    note: Annotated[str, StringConstraints(max_length=500)] = ""
    expires_at: datetime | None = Field(
        default=None, description="when the token stops working; omit for 90 days, null for never"
    )


class TokenOut(BaseModel):
    id: int
    user_id: int
    kind: str
    name: str
    note: str
    scopes: list[str]
    prefix: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class TokenCreatedOut(BaseModel):
    token: TokenOut
    secret: str = Field(description="the token itself: shown this once, store it now")


class TokenSelfOut(BaseModel):
    kind: str
    token_id: int | None
    user_id: int
    username: str
    scopes: list[str] | None


class IntegrationCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Annotated[str, StringConstraints(max_length=256)]
    on_behalf_of: int | Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None, description="a user id or username; needs a service token"
    )
    device_id: int | Annotated[str, StringConstraints(pattern=r"^(mobile|[0-9]{1,12})$")] | None = None
    auto_answer: bool = False


class NormalizedOut(BaseModel):
    dialed: str
    e164: str | None
    kind: str
    display: str
    extension: str | None
    allowed: bool


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(min_length=8, max_length=2000)]
    events: list[EventType] = Field(min_length=1)
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    enabled: bool = True


class DeliveryPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_seconds: float = Field(default=5.0, ge=0.5, le=30)
    retry_for_seconds: float = Field(default=3600.0, ge=0, le=86400)
    first_retry_seconds: float = Field(default=1.0, ge=0.1, le=300)


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(min_length=8, max_length=2000)] | None = None
    events: list[EventType] | None = Field(default=None, min_length=1)
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: datetime


class WebhookCreatedOut(BaseModel):
    webhook: WebhookOut
    secret: str = Field(description="the signing secret: shown this once")


class DeliveryOut(BaseModel):
    id: int
    webhook_id: int
    delivery_id: str
    event_type: str
    status: str
    attempts: int
    response_status: int | None
    error: str
    latency_ms: float | None
    created_at: datetime
    updated_at: datetime


class ScreenPopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url_template: Annotated[str, StringConstraints(max_length=2000)] = ""
    on: Literal["ringing", "answered"] = "ringing"
    enabled: bool = True


class ScreenPopOut(BaseModel):
    url_template: str
    on: str
    enabled: bool
    source: str = Field(description="'user' when the user's own setting applies, else 'company'")
