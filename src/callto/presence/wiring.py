"""Plugs presence and the company directory listing into the server (called by :mod:`callto.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.presence.http import router
from callto.presence.service import PresenceService

if TYPE_CHECKING:
    from callto.app import Services


def install(app: FastAPI, services: Services) -> None:
    presence = PresenceService(services.directory, services.bus, services.status)
    presence.load()
    services.features["presence"] = presence
    app.state.presence = presence
    app.include_router(router)
