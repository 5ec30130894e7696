"""Which scope each route needs from an API token; every route not listed refuses API tokens.

The table is deny-by-default: administration, token management, the event stream and anything added
later without an entry here refuse tokens (a signed-in session is unaffected). :class:`RouteContext` puts
the request's method and path where the token check (which runs inside the route, through
:meth:`callto.directory.auth.AuthService.authenticate_async`) can read it, however the route reads its
bearer token.
"""

from __future__ import annotations

import contextvars
import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

SCOPES = ("calls:write", "calls:read", "history:read", "phonebook:read", "phonebook:write")
ANY_TOKEN = "*"  # a route any valid API token may use (the token asking who it is)

_ID = r"[^/]+"
# (method, path pattern, scopes of which one is enough)
_TABLE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("POST", r"/api/v1/calls", ("calls:write",)),
    ("DELETE", rf"/api/v1/calls/{_ID}", ("calls:write",)),
    ("GET", rf"/api/v1/calls/{_ID}", ("calls:read", "calls:write")),
    ("POST", r"/api/v1/integrations/calls", ("calls:write",)),
    ("GET", r"/api/v1/integrations/numbers/normalize", ("calls:read", "calls:write")),
    ("GET", r"/api/v1/integrations/token", (ANY_TOKEN,)),
    ("GET", r"/api/v1/history", ("history:read",)),
    ("GET", r"/api/v1/history/missed", ("history:read",)),
    ("GET", r"/api/v1/phonebook", ("phonebook:read",)),
    ("GET", r"/api/v1/phonebook/export", ("phonebook:read",)),
    ("GET", rf"/api/v1/phonebook/{_ID}", ("phonebook:read",)),
    ("GET", r"/api/v1/customer-card", ("phonebook:read",)),
    ("GET", r"/api/v1/directory", ("phonebook:read",)),
    ("POST", r"/api/v1/phonebook", ("phonebook:write",)),
    ("POST", r"/api/v1/phonebook/import", ("phonebook:write",)),
    ("PATCH", rf"/api/v1/phonebook/{_ID}", ("phonebook:write",)),
    ("DELETE", rf"/api/v1/phonebook/{_ID}", ("phonebook:write",)),
)
_COMPILED = tuple((m, re.compile(p + r"/?"), s) for m, p, s in _TABLE)

# (scope type, method, path) of the request being served; unset outside a request
CURRENT: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar(
    "callto_integrations_route", default=None
)


def required(kind: str, method: str, path: str) -> tuple[str, ...] | None:
    """The scopes of which a token needs one for this request, or None: no token may use it."""
    if kind != "http":
        return None  # the event stream: a device session, not an integration
    method = "GET" if method == "HEAD" else method
    for m, pattern, scopes in _COMPILED:
        if m == method and pattern.fullmatch(path):
            return scopes
    return None


def table() -> list[dict[str, Any]]:
    """The table as documentation (``GET /api/v1/integrations/scopes``)."""
    return [{"method": m, "path": p.replace(_ID, "{id}"), "scopes": list(s)} for m, p, s in _TABLE]


class RouteContext:
    """ASGI middleware: records the request's method and path in :data:`CURRENT` (a context variable
    costs well under a microsecond; the table is only consulted when an API token is presented)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reset = CURRENT.set((scope["type"], scope.get("method", "GET"), scope["path"]))
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT.reset(reset)
