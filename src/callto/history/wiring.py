"""Plugs the call history into the server (called by :mod:`callto.app`, after the phonebook)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.history.http import router
from callto.history.service import HistoryService
from callto.history.writer import HistoryWriter
from callto.phonebook.cards import CardService
from callto.phonebook.service import PhonebookService
from callto.switchboard.telephony import audience

if TYPE_CHECKING:
    from callto.app import Services


def install(app: FastAPI, services: Services) -> None:
    found = services.features.get("phonebook")
    phonebook = found if isinstance(found, PhonebookService) else None
    history = HistoryService(
        services.db,
        services.bus,
        name_for=phonebook.name_for if phonebook else None,
        country=phonebook.country if phonebook else None,
        names_for=phonebook.batch_names() if phonebook else None,
        listening=audience(services.bus, services.hub),
    )
    history.writer = HistoryWriter(history)
    cards = services.features.get("cards")
    if isinstance(cards, CardService):
        cards.recent_calls = history.recent_with_number
    services.features["history"] = history
    # First in the list, so stopped last: the switch hangs up its calls (and records them) as it stops.
    services.components.insert(0, history.writer)
    app.state.history = history
    app.include_router(router)
