"""Dependencies shared by every route: the caller's identity and role."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from callto.directory.auth import AuthService, Principal
from callto.directory.errors import AdminOnly, InvalidToken
from callto.directory.service import DirectoryService

_bearer = HTTPBearer(auto_error=False, description="the token from POST /api/v1/auth/login")


def state(request: Request, name: str) -> Any:
    return getattr(request.app.state, name)


def auth_service(request: Request) -> AuthService:
    return cast(AuthService, request.app.state.auth)


def directory_service(request: Request) -> DirectoryService:
    return cast(DirectoryService, request.app.state.directory)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def current(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("log in first: this needs a bearer token", details={"reason": "missing"})
    return auth_service(request).authenticate(credentials.credentials)


def admin(principal: Annotated[Principal, Depends(current)]) -> Principal:
    if not principal.user.is_admin:
        raise AdminOnly("only administrators can do this")
    return principal


CurrentUser = Annotated[Principal, Depends(current)]
Admin = Annotated[Principal, Depends(admin)]
Directory = Annotated[DirectoryService, Depends(directory_service)]
Auth = Annotated[AuthService, Depends(auth_service)]
