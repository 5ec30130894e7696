"""Plugs click-to-call into the server: its service, the switch and provisioning behind its ports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.dialer.calls import CallBook
from callto.dialer.http import router
from callto.dialer.idempotency import IdempotencyCache
from callto.dialer.service import DialerService

if TYPE_CHECKING:
    from callto.app import Services


def install(app: FastAPI, services: Services) -> None:
    calls = CallBook(services.bus)
    dialer = DialerService(
        services.directory,
        services.hub,
        calls,
        originator=services.features.get("originator"),
        desk_phones=services.features.get("desk_phones"),
    )
    services.features["dialer"] = dialer
    services.features["calls"] = calls
    app.state.dialer = dialer
    app.state.idempotency = IdempotencyCache()
    app.include_router(router)
