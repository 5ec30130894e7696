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
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

LeanEndpoint = Callable[[Request], Coroutine[Any, Any, Response]]


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
