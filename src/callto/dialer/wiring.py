"""Builds click-to-call: its call book, its service with the switch and provisioning behind its ports, the
idempotency answers, and its routes (tried first)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.dialer.calls import CallBook
from callto.dialer.http import router
from callto.dialer.idempotency import IdempotencyCache
from callto.dialer.ports import DeskPhones, Originator
from callto.dialer.service import DialerService
from callto.events.cluster import Cluster

if TYPE_CHECKING:
    from callto.app import Services

log = logging.getLogger(__name__)


def build_calls(services: Services, cluster: Cluster | None) -> CallBook:
    return CallBook(services.bus, cluster)


def build(
    services: Services, calls: CallBook, *, originator: Originator | None, desk_phones: DeskPhones | None
) -> DialerService:
    dialer = DialerService(services.directory, services.hub, calls, originator=originator, desk_phones=desk_phones)
    try:
        dialer.warm()
    except Exception:  # a start must not fail for a warm-up; the first click reads them itself
        log.exception("warming the click-to-call path failed")
    return dialer


def build_idempotency(services: Services) -> IdempotencyCache:
    return IdempotencyCache(shared=services.shared)  # with Redis: one answer per deployment


def mount(app: FastAPI) -> None:
    app.include_router(router)
    # A click is the request whose latency counts most, and FastAPI tries the app's routers in order
    # (twice per request, ~60 route checks when this router comes last): try ours first. None of its
    # paths overlaps another package's.
    routes = app.router.routes
    mine = [r for r in routes if getattr(r, "original_router", None) is router]
    if mine:
        routes[:] = mine + [r for r in routes if r not in mine]
