"""Routes of the integrations: API tokens (personal and service), calls for another user, number
normalization for the dial link, webhooks and their delivery log, screen pop settings, the dial page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse

from callto.api.deps import Admin, CurrentUser, features, services
from callto.dialer.numbers import allowed, normalize
from callto.dialer.service import DialerService
from callto.directory.auth import Principal
from callto.directory.errors import UserNotFound
from callto.directory.service import UserView
from callto.errors import CalltoError, NotFound
from callto.integrations import scopes as route_scopes
from callto.integrations.errors import OnBehalfNotAllowed
from callto.integrations.schemas import (
    DeliveryOut,
    DeliveryPolicyIn,
    IntegrationCallIn,
    NormalizedOut,
    ScreenPopIn,
    ScreenPopOut,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
    TokenSelfOut,
    WebhookCreatedOut,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
    errors,
)
from callto.integrations.screenpop import ScreenPop, ScreenPopService
from callto.integrations.service import DeliveryPolicy, TokenService, WebhookService

router = APIRouter(prefix="/api/v1")
pages = APIRouter()
STATIC = Path(__file__).parent / "static"
DEFAULT_LIFETIME = timedelta(days=90)


async def _tokens(request: Request) -> TokenService:
    service = features(request).integrations.api_tokens
    return service


Tokens = Annotated[TokenService, Depends(_tokens)]


def _expiry(body: TokenIn) -> datetime | None:
    if "expires_at" not in body.model_fields_set:
        return datetime.now(UTC) + DEFAULT_LIFETIME
    return body.expires_at


# personal tokens (a signed-in session only: tokens never manage tokens)
@router.get("/me/tokens", response_model=list[TokenOut], tags=["tokens"], responses=errors(401, 403))
def my_tokens(principal: CurrentUser, tokens: Tokens) -> list[dict[str, Any]]:
    return [t.public() for t in tokens.tokens(user_id=principal.user.id, kind="personal")]


@router.post("/me/tokens", status_code=201, response_model=TokenCreatedOut, tags=["tokens"],
             responses=errors(401, 403, 422))
def create_my_token(body: TokenIn, principal: CurrentUser, tokens: Tokens) -> dict[str, Any]:
    """Create a personal access token. The secret is in this answer only."""
    view, secret = tokens.create(principal.user.id, "personal", body.name, list(body.scopes), note=body.note,
                                 expires_at=_expiry(body))
    return {"token": view.public(), "secret": secret}


@router.delete("/me/tokens/{token_id}", status_code=204, tags=["tokens"], responses=errors(401, 403, 404))
def revoke_my_token(token_id: int, principal: CurrentUser, tokens: Tokens) -> Response:
    tokens.revoke(token_id, kind="personal", user_id=principal.user.id)
    return Response(status_code=204)


# service tokens (administrators)
@router.get("/admin/service-tokens", response_model=list[TokenOut], tags=["tokens"], responses=errors(401, 403))
def service_tokens(_: Admin, tokens: Tokens) -> list[dict[str, Any]]:
    return [t.public() for t in tokens.tokens(kind="service")]


@router.post("/admin/service-tokens", status_code=201, response_model=TokenCreatedOut, tags=["tokens"],
             responses=errors(401, 403, 422))
def create_service_token(body: TokenIn, principal: Admin, tokens: Tokens) -> dict[str, Any]:
    """A token for a CRM server: with ``calls:write`` it may place calls for any user
    (``POST /api/v1/integrations/calls`` with ``on_behalf_of``), within that user's outbound class."""
    view, secret = tokens.create(principal.user.id, "service", body.name, list(body.scopes), note=body.note,
                                 expires_at=_expiry(body))
    return {"token": view.public(), "secret": secret}


@router.delete("/admin/service-tokens/{token_id}", status_code=204, tags=["tokens"],
               responses=errors(401, 403, 404))
def revoke_service_token(token_id: int, _: Admin, tokens: Tokens) -> Response:
    tokens.revoke(token_id, kind="service")
    return Response(status_code=204)


@router.get("/admin/service-calls", tags=["tokens"], responses=errors(401, 403))
def service_calls(_: Admin, tokens: Tokens, user_id: int | None = None, call_id: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
    """The audit of calls placed by service tokens: which token, which admin's, for whom."""
    return tokens.service_calls(user_id=user_id, call_id=call_id, limit=limit)


@router.get("/integrations/scopes", tags=["tokens"])
def scope_table() -> dict[str, Any]:
    """The scopes and the routes each opens; every other route refuses API tokens."""
    return {"scopes": list(route_scopes.SCOPES), "routes": route_scopes.table()}


@router.get("/integrations/token", response_model=TokenSelfOut, tags=["tokens"], responses=errors(401))
def who_am_i(principal: CurrentUser) -> dict[str, Any]:
    """What the presented bearer token is: a session or an API token, its owner and scopes."""
    grant = principal.grant
    return {
        "kind": grant.kind if grant else "session", "token_id": grant.token_id if grant else None,
        "user_id": principal.user.id, "username": principal.user.username,
        "scopes": sorted(grant.scopes) if grant else None,
    }


# calls for integrations
def _dialer(request: Request) -> DialerService:
    return features(request).dialer


@router.get("/integrations/numbers/normalize", response_model=NormalizedOut, tags=["calls"],
            responses=errors(401, 403, 422))
def normalize_number(request: Request, principal: CurrentUser,
                     to: Annotated[str, Query(max_length=256)]) -> dict[str, Any]:
    """How ``to`` would be dialed under the dial plan, and whether your outbound class allows it."""
    number = normalize(to, _dialer(request).dial_plan())
    out = number.to_json()
    return {k: out.get(k) for k in ("dialed", "e164", "kind", "display", "extension")} | {
        "allowed": allowed(number.kind, principal.user.outbound)
    }


@router.get("/integrations/dialplan", tags=["calls"], responses=errors(401, 403))
def my_dialplan(request: Request, _: CurrentUser) -> dict[str, Any]:
    """The dial plan's country (ISO 3166 alpha-2): how clients such as the browser extension read the
    numbers on a page; the rest of the plan stays with administrators."""
    return {"country": _dialer(request).dial_plan().country}


async def _target(request: Request, principal: Principal, ref: int | str | None) -> UserView:
    if ref is None or ref in (principal.user.id, principal.user.username):
        return principal.user
    if principal.grant is None or principal.grant.kind != "service":
        raise OnBehalfNotAllowed(
            "only a service token may place calls for another user", details={"on_behalf_of": ref}
        )
    directory = services(request).directory
    user = directory.find_user(ref) if isinstance(ref, str) and not ref.isdigit() else None
    if user is None and (isinstance(ref, int) or ref.isdigit()):
        try:
            user = directory.get_user(int(ref))
        except UserNotFound:
            user = None
    if user is None:
        raise UserNotFound("there is no such user", details={"on_behalf_of": ref})
    return user


@router.post("/integrations/calls", status_code=202, tags=["calls"], responses=errors(401, 403, 404, 409, 422))
async def integration_call(body: IntegrationCallIn, request: Request, principal: CurrentUser) -> dict[str, Any]:
    """Place a click-to-call, for yourself or (service token) for ``on_behalf_of``: the call starts on that
    user's device as if they had clicked, within their outbound class; the audit keeps who placed it."""
    target = await _target(request, principal, body.on_behalf_of)
    dialer = _dialer(request)
    tokens = features(request).integrations.api_tokens
    audited = target.id != principal.user.id
    try:
        call = await dialer.place(target, body.to, body.device_id, auto_answer=body.auto_answer)
    except CalltoError as exc:
        if audited:
            call_id = str(exc.details.get("call_id", ""))
            tokens.record_service_call(principal, target, call_id, body.to, exc.error)
        raise
    if audited:
        tokens.record_service_call(principal, target, call.id, body.to, "placed")
    return call.to_json() | {"on_behalf_of": target.id, "placed_by": principal.user.id}


# webhooks (administrators)
async def _webhooks(request: Request) -> WebhookService:
    service = features(request).integrations.webhooks
    return service


Webhooks = Annotated[WebhookService, Depends(_webhooks)]


@router.get("/admin/webhooks", response_model=list[WebhookOut], tags=["webhooks"], responses=errors(401, 403))
def list_webhooks(_: Admin, hooks: Webhooks) -> list[dict[str, Any]]:
    return [h.public() for h in hooks.all()]


@router.post("/admin/webhooks", status_code=201, response_model=WebhookCreatedOut, tags=["webhooks"],
             responses=errors(401, 403, 422))
def create_webhook(body: WebhookIn, principal: Admin, hooks: Webhooks) -> dict[str, Any]:
    """Register an endpoint for event types. The signing secret is in this answer only."""
    view, secret = hooks.create(body.url, list(body.events), body.description, body.enabled, principal.user.id)
    return {"webhook": view.public(), "secret": secret}


@router.get("/admin/webhooks/settings", tags=["webhooks"], responses=errors(401, 403))
def webhook_policy(_: Admin, hooks: Webhooks) -> dict[str, Any]:
    return hooks.policy.public()


@router.put("/admin/webhooks/settings", tags=["webhooks"], responses=errors(401, 403, 422))
def set_webhook_policy(body: DeliveryPolicyIn, _: Admin, hooks: Webhooks) -> dict[str, Any]:
    """Timeout of one request, and for how long a failing delivery is retried (backoff doubles from
    ``first_retry_seconds``, at most 5 minutes apart)."""
    return hooks.set_policy(DeliveryPolicy(**body.model_dump())).public()


@router.get("/admin/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"],
            responses=errors(401, 403, 404))
def get_webhook(webhook_id: int, _: Admin, hooks: Webhooks) -> dict[str, Any]:
    return hooks.get(webhook_id).public()


@router.patch("/admin/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"],
              responses=errors(401, 403, 404, 422))
def patch_webhook(webhook_id: int, body: WebhookPatch, _: Admin, hooks: Webhooks) -> dict[str, Any]:
    return hooks.update(webhook_id, body.model_dump(exclude_unset=True, exclude_none=True)).public()


@router.delete("/admin/webhooks/{webhook_id}", status_code=204, tags=["webhooks"], responses=errors(401, 403, 404))
def delete_webhook(webhook_id: int, _: Admin, hooks: Webhooks) -> Response:
    hooks.delete(webhook_id)
    return Response(status_code=204)


@router.get("/admin/webhooks/{webhook_id}/deliveries", response_model=list[DeliveryOut], tags=["webhooks"],
            responses=errors(401, 403, 404))
def webhook_deliveries(webhook_id: int, _: Admin, hooks: Webhooks,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    """The delivery log, newest first: status, attempts, the endpoint's answer and latency."""
    return hooks.deliveries(webhook_id, limit)


@router.post("/admin/webhooks/{webhook_id}/test", tags=["webhooks"], responses=errors(401, 403, 404))
async def test_webhook(webhook_id: int, request: Request, _: Admin) -> dict[str, Any]:
    """Send a ``webhook.test`` event now; answers with the first attempt (failed ones are retried)."""
    hooks = features(request).integrations.webhooks
    dispatcher = features(request).integrations.dispatcher
    hook = await asyncio.to_thread(hooks.get, webhook_id)
    return await dispatcher.send_test(hook)


# screen pop
def _pops(request: Request) -> ScreenPopService:
    service = features(request).integrations.screen_pop
    return service


Pops = Annotated[ScreenPopService, Depends(_pops)]


def _pop(body: ScreenPopIn) -> ScreenPop:
    return ScreenPop(body.url_template, body.on, body.enabled)


@router.get("/admin/screen-pop", response_model=ScreenPopOut, tags=["screen-pop"], responses=errors(401, 403))
def company_screen_pop(_: Admin, pops: Pops) -> dict[str, Any]:
    return pops.company().public("company")


@router.put("/admin/screen-pop", response_model=ScreenPopOut, tags=["screen-pop"], responses=errors(401, 403, 422))
def set_company_screen_pop(body: ScreenPopIn, _: Admin, pops: Pops) -> dict[str, Any]:
    """The company-wide template, e.g. ``https://crm.example/search?phone={e164}&name={name}``."""
    return pops.set_company(_pop(body)).public("company")


@router.get("/me/screen-pop", response_model=ScreenPopOut, tags=["screen-pop"], responses=errors(401, 403))
def my_screen_pop(principal: CurrentUser, pops: Pops) -> dict[str, Any]:
    """What applies to you: your own template when you set one, else the company's."""
    pop, source = pops.effective(principal.user.id)
    return pop.public(source)


@router.put("/me/screen-pop", response_model=ScreenPopOut, tags=["screen-pop"], responses=errors(401, 403, 422))
def set_my_screen_pop(body: ScreenPopIn, principal: CurrentUser, pops: Pops) -> dict[str, Any]:
    """Your template (empty: the company's) and when to open it (``ringing`` or ``answered``)."""
    pops.set_own(principal.user.id, _pop(body))
    pop, source = pops.effective(principal.user.id)
    return pop.public(source)


@router.get("/me/screen-pop/url", tags=["screen-pop"], responses=errors(401, 403))
def my_screen_pop_url(
    principal: CurrentUser, pops: Pops, number: Annotated[str, Query(max_length=256)] = "",
    name: Annotated[str, Query(max_length=256)] = "", call_id: Annotated[str, Query(max_length=128)] = "",
) -> dict[str, Any]:
    """The URL to open for a call (``url`` null: no screen pop), the number also in E.164."""
    url, pop = pops.url(principal.user.id, number, name, call_id)
    return {"url": url, "on": pop.on}


# the dial link page: static files, no inline script (a CSP forbids it)
# Never inside another site's frame: a framed page could be clicked through (clickjacking).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@pages.get("/dial", include_in_schema=False)
def dial_page() -> FileResponse:
    """Reading this page places nothing: only the signed-in user's click on it does (a POST with the bearer
    token, which a cross-site page cannot read)."""
    return FileResponse(STATIC / "dial.html", headers={"Cache-Control": "no-cache", **PAGE_HEADERS})


@pages.get("/dial/{name}", include_in_schema=False)
def dial_asset(name: str) -> Response:
    if name not in ("dial.js", "dial.css"):
        raise NotFound("there is nothing at this address")
    return FileResponse(STATIC / name, headers={"Cache-Control": "no-cache", **PAGE_HEADERS})
