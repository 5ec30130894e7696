"""Builds provisioning: its service (the dialer's ``desk_phones``, told of phones by the switch's
``PhoneNotifier``), the wrong-guess counter of its file routes, and those routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.directory.ratelimit import FailureWindow
from callto.phonebook.service import PhonebookService
from callto.provisioning.http import GUESS_LIMIT, GUESS_WINDOW, admin_router, files_router
from callto.provisioning.ports import PhoneNotifier
from callto.provisioning.service import ProvisioningService

if TYPE_CHECKING:
    from callto.app import Services


def build(
    services: Services, *, notifier: PhoneNotifier | None, phonebook: PhonebookService | None
) -> ProvisioningService:
    return ProvisioningService(
        services.db, services.directory, services.status, services.settings, notifier=notifier, phonebook=phonebook
    )


def build_guesses(services: Services) -> FailureWindow:
    # with Redis the wrong guesses are counted for the whole deployment (a guesser cannot go round the nodes)
    return FailureWindow(GUESS_LIMIT, GUESS_WINDOW, shared=services.shared, name="provisioning")


def mount(app: FastAPI) -> None:
    app.include_router(admin_router)
    app.include_router(files_router)
