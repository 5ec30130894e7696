"""Plugs the phonebook and customer cards into the server (called by :mod:`callto.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from callto.phonebook.caller_names import CallerNames
from callto.phonebook.cards import CardService
from callto.phonebook.http import router
from callto.phonebook.service import PhonebookService

if TYPE_CHECKING:
    from callto.app import Services

# The dial plan (owned by the dialer) lives in this installation-wide setting; its country is the one
# numbers without a country code are read in.
DIALPLAN_SETTING = "dialplan"


def install(app: FastAPI, services: Services) -> None:
    directory = services.directory

    def country() -> str | None:
        plan: Any = directory.get_setting(DIALPLAN_SETTING)
        value = plan.get("country") if isinstance(plan, dict) else None
        return value if isinstance(value, str) and value else None

    phonebook = PhonebookService(services.db, services.bus, country)
    cards = CardService(services.db, services.bus, phonebook)
    services.features["phonebook"] = phonebook
    services.features["cards"] = cards
    # the caller's name in the call.* events of a call to a user (read by callto.switchboard.telephony)
    services.features["caller_names"] = CallerNames(phonebook, directory)
    services.components.append(cards)
    app.state.phonebook = phonebook
    app.state.cards = cards
    app.include_router(router)
