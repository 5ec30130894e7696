"""Request and response models of click-to-call."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Annotated[str, StringConstraints(max_length=256)] = Field(
        description="what was clicked: tel:/callto:/sip: URI, a number in any usual format, or an extension"
    )
    device_id: int | Annotated[str, StringConstraints(pattern=r"^(mobile|[0-9]{1,12})$")] | None = Field(
        default=None, description="one of your device ids, or 'mobile' (callback); default: your main device"
    )
    auto_answer: bool = Field(default=False, description="ask a desk phone to answer the first leg by itself")


class NumberOut(BaseModel):
    dialed: str
    e164: str | None
    kind: str
    display: str
    extension: str | None


class AttemptOut(BaseModel):
    strategy: str
    outcome: str
    reason: str
    elapsed_ms: float


class CallOut(BaseModel):
    call_id: str
    state: str
    to: str
    device_id: int | str
    device_kind: str
    strategy: str | None
    attempts: list[AttemptOut]
    number: NumberOut
    reason: str
    created_at: str


class DialPlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: str | None = None
    outbound_prefix: str | None = None
    international_prefix: str | None = None
    extension_pattern: str | None = None
    emergency: list[str] | None = None

    def settings(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class StrategiesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    desk_strategies: list[str]


class StrategiesOut(BaseModel):
    desk_strategies: list[str] = Field(description="the ways tried in order; originate is always last")


class DialPlanOut(BaseModel):
    """The stored dial plan, and what it comes to where a setting is left to the country's default."""

    country: str
    outbound_prefix: str
    international_prefix: str | None
    extension_pattern: str
    emergency: list[str] | None
    effective_international_prefix: str | None
    effective_emergency: list[str]


class CheckOut(BaseModel):
    id: str
    status: str
    message: str
    fix: str
    code: str = Field(default="", description="stable id of what the check found; clients word it from code and params")
    params: dict[str, Any] = Field(default_factory=dict)


class DiagnosticsOut(BaseModel):
    user_id: int
    checks: list[CheckOut]


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: int = Field(ge=1, description="one of your devices, registered now, to take the call")
    call_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="the switch's call id (from call.* events); default: your answered call"
    )
    auto_answer: bool = Field(
        default=True, description="ask the device to answer by itself (its vendor's header, where it has one)"
    )


class MoveOut(BaseModel):
    moved: bool
    device_id: int
    call_id: str | None
