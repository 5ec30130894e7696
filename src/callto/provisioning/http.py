"""Routes of provisioning: the admin API (``/api/v1/admin/phones``, ``/phone-models``) and the files
phones fetch (``/provisioning/<token>/<file>`` and tokenless ``/provisioning/<file>``).

Token guessing is throttled per client address: after ``GUESS_LIMIT`` wrong tokens (or unknown MACs)
in ``GUESS_WINDOW`` seconds, every provisioning request from that address gets 429 until the window
passes, the right token included, so a guesser cannot tell a hit from a miss.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from callto.api.deps import Admin, client_address, features
from callto.config import Settings
from callto.directory.ratelimit import FailureWindow
from callto.phones.catalog import format_mac, normalize_mac
from callto.provisioning.errors import TooManyGuesses
from callto.provisioning.schemas import (
    BootstrapIn,
    BootstrapOut,
    FetchOut,
    PhoneCreate,
    PhoneOut,
    PhonePatch,
    ReloadOut,
    SipServerOut,
    SuggestOut,
    VendorOut,
)
from callto.provisioning.service import FetchRequest, PhoneView, ProvisioningService, Served, WrongToken
from callto.security_log import security_event

log = logging.getLogger(__name__)

GUESS_LIMIT = 10
GUESS_WINDOW = 60.0

admin_router = APIRouter(prefix="/api/v1/admin", tags=["phones"])
files_router = APIRouter(prefix="/provisioning", include_in_schema=False)


def _service(request: Request) -> ProvisioningService:
    return features(request).provisioning


def _guesses(request: Request) -> FailureWindow:
    return features(request).provisioning_guesses


Provisioning = Annotated[ProvisioningService, Depends(_service)]


def _bases(request: Request, settings: Settings) -> tuple[str, str]:
    """The HTTP and HTTPS base URLs a phone should use: the public host, else the host the admin used."""
    host = settings.public_host or request.url.hostname or "localhost"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"http://{host}:{settings.http_port}", f"https://{host}:{settings.https_port}"


def _out(phone: PhoneView, service: ProvisioningService, request: Request) -> dict[str, Any]:
    http_base, https_base = _bases(request, service.settings)
    bootstrap = phone.bootstrap_token if phone.bootstrap_token else None
    return {
        "id": phone.id,
        "mac": phone.mac,
        "mac_display": format_mac(phone.mac, upper=True),
        "vendor": phone.vendor,
        "model": phone.model,
        "label": phone.label,
        "user_id": phone.user_id,
        "device_id": phone.device_id,
        "provisioning_url": f"{http_base}/provisioning/{phone.token}/",
        "provisioning_url_https": f"{https_base}/provisioning/{phone.token}/",
        "bootstrap_url": f"{http_base}/provisioning/{bootstrap}/" if bootstrap else None,
        "bootstrap_expires_at": phone.bootstrap_expires_at if bootstrap else None,
        "registration": service.registration(phone.device_id),
        "last_fetch_at": phone.last_fetch_at,
        "last_fetch_ip": phone.last_fetch_ip,
        "last_user_agent": phone.last_user_agent,
        "last_file": phone.last_file,
        "firmware": phone.firmware,
        "last_reload_at": phone.last_reload_at,
        "last_reload_outcome": phone.last_reload_outcome,
        "variables": phone.variables,
        "strategies": phone.strategies,
        "http_port": phone.http_port,
        "http_scheme": phone.http_scheme,
        "created_at": phone.created_at,
    }


# administration
@admin_router.get("/sip-server", response_model=SipServerOut)
def sip_server(request: Request, _: Admin, service: Provisioning) -> dict[str, Any]:
    """Where a desk phone configured by hand registers: host, SIP domain and the port of each transport."""
    settings = service.settings
    host = settings.public_host or request.url.hostname or "localhost"
    transports: list[dict[str, Any]] = [
        {"transport": "udp", "port": settings.sip_port},
        {"transport": "tcp", "port": settings.sip_port},
    ]
    if settings.sip_tls_port:
        transports.append({"transport": "tls", "port": settings.sip_tls_port})
    transports += [
        {"transport": "ws", "port": settings.http_port},
        {"transport": "wss", "port": settings.https_port},
    ]
    return {"server": host, "domain": settings.effective_sip_domain, "transports": transports}


@admin_router.get("/phone-models", response_model=list[VendorOut])
def phone_models(_: Admin, service: Provisioning) -> list[dict[str, Any]]:
    """The vendor catalog: vendors, OUI prefixes, models with line keys, which click-to-call actions exist."""
    return service.catalog.to_json()


@admin_router.get("/phone-models/suggest", response_model=SuggestOut)
def suggest(_: Admin, service: Provisioning, mac: Annotated[str, Query(max_length=64)]) -> dict[str, Any]:
    """The vendor a MAC address's OUI points to (``vendor`` is null when unknown or shared)."""
    return service.suggest(normalize_mac(mac))


@admin_router.post("/phones", response_model=PhoneOut, status_code=201)
def add_phone(body: PhoneCreate, request: Request, _: Admin, service: Provisioning) -> dict[str, Any]:
    return _out(service.create(body), service, request)


@admin_router.get("/phones", response_model=list[PhoneOut])
def list_phones(request: Request, _: Admin, service: Provisioning) -> list[dict[str, Any]]:
    return [_out(p, service, request) for p in service.list_phones()]


@admin_router.get("/phones/{phone_id}", response_model=PhoneOut)
def get_phone(phone_id: int, request: Request, _: Admin, service: Provisioning) -> dict[str, Any]:
    return _out(service.get(phone_id), service, request)


@admin_router.patch("/phones/{phone_id}", response_model=PhoneOut)
def patch_phone(
    phone_id: int, body: PhonePatch, request: Request, _: Admin, service: Provisioning
) -> dict[str, Any]:
    return _out(service.update(phone_id, body), service, request)


@admin_router.delete("/phones/{phone_id}", status_code=204)
def delete_phone(phone_id: int, _: Admin, service: Provisioning) -> Response:
    service.delete(phone_id)
    return Response(status_code=204)


@admin_router.get("/phones/{phone_id}/fetches", response_model=list[FetchOut])
def phone_fetches(phone_id: int, _: Admin, service: Provisioning) -> list[dict[str, Any]]:
    """The newest fetches of this phone (IP, User-Agent, file, token kind, answer status)."""
    return service.fetches(phone_id)


@admin_router.post("/phones/{phone_id}/bootstrap", response_model=BootstrapOut)
def bootstrap(
    phone_id: int, request: Request, _: Admin, service: Provisioning, body: BootstrapIn | None = None
) -> dict[str, Any]:
    """A new one-time bootstrap URL; the phone's first fetch with its own token revokes it."""
    phone = service.new_bootstrap(phone_id, (body or BootstrapIn()).hours)
    out = _out(phone, service, request)
    return {"bootstrap_url": out["bootstrap_url"], "bootstrap_expires_at": out["bootstrap_expires_at"]}


@admin_router.post("/phones/{phone_id}/reload", response_model=ReloadOut)
async def reload_phone(phone_id: int, _: Admin, service: Provisioning) -> dict[str, Any]:
    """Ask the phone to fetch its configuration again (SIP NOTIFY ``check-sync``)."""
    result = await service.reload(phone_id)
    return {"sent": result.sent, "outcome": result.outcome, "message": result.message}


# what phones fetch
def _fetch_request(request: Request) -> FetchRequest:
    server = request.scope.get("server")
    local_ip = str(server[0]) if server else None
    base = str(request.base_url).rstrip("/")
    return FetchRequest(
        ip=client_address(request),
        user_agent=request.headers.get("user-agent", "")[:512],
        base_url=base,
        host=request.url.hostname or "localhost",
        local_ip=local_ip,
    )


def _check_guesses(request: Request) -> None:
    wait = _guesses(request).blocked_for(client_address(request))
    if wait > 0:
        address = client_address(request)
        security_event("provisioning-throttled", address, None, _guesses(request).count(address))
        raise TooManyGuesses(
            "too many wrong provisioning requests from this address; wait and try again",
            details={"retry_after": math.ceil(wait)},
        )


def _answer(served: Served) -> Response:
    return Response(
        served.content,
        media_type=served.content_type,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def _wrong_guess(request: Request) -> None:
    address = client_address(request)
    security_event("provisioning-guess", address, None, _guesses(request).fail(address))


async def _off_loop(request: Request, check: Any) -> None:
    # counted in Redis too when the nodes share one: a network round trip, kept off the event loop
    if _guesses(request).shared is None:
        check(request)
    else:
        await asyncio.to_thread(check, request)


async def _serve(request: Request, work: Any) -> Response:
    await _off_loop(request, _check_guesses)
    try:
        served: Served = await asyncio.to_thread(work)
    except WrongToken:
        # Logged without the path: a near-miss token in a log file would help the next guesser.
        log.warning(
            "provisioning: no phone for a request from %s (%s)",
            client_address(request), request.headers.get("user-agent", "")[:120],
        )
        await _off_loop(request, _wrong_guess)
        raise
    return _answer(served)


@files_router.get("/{token}/{file_name}")
async def fetch_with_token(token: str, file_name: str, request: Request) -> Response:
    service = _service(request)
    req = _fetch_request(request)
    return await _serve(request, lambda: service.serve_token(token, file_name, req))


@files_router.get("/{file_name}")
async def fetch_without_token(file_name: str, request: Request) -> Response:
    service = _service(request)
    req = _fetch_request(request)
    return await _serve(request, lambda: service.serve_tokenless(file_name, req))
