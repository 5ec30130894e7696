"""Failures that reach the HTTP edge from below the services: the database or Python refusing a value, and
the database being unreachable. Each becomes a JSON error with a fitting status, never a 500:

- the database unreachable (connection refused or lost, pool exhausted): 503 ``storage-unavailable`` with
  ``Retry-After``; the pool reconnects by itself on a later request, so nothing else is needed to recover;
- a value the database or Python cannot hold (``OverflowError``, ``DataError``): when the request names an
  id no row can have (``/phonebook/2147483648`` on PostgreSQL, whose ids are int4, or
  ``99999999999999999999`` on SQLite, whose ids are int64), 404 ``not-found``, as for any other id that
  does not exist; otherwise 422 ``invalid-input`` (a date that leaves the calendar once moved to UTC, a
  text with a NUL byte on PostgreSQL);
- a unique or foreign key constraint hit by a race the service's own checks could not see: 409.

Ids are also checked before a route runs (an app-wide dependency): an id parameter beyond the int4 range
is 404 on every backend alike, so ``/admin/history?user_id=2147483648`` answers the same on SQLite (where
it would find nothing) and on PostgreSQL (where the database would refuse it). That check runs before the
route's own dependencies, authentication included: an id no row can ever have is 404 even to a caller
whose token would be refused, which tells nobody anything.

This is the one place for it, so routes added later get it too: no route checks its ids by hand.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import typing

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.requests import HTTPConnection

from callto.api.errors import error_response
from callto.errors import NotFound
from callto.store.errors import RETRY_AFTER_SECONDS, StorageUnavailable, is_storage_outage

log = logging.getLogger(__name__)

# Every integer id column is int4 on PostgreSQL (int64 on SQLite): an id outside it names no row anywhere.
ID_MIN, ID_MAX = -(2**31), 2**31 - 1
_INTEGER = re.compile(r"[+-]?\d{1,4000}")
_OUTAGE_LOG_INTERVAL = 10.0


def _is_id(name: str) -> bool:
    return name == "id" or name.endswith("_id")


def _integer_params(connection: HTTPConnection) -> set[str] | None:
    """The route's path and query parameters declared as integers (``int``, ``int | None``); None when the
    route is not known (then the name alone decides). A string parameter named ``*_id`` (a call id, a
    client's import id) may well be all digits."""
    dependant = getattr(connection.scope.get("route"), "dependant", None)
    if not isinstance(dependant, Dependant):
        return None
    names = set()
    for field in [*dependant.path_params, *dependant.query_params]:
        annotation = field.field_info.annotation
        if annotation is int or int in typing.get_args(annotation):
            names.add(field.alias or field.name)
    return names


def out_of_range_id(connection: HTTPConnection) -> tuple[str, str] | None:
    """The first path or query parameter that is an integer id (``id``, ``*_id``) holding a value no row can
    have, as (name, value); None when there is none."""
    integers = _integer_params(connection)
    params = [*connection.path_params.items(), *connection.query_params.multi_items()]
    for name, value in params:
        if not _is_id(name) or (integers is not None and name not in integers):
            continue
        text = str(value).strip()
        if _INTEGER.fullmatch(text) and not ID_MIN <= int(text) <= ID_MAX:
            return name, text
    return None


class _OutageLog:
    """One warning per interval while the database is away (with how many requests it refused), not one
    per request: an outage under load would otherwise flood the log."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last = 0.0
        self._refused = 0

    def refused(self, request: Request, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._refused += 1
            if now - self._last < self.interval:
                return
            count, self._refused, self._last = self._refused, 0, now
        cause = exc.__cause__ or exc
        log.warning(
            "storage unavailable: answered 503 to %d request(s), latest %s %s (%s: %s)",
            count, request.method, request.url.path, type(cause).__name__, str(cause).splitlines()[0][:200],
        )


def _reason(exc: BaseException) -> str:
    """A short stable name of what the database refused, e.g. ``numeric-value-out-of-range``."""
    orig = getattr(exc, "orig", None) or exc
    name = type(orig).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


async def reject_impossible_ids(connection: HTTPConnection) -> None:
    """404 for an id parameter no row can have, before the route reads anything (WebSockets included).
    async: a sync dependency would cost every request of every route a hop to a worker thread."""
    bad_id = out_of_range_id(connection)
    if bad_id is not None:
        name, value = bad_id
        raise NotFound(f"there is nothing with {name} {value}", details={"field": name})


def install(app: FastAPI) -> None:
    # Routers included after this inherit it (install runs before create_app adds them).
    app.router.dependencies.append(Depends(reject_impossible_ids))
    outages = _OutageLog(_OUTAGE_LOG_INTERVAL)

    def unavailable(request: Request, exc: BaseException) -> JSONResponse:
        outages.refused(request, exc)
        err = exc if isinstance(exc, StorageUnavailable) else StorageUnavailable()
        return error_response(
            err.status, err.error, err.message, err.details, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )

    def out_of_range(request: Request, exc: BaseException) -> JSONResponse:
        bad_id = out_of_range_id(request)
        if bad_id is not None:
            name, value = bad_id
            return error_response(404, "not-found", f"there is nothing with {name} {value}", {"field": name})
        log.info("value out of range on %s %s: %s", request.method, request.url.path, _reason(exc))
        return error_response(
            422,
            "invalid-input",
            "a value is outside the range the server can store",
            {"problems": [{"field": "unknown", "problem": _reason(exc)}]},
        )

    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        if is_storage_outage(exc):
            return unavailable(request, exc)
        if isinstance(exc, sa_exc.DataError):
            return out_of_range(request, exc)
        if isinstance(exc, sa_exc.IntegrityError):
            return error_response(409, "conflict", "that conflicts with what is already stored", {})
        log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal-error", "something went wrong on the server; it was logged")

    async def _overflow(request: Request, exc: Exception) -> JSONResponse:
        return out_of_range(request, exc)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        return unavailable(request, exc)

    # sqlite3.Error: the directory generation reads SQLite on its own connection, outside SQLAlchemy.
    for kind in (sa_exc.DBAPIError, sqlite3.Error):
        app.add_exception_handler(kind, _storage)
    app.add_exception_handler(sa_exc.TimeoutError, _unavailable)
    app.add_exception_handler(StorageUnavailable, _unavailable)
    app.add_exception_handler(OverflowError, _overflow)
