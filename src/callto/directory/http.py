"""Routes of the directory: login, the caller's own profile and devices, and user administration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from callto.api.deps import Admin, Auth, CurrentUser, Directory, client_address, features, services
from callto.directory.errors import InvalidCredentials, TooManyAttempts
from callto.directory.schemas import (
    AdminDeviceOut,
    AdminUserOut,
    DeviceCreate,
    DeviceSipOut,
    LoginIn,
    LoginOut,
    MainDeviceIn,
    MeOut,
    OtpIn,
    OwnDeviceOut,
    PasswordOut,
    PreferencesOut,
    PreferencesPatch,
    PresenceIn,
    TotpSetupOut,
    UserCreate,
    UserOut,
    UserPatch,
)
from callto.directory.service import DirectoryService, TotpService
from callto.errors import Forbidden
from callto.security_log import security_event

router = APIRouter(prefix="/api/v1")


def _totp(request: Request) -> TotpService:
    service = services(request).totp
    return service


Totp = Annotated[TotpService, Depends(_totp)]


# authentication
@router.post("/auth/login", response_model=LoginOut, tags=["auth"])
def login(body: LoginIn, request: Request, auth: Auth) -> dict[str, Any]:
    address = client_address(request)
    try:
        token, expires, user = auth.login(body.username, body.password, body.otp, address)
    except (InvalidCredentials, TooManyAttempts) as exc:
        # one parseable line per failure (docs/operations.md, fail2ban); never the password tried
        event = "login-throttled" if isinstance(exc, TooManyAttempts) else "login-failed"
        security_event(event, address, body.username.strip().lower(), auth.throttle.per_address.count(address))
        raise
    return {"token": token, "expires_at": expires, "user": user.public()}


@router.post("/auth/logout", status_code=204, tags=["auth"])
def logout(principal: CurrentUser, auth: Auth) -> Response:
    auth.logout(principal.claims)
    return Response(status_code=204)


# the caller
def _lan_address(request: Request, device_id: int) -> dict[str, Any] | None:
    """Where the owner's desk phone answers on its LAN, for Phone Link's lan_relay and Test connection:
    provisioning's view (the address it registered or fetched from, its web port) when the phone is
    provisioned, else the address its SIP registration came from (web port unknown)."""
    phone = features(request).provisioning.desk_phone(device_id)
    if phone is not None and phone.target is not None:
        return {"host": phone.target.host, "port": phone.target.port, "scheme": phone.target.scheme}
    for info in services(request).status.sources(device_id).values():
        if info.get("address"):
            return {"host": str(info["address"]), "port": None, "scheme": "http"}
    return None


def _own_devices(request: Request, devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for d in devices:
        if d["kind"] == "deskphone":
            d["lan_address"] = _lan_address(request, int(d["id"]))
    return devices


@router.get("/me", response_model=MeOut, tags=["me"])
def me(principal: CurrentUser, request: Request) -> dict[str, Any]:
    out = principal.user.public()
    out["devices"] = _own_devices(request, out["devices"])
    out["preferences"] = DirectoryService.preferences_of(principal.user)
    return out


@router.get("/me/preferences", response_model=PreferencesOut, tags=["me"])
def my_preferences(principal: CurrentUser) -> dict[str, Any]:
    """The caller's own preferences (incoming-call pop-up, ring tone, language), shared by the web and Link."""
    return DirectoryService.preferences_of(principal.user)


@router.patch("/me/preferences", response_model=PreferencesOut, tags=["me"])
def set_my_preferences(body: PreferencesPatch, principal: CurrentUser, directory: Directory) -> dict[str, Any]:
    """Change some of the caller's preferences; the user's open sessions get ``me.preferences``."""
    return directory.set_preferences(principal.user.id, body)


@router.get("/me/devices", response_model=list[OwnDeviceOut], tags=["me"])
def my_devices(principal: CurrentUser, directory: Directory, request: Request) -> list[dict[str, Any]]:
    return _own_devices(request, [d.public() for d in directory.get_user(principal.user.id).devices])


@router.put("/me/main-device", response_model=UserOut, tags=["me"])
def set_main_device(body: MainDeviceIn, principal: CurrentUser, directory: Directory) -> dict[str, Any]:
    return directory.set_main_device(principal.user.id, body.device_id).public()


@router.put("/me/presence", response_model=UserOut, tags=["me"])
def set_presence(body: PresenceIn, principal: CurrentUser, directory: Directory) -> dict[str, Any]:
    return directory.set_dnd(principal.user.id, body.dnd).public()


@router.get("/me/devices/{device_id}/sip", response_model=DeviceSipOut, tags=["me"])
def my_device_sip(
    device_id: int, request: Request, principal: CurrentUser, directory: Directory
) -> dict[str, Any]:
    """SIP credentials for the caller's own web phone or Link; desk phones get theirs by provisioning."""
    device = directory.own_device(principal.user.id, device_id)
    if device.kind not in ("webphone", "link"):
        raise Forbidden(
            "desk phones receive their SIP account by provisioning, not through the API",
            error="not-a-softphone",
            details={"device_id": device_id},
        )
    settings = services(request).settings
    host = request.url.hostname or "localhost"
    http_port = request.url.port
    ws_host = f"{host}:{http_port}" if http_port else host
    return {
        "device_id": device.id,
        "username": device.sip_username,
        "password": device.sip_password,
        "domain": settings.effective_sip_domain,
        "ws_url": f"ws://{ws_host}/sip",
        "wss_url": f"wss://{host}:{settings.https_port}/sip",
    }


@router.post("/me/totp", response_model=TotpSetupOut, tags=["me"])
def totp_begin(principal: CurrentUser, totp: Totp) -> dict[str, str]:
    secret, uri = totp.begin(principal.user.id)
    return {"secret": secret, "uri": uri}


@router.post("/me/totp/confirm", status_code=204, tags=["me"])
def totp_confirm(body: OtpIn, principal: CurrentUser, totp: Totp) -> Response:
    totp.confirm(principal.user.id, body.otp)
    return Response(status_code=204)


@router.delete("/me/totp", status_code=204, tags=["me"])
def totp_disable(body: OtpIn, principal: CurrentUser, totp: Totp) -> Response:
    totp.disable(principal.user.id, body.otp)
    return Response(status_code=204)


# administration
@router.post("/admin/users", response_model=AdminUserOut, status_code=201, tags=["admin"])
def create_user(body: UserCreate, _: Admin, directory: Directory) -> dict[str, Any]:
    return directory.create_user(body).public(with_secrets=True)


@router.get("/admin/users", response_model=list[AdminUserOut], tags=["admin"])
def list_users(_: Admin, directory: Directory) -> list[dict[str, Any]]:
    return [u.public(with_secrets=True) for u in directory.list_users()]


@router.get("/admin/users/{user_id}", response_model=AdminUserOut, tags=["admin"])
def get_user(user_id: int, _: Admin, directory: Directory) -> dict[str, Any]:
    return directory.get_user(user_id).public(with_secrets=True)


@router.patch("/admin/users/{user_id}", response_model=AdminUserOut, tags=["admin"])
def patch_user(user_id: int, body: UserPatch, _: Admin, directory: Directory) -> dict[str, Any]:
    return directory.update_user(user_id, body).public(with_secrets=True)


@router.delete("/admin/users/{user_id}", status_code=204, tags=["admin"])
def delete_user(user_id: int, principal: Admin, directory: Directory) -> Response:
    directory.delete_user(user_id)
    return Response(status_code=204)


@router.post("/admin/users/{user_id}/password", response_model=PasswordOut, tags=["admin"])
def reset_password(user_id: int, _: Admin, directory: Directory) -> dict[str, str]:
    """Set a new generated password (shown once) and end every session of that user."""
    return {"password": directory.reset_password(user_id)}


@router.post(
    "/admin/users/{user_id}/devices", response_model=AdminDeviceOut, status_code=201, tags=["admin"]
)
def add_device(user_id: int, body: DeviceCreate, _: Admin, directory: Directory) -> dict[str, Any]:
    return directory.add_device(user_id, body).public(with_secret=True)


@router.get("/admin/users/{user_id}/devices", response_model=list[AdminDeviceOut], tags=["admin"])
def list_devices(user_id: int, _: Admin, directory: Directory) -> list[dict[str, Any]]:
    return [d.public(with_secret=True) for d in directory.get_user(user_id).devices]


@router.get("/admin/devices/{device_id}", response_model=AdminDeviceOut, tags=["admin"])
def get_device(device_id: int, _: Admin, directory: Directory) -> dict[str, Any]:
    return directory.get_device(device_id).public(with_secret=True)


@router.delete("/admin/devices/{device_id}", status_code=204, tags=["admin"])
def delete_device(device_id: int, _: Admin, directory: Directory) -> Response:
    directory.delete_device(device_id)
    return Response(status_code=204)
