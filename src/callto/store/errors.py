"""Which database failures mean "the storage cannot be reached right now" rather than "this request is wrong".

A lost or refused connection, a pool that cannot hand out a connection, a server shutting down: the
request may well be right and will work once the database is back, so the answer is
:class:`StorageUnavailable` (503 with ``Retry-After``), never a 401 that would make a client throw away a
good session, and never a 500.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

from callto.errors import Unavailable

# What clients are told to wait before trying again; the pool reconnects on the next request by itself.
RETRY_AFTER_SECONDS = 5


class StorageUnavailable(Unavailable):
    """The database cannot be reached; the same request will work again once it is back."""

    error = "storage-unavailable"

    def __init__(self, message: str = "the database cannot be reached right now; try again shortly") -> None:
        super().__init__(message, details={"retry_after": RETRY_AFTER_SECONDS})


def is_storage_outage(exc: BaseException) -> bool:
    """True when ``exc`` says the database is unreachable (not that the statement or its data is wrong)."""
    if isinstance(exc, StorageUnavailable):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        # OperationalError: connection refused or lost, server shutting down, too many clients, SQLite
        # file locked or unreadable. InterfaceError: the connection object is already closed.
        return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
    # A pool with every connection out, or the dedicated SQLite connection of the directory generation.
    return isinstance(exc, (sa_exc.TimeoutError, sqlite3.OperationalError, sqlite3.InterfaceError))
