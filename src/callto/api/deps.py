"""Dependencies shared by every route: the caller's identity and role."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from callto.directory.auth import AuthService, Principal
from callto.directory.errors import AdminOnly, InvalidToken
from callto.directory.service import DirectoryService

if TYPE_CHECKING:
    from callto.app import Features, Services

M = TypeVar("M", bound=BaseModel)

_bearer = HTTPBearer(auto_error=False, description="the token from POST /api/v1/auth/login")


def services(conn: HTTPConnection) -> Services:
    """The core services (settings, database, bus, hub, directory, authentication) the app was built on."""
    return cast("Services", conn.app.state.services)


def features(conn: HTTPConnection) -> Features:
    """Every feature's services, by typed attribute (``features(request).history``)."""
    return cast("Features", conn.app.state.features)


def auth_service(request: Request) -> AuthService:
    return services(request).auth


def directory_service(request: Request) -> DirectoryService:
    return services(request).directory


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # async: a known user is answered from memory on the loop; a sync dependency would cost a worker
    # thread hop on every request (and queue behind the thread pool when many requests come at once).
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("log in first: this needs a bearer token", details={"reason": "missing"})
    return await auth_service(request).authenticate_async(credentials.credentials)


# --- the same, without FastAPI's dependency solving, for the few routes on a latency budget -------------
async def authenticate(request: Request) -> Principal:
    """What :data:`CurrentUser` gives, read straight from the ``Authorization`` header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("log in first: this needs a bearer token", details={"reason": "missing"})
    return await auth_service(request).authenticate_async(token)


async def json_body(request: Request) -> Any:
    """The request's JSON body as FastAPI reads one (before authentication): malformed JSON is the same
    400, a body that is not ``application/json`` (or ``+json``) stays bytes and fails validation."""
    raw = await request.body()
    if not raw:
        return None
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    main, _, sub = content_type.partition("/")
    if main != "application" or not (sub == "json" or sub.endswith("+json")):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {},
              "ctx": {"error": exc.msg}}]
        ) from exc
    except UnicodeDecodeError as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def validate_body(model: type[M], body: Any, errors: list[dict[str, Any]]) -> M | None:
    """``body`` as ``model``, or None with FastAPI's errors (located under ``body``) added to ``errors``."""
    if body is None:
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
        return None
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors.extend({**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False))
        return None


def admin(principal: Annotated[Principal, Depends(current)]) -> Principal:
    if not principal.user.is_admin:
        raise AdminOnly("only administrators can do this")
    return principal


CurrentUser = Annotated[Principal, Depends(current)]
Admin = Annotated[Principal, Depends(admin)]
Directory = Annotated[DirectoryService, Depends(directory_service)]
Auth = Annotated[AuthService, Depends(auth_service)]
