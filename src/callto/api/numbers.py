"""The check every API field holding a phone number goes through: the one number parser
(:func:`callto.dialer.numbers.read_number`), with its failure as a pydantic error of the stable type
``invalid-number`` carrying the parser's ``reason`` and the value, so the API's 422 names both and the
clients word it in the user's language. The value is kept as typed; callers store its normalized form."""

from __future__ import annotations

from pydantic_core import PydanticCustomError

from callto.dialer.numbers import InvalidNumber, read_number


def checked_number(value: str) -> str:
    """``value`` unchanged when the parser reads it as a phone number, else ``invalid-number``."""
    try:
        read_number(value)
    except InvalidNumber as exc:
        raise PydanticCustomError(
            "invalid-number", "{message}", {"message": exc.message, "reason": exc.reason, "value": value[:64]}
        ) from None
    return value
