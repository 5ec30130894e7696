"""Request and response models of the directory API; validation happens here, at the edge."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from callto.api.numbers import checked_number

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$"),
]
DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), AfterValidator(_no_control)
]
Extension = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{2,6}$")]


Mobile = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32), AfterValidator(checked_number)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
Label = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=128), AfterValidator(_no_control)
]


class Role(StrEnum):
    admin = "admin"
    user = "user"


class Outbound(StrEnum):
    internal = "internal"
    national = "national"
    international = "international"


class DeviceKind(StrEnum):
    webphone = "webphone"
    link = "link"
    deskphone = "deskphone"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    otp: Annotated[str, StringConstraints(strip_whitespace=True, max_length=12)] | None = None


class UserCreate(Strict):
    username: Username
    display_name: DisplayName
    extension: Extension | None = None
    password: Password
    role: Role = Role.user
    outbound: Outbound = Outbound.national
    mobile: Mobile | None = None


class UserPatch(Strict):
    username: Username | None = None
    display_name: DisplayName | None = None
    extension: Extension | None = None
    password: Password | None = None
    role: Role | None = None
    outbound: Outbound | None = None
    mobile: Mobile | None = None
    totp_enabled: bool | None = Field(
        default=None, description="Admins may only switch a user's second factor off (lost phone)."
    )


class DeviceCreate(Strict):
    kind: DeviceKind
    label: Label | None = None


class MainDeviceIn(Strict):
    device_id: int


class PresenceIn(Strict):
    dnd: bool


class Language(StrEnum):
    """The languages the web CTI and Link speak."""

    en = "en"
    it = "it"


# What a user who never chose gets: both alerts on (the web phone and Link ring), language from the browser/OS.
PREFERENCE_DEFAULTS: dict[str, Any] = {"incoming_popup": True, "ringtone": True, "language": None}


class PreferencesPatch(Strict):
    """A change to the caller's preferences: only the keys sent change; ``null`` puts one back to its default."""

    incoming_popup: StrictBool | None = Field(
        default=None, description="Show the incoming-call pop-up (web phone panel, notification; Link's window)."
    )
    ringtone: StrictBool | None = Field(default=None, description="Play the ring tone for incoming calls.")
    language: Language | None = Field(
        default=None, description="The screens' language; null: follow the browser (web) or the OS (Link)."
    )


class PreferencesOut(BaseModel):
    """The caller's preferences with the defaults filled in; ``updated_at`` is null until the first choice."""

    incoming_popup: bool
    ringtone: bool
    language: Language | None
    updated_at: datetime | None


class OtpIn(Strict):
    otp: Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=12)]


class SipCredentials(BaseModel):
    username: str
    password: str


class DeviceOut(BaseModel):
    """A device as its owner sees it: never a secret."""

    id: int
    user_id: int
    kind: DeviceKind
    label: str
    online: bool


class LanAddress(BaseModel):
    """Where a desk phone's web server answers on its LAN: the address it registered (or fetched its
    configuration) from, and its HTTP port when provisioning knows it (``None``: not known, usually 80)."""

    host: str
    port: int | None
    scheme: Literal["http", "https"] = "http"


class OwnDeviceOut(DeviceOut):
    """A device as its owner sees it on ``/me``: desk phones add their LAN address (for Phone Link)."""

    lan_address: LanAddress | None = None


class AdminDeviceOut(DeviceOut):
    """A device as an administrator sees it: with the SIP account, to set up a phone by hand."""

    sip: SipCredentials


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    extension: str | None
    mobile: str | None
    role: Role
    outbound: Outbound
    main_device_id: int | None
    dnd: bool
    totp_enabled: bool
    created_at: datetime
    devices: list[DeviceOut]


class MeOut(UserOut):
    devices: list[OwnDeviceOut]  # type: ignore[assignment]
    preferences: PreferencesOut


class AdminUserOut(UserOut):
    devices: list[AdminDeviceOut]  # type: ignore[assignment]


class LoginOut(BaseModel):
    token: str
    expires_at: datetime
    user: UserOut


class PasswordOut(BaseModel):
    password: str


class DeviceSipOut(BaseModel):
    device_id: int
    username: str
    password: str
    domain: str
    ws_url: str
    wss_url: str


class TotpSetupOut(BaseModel):
    secret: str
    uri: str


class HealthOut(BaseModel):
    status: str
    version: str
    checks: dict[str, Any]
