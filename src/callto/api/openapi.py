"""The error answers of the OpenAPI spec: every operation lists the error statuses it can return, all with
one shared schema, ``Error`` (``{"error", "message", "details"}``, what :mod:`callto.api.errors` sends).

FastAPI documents only 2xx and its own 422 (in a shape the server never sends). The generated spec is
completed once, on first use, from what each route is: so a route added later gets the same without
writing ``responses=``. The rules (a route may still declare more with ``responses=``):

- 400 ``malformed-json`` and 413 ``payload-too-large``: it takes a body;
- 401: it needs a token, or it checks credentials (uses the AuthService: login);
- 403: it needs a token (a role, an owner, a scope);
- 404: it has path parameters, an id query parameter, or it needs a token and takes a body (bodies name
  other rows: a device, a user);
- 409: it needs a token and writes (POST, PUT, PATCH, DELETE);
- 422: it has parameters or a body;
- 429 (with ``Retry-After``): it checks credentials (login is throttled);
- 503 ``storage-unavailable`` (with ``Retry-After``): it needs a token or checks credentials, which both
  read the database.

Error answers a route declared with another schema get ``Error`` too: the error layer sends no other shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from callto.api.deps import auth_service

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every error answer of the API.",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string", "description": "a stable machine id, e.g. not-found, storage-unavailable"},
        "message": {"type": "string", "description": "what went wrong, for people (English)"},
        "details": {"type": "object", "additionalProperties": True, "description": "data about the error"},
    },
}

DESCRIPTIONS = {
    400: "malformed-json: the body is not valid JSON",
    401: "not logged in, or the token is invalid, expired or revoked (invalid-token); on login, wrong "
    "credentials (invalid-credentials) or a second factor needed (otp-required)",
    403: "not allowed: the role, the owner of the row or the token's scope does not permit it",
    404: "not-found: no row has that id (also every id beyond what the database can hold)",
    409: "conflict: it clashes with what is stored (a taken name, the last administrator, ...)",
    413: "payload-too-large: the body is larger than allowed here",
    422: "invalid-input: some parameter or field is not valid; details.problems lists them",
    429: "too many attempts: wait Retry-After seconds",
    503: "storage-unavailable: the database cannot be reached right now; the same request works again "
    "once it is back (wait Retry-After seconds). Never a reason to drop the session",
}

_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
}
_WRITES = {"post", "put", "patch", "delete"}
_REF = "#/components/schemas/Error"


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _checks_credentials(dependant: Dependant | None) -> bool:
    return dependant is not None and auth_service in set(_calls(dependant))


def error_statuses(method: str, operation: dict[str, Any], dependant: Dependant | None) -> set[int]:
    """The error statuses an operation can answer, by the rules in the module docstring."""
    params = operation.get("parameters", [])
    has_body = "requestBody" in operation
    secured = bool(operation.get("security"))
    credentials = _checks_credentials(dependant) and not secured
    statuses: set[int] = set()
    if has_body:
        statuses |= {400, 413}
    if secured or credentials:
        statuses |= {401, 503}
    if secured:
        statuses.add(403)
        if method in _WRITES:
            statuses.add(409)
    named_id = any(p.get("in") == "query" and (p["name"] == "id" or p["name"].endswith("_id")) for p in params)
    if any(p.get("in") == "path" for p in params) or named_id or (has_body and secured):
        statuses.add(404)
    if params or has_body:
        statuses.add(422)
    if credentials:
        statuses.add(429)
    return statuses


def _error_response(status: int, existing: dict[str, Any] | None) -> dict[str, Any]:
    response = dict(existing or {})
    response.setdefault("description", DESCRIPTIONS.get(status, "error"))
    if existing is None or response.get("description") in ("Validation Error", "Successful Response"):
        response["description"] = DESCRIPTIONS.get(status, response["description"])
    response["content"] = {"application/json": {"schema": {"$ref": _REF}}}
    if status in (429, 503):
        response["headers"] = {**response.get("headers", {}), **_RETRY_AFTER}
    return response


def _dependants(app: FastAPI) -> dict[tuple[str, str], Dependant]:
    """Each operation's dependencies (path, method): what FastAPI solves for it, router-level ones included."""
    # FastAPI >= 0.16x keeps included routers as wrappers and offers iter_route_contexts to see through them.
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(walk(app.routes)) if walk else list(app.routes)
    found = {}
    for route in routes:
        dependant = getattr(route, "dependant", None)
        path = getattr(route, "path_format", None)
        if isinstance(dependant, Dependant) and path:
            for method in getattr(route, "methods", None) or ():
                found[(path, method.lower())] = dependant
    return found


def _referenced(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            yield ref.rsplit("/", 1)[1]
        for value in node.values():
            yield from _referenced(value)
    elif isinstance(node, list):
        for value in node:
            yield from _referenced(value)


def _used_by_paths(schema: dict[str, Any]) -> set[str]:
    """The component schemas the operations use, directly or through other schemas."""
    schemas = schema.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    todo = list(_referenced(schema.get("paths", {})))
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        todo.extend(_referenced(schemas[name]))
    return seen


def complete(schema: dict[str, Any], dependants: dict[tuple[str, str], Dependant]) -> dict[str, Any]:
    """Add the error answers to every operation of ``schema`` (FastAPI's generated spec), in place."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "put", "post", "patch", "delete", "head", "options"}:
                continue
            responses = operation.setdefault("responses", {})
            wanted = error_statuses(method, operation, dependants.get((path, method)))
            wanted |= {int(code) for code in responses if str(code).isdigit() and int(code) >= 400}
            for status in sorted(wanted):
                responses[str(status)] = _error_response(status, responses.get(str(status)))
            operation["responses"] = dict(sorted(responses.items()))
    schemas = schema["components"]["schemas"]
    keep = _used_by_paths(schema) | {"Error"}
    for name in [n for n in schemas if n not in keep]:
        del schemas[name]
    return schema


def install(app: FastAPI) -> None:
    """Serve the completed spec (built once, when first asked for, after every router is in)."""
    generate = app.openapi
    completed: list[int] = []

    def openapi() -> dict[str, Any]:
        # FastAPI builds the spec again when routes change; each new one is completed once.
        schema = generate()
        if id(schema) not in completed:
            complete(schema, _dependants(app))
            completed.append(id(schema))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
