"""Plugs click-to-call into the server: its service, the switch and provisioning behind its ports."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.dialer.calls import CallBook
from callto.dialer.http import router
from callto.dialer.idempotency import IdempotencyCache
from callto.dialer.service import DialerService

if TYPE_CHECKING:
    from callto.app import Services

log = logging.getLogger(__name__)


def install(app: FastAPI, services: Services) -> None:
    calls = CallBook(services.bus, services.features.get("cluster"))
    dialer = DialerService(
        services.directory,
        services.hub,
        calls,
        originator=services.features.get("originator"),
        desk_phones=services.features.get("desk_phones"),
    )
    services.features["dialer"] = dialer
    try:
        dialer.warm()
    except Exception:  # a start must not fail for a warm-up; the first click reads them itself
        log.exception("warming the click-to-call path failed")
    services.features["calls"] = calls
    app.state.dialer = dialer
    app.state.idempotency = IdempotencyCache(shared=services.shared)  # with Redis: one answer per deployment
    app.include_router(router)
    # A click is the request whose latency counts most, and FastAPI tries the app's routers in order
    # (twice per request, ~60 route checks when this router comes last): try ours first. None of its
    # paths overlaps another package's.
    routes = app.router.routes
    mine = [r for r in routes if getattr(r, "original_router", None) is router]
    if mine:
        routes[:] = mine + [r for r in routes if r not in mine]
