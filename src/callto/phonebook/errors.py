"""Errors of the phonebook and customer cards."""

from __future__ import annotations

from callto.errors import CalltoError, Forbidden, InvalidInput, NotFound


class ContactNotFound(NotFound):
    error = "contact-not-found"


class SharedContactReadOnly(Forbidden):
    error = "shared-contact-read-only"


class BadQuery(InvalidInput):
    error = "invalid-query"


class BadCursor(InvalidInput):
    error = "invalid-cursor"


class InvalidNumber(InvalidInput):
    error = "invalid-number"


class ImportFailed(CalltoError):
    """The file as a whole could not be read; nothing was imported."""

    status = 422
    error = "import-failed"


class CardSourceNotFound(NotFound):
    error = "card-source-not-found"


class InvalidCardSource(InvalidInput):
    error = "invalid-card-source"
