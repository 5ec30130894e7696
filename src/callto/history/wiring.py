"""Plugs the call history into the server (called by :mod:`callto.app`, after the phonebook)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.history.http import router
from callto.history.service import HistoryService
from callto.phonebook.cards import CardService
from callto.phonebook.service import PhonebookService

if TYPE_CHECKING:
    from callto.app import Services


def install(app: FastAPI, services: Services) -> None:
    phonebook = services.features.get("phonebook")
    history = HistoryService(
        services.db,
        services.bus,
        name_for=phonebook.name_for if isinstance(phonebook, PhonebookService) else None,
        country=phonebook.country if isinstance(phonebook, PhonebookService) else None,
    )
    cards = services.features.get("cards")
    if isinstance(cards, CardService):
        cards.recent_calls = history.recent_with_number
    services.features["history"] = history
    app.state.history = history
    app.include_router(router)
