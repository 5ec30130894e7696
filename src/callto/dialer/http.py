"""Routes of click-to-call: place, follow and hang up calls; diagnostics; the dial plan."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from callto.api.deps import Admin, CurrentUser, authenticate, features, json_body, services, validate_body
from callto.api.lean import LeanRoute
from callto.dialer.diagnostics import diagnose
from callto.dialer.moves import move_call
from callto.dialer.schemas import (
    CallIn,
    CallOut,
    DiagnosticsOut,
    DialPlanIn,
    DialPlanOut,
    MoveIn,
    MoveOut,
    StrategiesIn,
    StrategiesOut,
)
from callto.dialer.service import DialerService
from callto.errors import InvalidInput

router = APIRouter(prefix="/api/v1")


# async: FastAPI runs a plain ``def`` dependency in a worker thread (a thread hop for a getattr).
async def _dialer(request: Request) -> DialerService:
    service = features(request).dialer
    return service


Dialer = Annotated[DialerService, Depends(_dialer)]


IDEMPOTENCY_KEY_MAX = 128

# place_call reads its request by hand (see there); this is what FastAPI would have documented for it.
_PLACE_CALL_DOCS: dict[str, Any] = {
    "parameters": [{
        "in": "header", "name": "idempotency-key", "required": False,
        "schema": {"anyOf": [{"maxLength": IDEMPOTENCY_KEY_MAX, "type": "string"}, {"type": "null"}],
                   "title": "Idempotency-Key"},
    }],
    "requestBody": {"required": True, "content": {"application/json": {"schema": CallIn.model_json_schema()}}},
    "security": [{"HTTPBearer": []}],
}


async def place_call(request: Request) -> JSONResponse:
    """Start a call on your own device. Answers 202 once the device has been reached; progress follows
    as ``call.*`` events. The same ``Idempotency-Key`` within 60 s returns the same answer."""
    # The click's latency budget is a fraction of a millisecond of CPU: the body, the bearer token and
    # the header are read by hand, with FastAPI's checks, order and error formats (malformed JSON 400,
    # then 401, then 422 for every field problem at once), because FastAPI's dependency solving cost
    # more than everything else on this path together.
    body = await json_body(request)
    principal = await authenticate(request)
    errors: list[dict[str, Any]] = []
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        errors.append({"type": "string_too_long", "loc": ("header", "idempotency-key"),
                       "msg": f"String should have at most {IDEMPOTENCY_KEY_MAX} characters",
                       "input": idempotency_key, "ctx": {"max_length": IDEMPOTENCY_KEY_MAX}})
    call_in = validate_body(CallIn, body, errors)
    if errors or call_in is None:
        raise RequestValidationError(errors)
    if idempotency_key is not None and not idempotency_key.strip():
        raise InvalidInput("Idempotency-Key must not be blank", details={"header": "Idempotency-Key"})
    dialer = features(request).dialer
    idempotency = features(request).idempotency

    async def work() -> dict[str, Any]:
        call = await dialer.place(principal.user, call_in.to, call_in.device_id, auto_answer=call_in.auto_answer,
                                  generation=principal.generation)
        return call.to_json()

    result = await idempotency.run(principal.user.id, idempotency_key, work)
    return JSONResponse(result, status_code=202)


# A lean route (see callto.api.lean): FastAPI documents it as above but calls it with the request alone;
# its dependency solving and result serialization were a third of the server's CPU before the INVITE.
router.add_api_route(
    "/calls", place_call, methods=["POST"], status_code=202, response_model=CallOut, tags=["calls"],
    openapi_extra=_PLACE_CALL_DOCS, route_class_override=LeanRoute,
    responses={422: {"description": "Validation Error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}},
)


@router.post(
    "/calls/move", response_model=MoveOut, tags=["calls"],
    responses={403: {"description": "not your device"}, 404: {"description": "no answered call of yours"},
               409: {"description": "not moved: the call stays where it was (details.reason)"}},
)
async def move_my_call(body: MoveIn, request: Request, principal: CurrentUser) -> dict[str, Any]:
    """Move your answered call to another of your devices (web phone, desk phone, Link). Answers once the
    device talks to the other party; when it does not answer, the call stays where it was (409
    ``move-failed`` with ``details.reason``). A ``call.moved`` event follows for your sessions."""
    return await move_call(services(request).directory, features(request).switch, principal.user.id,
                           body.device_id, body.call_id, auto_answer=body.auto_answer)


@router.get("/calls/{call_id}", response_model=CallOut, tags=["calls"])
async def get_call(call_id: str, principal: CurrentUser, dialer: Dialer) -> dict[str, Any]:
    """A call of yours, placed through any node."""
    return await dialer.find(principal.user.id, call_id)


@router.delete("/calls/{call_id}", response_model=CallOut, tags=["calls"])
async def hangup_call(call_id: str, principal: CurrentUser, dialer: Dialer) -> dict[str, Any]:
    """Hang up a call of yours, placed through any node."""
    return await dialer.hangup_anywhere(principal.user.id, call_id)


@router.get("/me/diagnostics", response_model=DiagnosticsOut, tags=["me"])
async def my_diagnostics(request: Request, principal: CurrentUser, dialer: Dialer) -> dict[str, Any]:
    checks = await diagnose(
        principal.user,
        hub=services(request).hub,
        status=services(request).status,
        desk_phones=dialer.desk_phones,
        trunks=features(request).switch,
    )
    return {"user_id": principal.user.id, "checks": [c.to_json() for c in checks]}


@router.get("/admin/settings/dialplan", tags=["admin"], response_model=DialPlanOut)
def get_dialplan(_: Admin, dialer: Dialer) -> dict[str, Any]:
    return dialer.dial_plan().model_dump(mode="json") | {
        "effective_international_prefix": dialer.dial_plan().idd,
        "effective_emergency": list(dialer.dial_plan().emergency_numbers),
    }


@router.put("/admin/settings/dialplan", tags=["admin"], response_model=DialPlanOut)
def put_dialplan(body: DialPlanIn, _: Admin, dialer: Dialer) -> dict[str, Any]:
    plan = dialer.set_dial_plan(body.settings())
    return plan.model_dump(mode="json") | {
        "effective_international_prefix": plan.idd,
        "effective_emergency": list(plan.emergency_numbers),
    }


@router.get("/admin/settings/click-to-call", tags=["admin"], response_model=StrategiesOut)
def get_strategies(_: Admin, dialer: Dialer) -> dict[str, Any]:
    return {"desk_strategies": list(dialer.desk_strategies())}


@router.put("/admin/settings/click-to-call", tags=["admin"], response_model=StrategiesOut)
def put_strategies(body: StrategiesIn, _: Admin, dialer: Dialer) -> dict[str, Any]:
    return {"desk_strategies": list(dialer.set_desk_strategies(body.desk_strategies))}
