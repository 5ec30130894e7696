"""Plugs provisioning into the server: its service, routes, and the dialer's ``desk_phones`` port."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from callto.directory.ratelimit import FailureWindow
from callto.provisioning.http import GUESS_LIMIT, GUESS_WINDOW, admin_router, files_router
from callto.provisioning.service import ProvisioningService

if TYPE_CHECKING:
    from callto.app import Services


def install(app: FastAPI, services: Services) -> None:
    features: dict[str, Any] = services.features
    # Looked up at call time: the switch and the phonebook may be wired in after us, or not at all.
    provisioning = ProvisioningService(
        services.db,
        services.directory,
        services.status,
        services.settings,
        notifier=lambda: features.get("phone_notifier"),
        phonebook=lambda: features.get("phonebook"),
    )
    features["provisioning"] = provisioning
    features["desk_phones"] = provisioning
    app.state.provisioning = provisioning
    # with Redis the wrong guesses are counted for the whole deployment (a guesser cannot go round the nodes)
    app.state.provisioning_guesses = FailureWindow(
        GUESS_LIMIT, GUESS_WINDOW, shared=services.shared, name="provisioning"
    )
    app.include_router(admin_router)
    app.include_router(files_router)
