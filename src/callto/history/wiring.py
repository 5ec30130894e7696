"""Builds the call history (called by :mod:`callto.app`, after the phonebook, whose names it shows)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.history.http import router
from callto.history.service import HistoryService
from callto.phonebook.service import PhonebookService
from callto.switchboard.telephony import audience

if TYPE_CHECKING:
    from callto.app import Services


def build(services: Services, phonebook: PhonebookService) -> HistoryService:
    # with a write-behind: the switch's records are stored in batches, off the loop (its writer is a
    # component of the server, stopped last so the calls the switch hangs up as it stops are recorded)
    return HistoryService(
        services.db,
        services.bus,
        name_for=phonebook.name_for,
        country=phonebook.country,
        names_for=phonebook.batch_names(),
        listening=audience(services.bus, services.hub),
        write_behind=True,
    )


def mount(app: FastAPI) -> None:
    app.include_router(router)
