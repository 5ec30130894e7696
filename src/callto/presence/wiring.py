"""Builds presence and the company directory listing (called by :mod:`callto.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.events.cluster import Cluster
from callto.presence.http import router
from callto.presence.service import PresenceService

if TYPE_CHECKING:
    from callto.app import Services


def build(services: Services, cluster: Cluster | None) -> PresenceService:
    bus, hub = services.bus, services.hub

    # with Redis, sessions on other nodes listen too; on one node, this node's sessions and webhooks
    def audience() -> bool:
        return bool(bus.redis_url) or hub.session_count() > 0 or hub.server_listening()

    presence = PresenceService(services.directory, bus, services.status, audience=audience, cluster=cluster)
    presence.load()
    return presence


def mount(app: FastAPI) -> None:
    app.include_router(router)
