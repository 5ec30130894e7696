"""One place that turns every failure into ``{"error", "message", "details"}`` with a fitting status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from callto.errors import CalltoError

log = logging.getLogger(__name__)

_STATUS_IDS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "too-many-requests",
    503: "unavailable",
}


# The limits of a failed check that clients put into their words ("at most {max_length} characters").
_PARAMS = ("min_length", "max_length", "ge", "gt", "le", "lt", "expected")


def error_response(
    status: int, error: str, message: str, details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message, "details": details or {}}, status_code=status, headers=headers
    )


def _validation_details(exc: RequestValidationError) -> tuple[str, str, list[dict[str, Any]]]:
    problems = []
    malformed = False
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            malformed = True
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        problem: dict[str, Any] = {"field": ".".join(loc) or "body", "problem": str(err.get("msg", "invalid"))}
        # Validators that raise a custom error (e.g. the number parser's ``invalid-number``) give a stable
        # id and parameters: passed on so clients word the problem in the user's language.
        ctx = err.get("ctx") or {}
        if err.get("type") == "invalid-number":
            problem.update(error="invalid-number", reason=ctx.get("reason"), value=ctx.get("value"))
        else:
            # Pydantic's own error type (missing, string_too_long, enum...) and its limits, for the same reason.
            problem["type"] = str(err.get("type", "invalid"))
            params = {k: str(ctx[k]) for k in _PARAMS if k in ctx}
            if params:
                problem["params"] = params
        problems.append(problem)
    if malformed:
        return "malformed-json", "the request body is not valid JSON", problems
    if problems and all(p.get("error") == "invalid-number" for p in problems):
        first = problems[0]
        message = f"{first['field']}: {first['value']!r} is not a phone number. {first['problem']}"
        return "invalid-number", message, problems
    fields = ", ".join(p["field"] for p in problems)
    return "invalid-input", f"some fields are not valid: {fields}", problems


def install(app: FastAPI) -> None:
    @app.exception_handler(CalltoError)
    async def _callto(_: Request, exc: CalltoError) -> JSONResponse:
        headers = None
        if exc.status in (429, 503) and "retry_after" in exc.details:
            headers = {"Retry-After": str(exc.details["retry_after"])}
        return error_response(exc.status, exc.error, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        error, message, problems = _validation_details(exc)
        status = 400 if error == "malformed-json" else 422
        return error_response(status, error, message, {"problems": problems})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = _STATUS_IDS.get(exc.status_code, "http-error")
        message = exc.detail if isinstance(exc.detail, str) else error
        if exc.status_code == 404 and message == "Not Found":
            message = "there is nothing at this address"
        return error_response(exc.status_code, error, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal-error", "something went wrong on the server; it was logged")

    # Below the services (database refusals and outages) and the spec's error answers; imported here
    # because both build on error_response above.
    from callto.api import faults, openapi

    faults.install(app)
    openapi.install(app)
