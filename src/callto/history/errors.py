"""Errors of the call history."""

from __future__ import annotations

from callto.errors import InvalidInput


class InvalidCallRecord(InvalidInput):
    """The switch handed over a record that cannot be a call (ends before it starts, ...)."""

    error = "invalid-call-record"


class BadHistoryQuery(InvalidInput):
    error = "invalid-query"
