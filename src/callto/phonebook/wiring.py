"""Builds the phonebook, the callers' names and customer cards (called by :mod:`callto.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from callto.phonebook.caller_names import CallerNames
from callto.phonebook.cards import CardService, RecentCalls
from callto.phonebook.http import router
from callto.phonebook.service import PhonebookService

if TYPE_CHECKING:
    from callto.app import Services

# The dial plan (owned by the dialer) lives in this installation-wide setting; its country is the one
# numbers without a country code are read in.
DIALPLAN_SETTING = "dialplan"


def build(services: Services) -> PhonebookService:
    directory = services.directory

    def country() -> str | None:
        plan: Any = directory.get_setting(DIALPLAN_SETTING)
        value = plan.get("country") if isinstance(plan, dict) else None
        return value if isinstance(value, str) and value else None

    return PhonebookService(services.db, services.bus, country)


def build_caller_names(services: Services, phonebook: PhonebookService) -> CallerNames:
    """The caller's name in the ``call.*`` events of a call to a user (asked by the switchboard)."""
    return CallerNames(phonebook, services.directory)


def build_cards(services: Services, phonebook: PhonebookService, recent_calls: RecentCalls | None) -> CardService:
    return CardService(services.db, services.bus, phonebook, recent_calls)


def mount(app: FastAPI) -> None:
    app.include_router(router)
