"""A route class for the few routes on a latency budget: FastAPI documents them, but does not run them.

A :class:`LeanRoute` is an ordinary ``APIRoute`` for everything FastAPI derives from a route (the OpenAPI
document, the route's name, matching, the body limit, the app's exception handlers and its
``AsyncExitStack``), except the request handler: FastAPI's handler solves the endpoint's dependencies, reads
and parses the body and serializes the result on every request, which on ``POST /api/v1/calls`` cost
about as much as everything else the server does before the click's INVITE leaves. The endpoint of a lean
route is called with the request alone and answers with a ``Response`` it built itself; it reads its
body, bearer token and headers by hand (see :mod:`callto.api.deps`: :func:`~callto.api.deps.json_body`,
:func:`~callto.api.deps.authenticate`, :func:`~callto.api.deps.validate_body`), with FastAPI's checks,
order and error formats.

:class:`LeanLane` goes one step further for the lean routes without path parameters: their requests do
not reach FastAPI's router at all (see there); the route stays for everything else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

LeanEndpoint = Callable[[Request], Coroutine[Any, Any, Response]]
Handler = Callable[[Request, Exception], Any]  # an app's exception handler (async or not)


class LeanRoute(APIRoute):
    """An ``APIRoute`` whose endpoint takes the ``Request`` only and returns a ``Response``."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Checked once, at start: an endpoint with parameters would silently get none of them.
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"a lean route's endpoint must be async: {endpoint.__qualname__}")
        parameters = list(inspect.signature(endpoint).parameters.values())
        if len(parameters) != 1 or kwargs.get("dependencies"):
            raise TypeError(f"a lean route's endpoint takes the request only, no dependencies: {endpoint.__qualname__}")
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> LeanEndpoint:
        endpoint: LeanEndpoint = self.endpoint
        return endpoint


class LeanLane:
    """ASGI middleware, the innermost of the app's own: a request for a lean route's exact method and path
    goes straight to its endpoint, past Starlette's exception middleware, FastAPI's exit stacks and its
    router (which tries the routers in order and wraps each request in three more ASGI layers).

    What those layers would have done for such a request, it does: an exception is answered by the app's
    own handler for it (looked up as Starlette does: the status code of an ``HTTPException``, then the
    exception's classes in order), and one without a handler goes on to the server-error middleware, as
    before. The route stays in the app for everything else (OpenAPI, a path with a trailing slash, a
    ``HEAD``). Lean routes with path parameters are not on the lane.
    """

    def __init__(self, app: ASGIApp, owner: Starlette) -> None:
        self.app = app
        self.owner = owner
        self.routes: dict[tuple[str, str], LeanEndpoint] = dict(lean_routes(owner.router.routes))
        # as Starlette's ExceptionMiddleware takes them: 500 and Exception belong to the server-error middleware
        handlers = {k: v for k, v in owner.exception_handlers.items() if k not in (500, Exception)}
        self._status_handlers: dict[int, Handler] = {k: v for k, v in handlers.items() if isinstance(k, int)}
        self._class_handlers: dict[Any, Handler] = {k: v for k, v in handlers.items() if not isinstance(k, int)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.routes.get((scope.get("method", ""), scope["path"])) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        scope["endpoint"] = endpoint
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        if isinstance(exc, HTTPException):
            handler = self._status_handlers.get(exc.status_code)
            if handler is not None:
                return handler
        for cls in type(exc).__mro__:
            handler = self._class_handlers.get(cls)
            if handler is not None:
                return handler
        return None


def lean_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[tuple[str, str], LeanEndpoint]]:
    """((method, path), endpoint) of every lean route without path parameters, in included routers too."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI's included router: its routes, under the include's prefix
            context = getattr(route, "include_context", None)
            yield from lean_routes(included.routes, prefix + str(getattr(context, "prefix", "") or ""))
        elif isinstance(route, LeanRoute) and "{" not in route.path:
            for method in route.methods or ():
                if method != "HEAD":
                    yield (method, prefix + route.path), route.endpoint
