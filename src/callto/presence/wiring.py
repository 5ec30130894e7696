"""Plugs presence and the company directory listing into the server (called by :mod:`callto.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.presence.http import router
from callto.presence.service import PresenceService

if TYPE_CHECKING:
    from callto.app import Services


def install(app: FastAPI, services: Services) -> None:
    bus, hub = services.bus, services.hub
    # with Redis, sessions on other nodes listen too; on one node, this node's sessions and webhooks
    def audience() -> bool:
        return bool(bus.redis_url) or hub.session_count() > 0 or hub.server_listening()

    presence = PresenceService(
        services.directory, bus, services.status, audience=audience, cluster=services.features.get("cluster")
    )
    presence.load()
    services.features["presence"] = presence
    app.state.presence = presence
    app.include_router(router)
