"""The server's logs: lines on stderr (journald keeps them), text or JSON, a level per area, access lines.

``CALLTO_LOG_FORMAT=text`` (default) writes ``2026-12-01 20:30:01,123 INFO callto.switchboard.wiring: ...``;
``json`` writes one object a line with ``time``, ``level``, ``logger``, ``message`` (and ``exception``).
``CALLTO_LOG_LEVELS=sip=debug,api=warning`` sets the level of areas (:data:`AREAS`) or of any logger by
its dotted name. The access log (logger ``callto.access``) has one line per HTTP request, without query
values that carry secrets (``token=`` and friends) and without headers.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

# Area name -> the loggers it covers.
AREAS: dict[str, tuple[str, ...]] = {
    "sip": ("callto.sip",),
    "media": ("callto.media",),
    "api": ("callto.api", "callto.app", "callto.directory", "callto.phonebook", "callto.history",
            "callto.presence", "callto.phones", "callto.provisioning", "callto.dialer", "callto.events"),
    "access": ("callto.access",),
    "security": ("callto.security",),
    "server": ("callto.server", "callto.ops", "uvicorn.error"),
    "database": ("sqlalchemy.engine", "alembic"),
}
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}
SECRET_PARAMS = frozenset({"token", "access_token", "password", "secret", "key", "otp", "code"})


def parse_levels(spec: str) -> dict[str, int]:
    """``"sip=debug,api=warning"`` -> logger name -> level (ValueError naming what is wrong)."""
    levels: dict[str, int] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        area, sep, level = part.partition("=")
        area, level = area.strip().lower(), level.strip().lower()
        if not sep or level not in _LEVELS:
            raise ValueError(f"{part!r} is not area=level (levels: {', '.join(_LEVELS)})")
        if area in AREAS:
            for name in AREAS[area]:
                levels[name] = _LEVELS[level]
        elif area.startswith(("callto.", "uvicorn", "sqlalchemy")):
            levels[area] = _LEVELS[level]
        else:
            raise ValueError(f"unknown area {area!r} (areas: {', '.join(AREAS)}, or a logger name callto.*)")
    return levels


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str = "info", fmt: str = "text", levels: str = "") -> None:
    """Set up the root logger on stderr (replacing handlers set before: one line per record)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    # uvicorn's own access log would repeat ours, with the raw query string (tokens): off.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    for name, value in parse_levels(levels).items():
        logging.getLogger(name).setLevel(value)


def redact_query(query: str) -> str:
    """The query string with the values of secret-bearing parameters replaced by ``***``."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*:/,")


def redact_path(path: str) -> str:
    """Paths that carry a secret: a phone's provisioning token (``/provisioning/<token>/<file>``)."""
    if path.startswith("/provisioning/"):
        parts = path.split("/")
        if len(parts) >= 4:
            return "/".join([*parts[:2], "***", *parts[3:]])
    return path


access_log = logging.getLogger("callto.access")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Observer = Callable[[str, str, int, float], None]


class AccessLog:
    """ASGI middleware: one line per HTTP request (and per WebSocket session, when it ends).

    ``source method path?query status duration_ms``; the query has secrets redacted. ``observers`` are
    told (method, route path, status, seconds) of every request, for metrics."""

    def __init__(self, app: ASGIApp, observers: list[Observer] | None = None) -> None:
        self.app = app
        self.observers = observers if observers is not None else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def watch(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and not status:
                status = 403
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            status = status or 500
            raise
        finally:
            elapsed = time.perf_counter() - start
            self._log(scope, status, elapsed)

    def _log(self, scope: Scope, status: int, elapsed: float) -> None:
        method = scope.get("method", "WS") if scope["type"] == "http" else "WS"
        path = redact_path(scope.get("path", ""))
        for observer in self.observers:
            try:
                route = scope.get("route")
                observer(method, getattr(route, "path", None) or _path_kind(path), status, elapsed)
            except Exception:  # metrics must never break a request
                pass
        if not access_log.isEnabledFor(logging.INFO):
            return
        query = redact_query(scope.get("query_string", b"").decode("latin-1"))
        client = scope.get("client")
        source = client[0] if client else "-"
        target = f"{path}?{query}" if query else path
        access_log.info("%s %s %s %d %.1fms", source, method, target, status, elapsed * 1000)


def _path_kind(path: str) -> str:
    # An unmatched path (web app files, 404s) is counted under its first segment: bounded label values.
    first = path.strip("/").split("/", 1)[0]
    return f"/{first}" if first in ("api", "sip", "provisioning", "metrics") else "/other"
