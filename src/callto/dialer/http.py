"""Routes of click-to-call: place, follow and hang up calls; diagnostics; the dial plan."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from callto.api.deps import Admin, CurrentUser
from callto.dialer.diagnostics import diagnose
from callto.dialer.idempotency import IdempotencyCache
from callto.dialer.schemas import CallIn, CallOut, DiagnosticsOut, DialPlanIn, StrategiesIn
from callto.dialer.service import DialerService
from callto.errors import InvalidInput

router = APIRouter(prefix="/api/v1")


def _dialer(request: Request) -> DialerService:
    service: DialerService = request.app.state.dialer
    return service


def _idempotency(request: Request) -> IdempotencyCache:
    cache: IdempotencyCache = request.app.state.idempotency
    return cache


Dialer = Annotated[DialerService, Depends(_dialer)]
Idempotency = Annotated[IdempotencyCache, Depends(_idempotency)]


@router.post("/calls", status_code=202, response_model=CallOut, tags=["calls"])
async def place_call(
    body: CallIn,
    principal: CurrentUser,
    dialer: Dialer,
    idempotency: Idempotency,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> JSONResponse:
    """Start a call on your own device. Answers 202 once the device has been reached; progress follows
    as ``call.*`` events. The same ``Idempotency-Key`` within 60 s returns the same answer."""
    if idempotency_key is not None and not idempotency_key.strip():
        raise InvalidInput("Idempotency-Key must not be blank", details={"header": "Idempotency-Key"})

    async def work() -> dict[str, Any]:
        call = await dialer.place(principal.user, body.to, body.device_id, auto_answer=body.auto_answer)
        return call.to_json()

    result = await idempotency.run(principal.user.id, idempotency_key, work)
    return JSONResponse(result, status_code=202)


@router.get("/calls/{call_id}", response_model=CallOut, tags=["calls"])
def get_call(call_id: str, principal: CurrentUser, dialer: Dialer) -> dict[str, Any]:
    return dialer.get(principal.user.id, call_id).to_json()


@router.delete("/calls/{call_id}", response_model=CallOut, tags=["calls"])
async def hangup_call(call_id: str, principal: CurrentUser, dialer: Dialer) -> dict[str, Any]:
    return (await dialer.hangup(principal.user.id, call_id)).to_json()


@router.get("/me/diagnostics", response_model=DiagnosticsOut, tags=["me"])
async def my_diagnostics(request: Request, principal: CurrentUser, dialer: Dialer) -> dict[str, Any]:
    checks = await diagnose(
        principal.user,
        hub=request.app.state.hub,
        status=request.app.state.status,
        desk_phones=dialer.desk_phones,
        trunks=request.app.state.services.features.get("trunks"),
    )
    return {"user_id": principal.user.id, "checks": [c.to_json() for c in checks]}


@router.get("/admin/settings/dialplan", tags=["admin"])
def get_dialplan(_: Admin, dialer: Dialer) -> dict[str, Any]:
    return dialer.dial_plan().model_dump(mode="json") | {
        "effective_international_prefix": dialer.dial_plan().idd,
        "effective_emergency": list(dialer.dial_plan().emergency_numbers),
    }


@router.put("/admin/settings/dialplan", tags=["admin"])
def put_dialplan(body: DialPlanIn, _: Admin, dialer: Dialer) -> dict[str, Any]:
    plan = dialer.set_dial_plan(body.settings())
    return plan.model_dump(mode="json") | {
        "effective_international_prefix": plan.idd,
        "effective_emergency": list(plan.emergency_numbers),
    }


@router.get("/admin/settings/click-to-call", tags=["admin"])
def get_strategies(_: Admin, dialer: Dialer) -> dict[str, Any]:
    return {"desk_strategies": list(dialer.desk_strategies())}


@router.put("/admin/settings/click-to-call", tags=["admin"])
def put_strategies(body: StrategiesIn, _: Admin, dialer: Dialer) -> dict[str, Any]:
    return {"desk_strategies": list(dialer.set_desk_strategies(body.desk_strategies))}
