"""Typed errors shared by every feature package.

A feature raises a subclass of :class:`CalltoError` (or an instance with its own ``error`` id); the API
layer turns any of them into ``{"error", "message", "details"}`` with the error's HTTP status. Nothing
else about HTTP leaks into services.
"""

from __future__ import annotations

from typing import Any


class CalltoError(Exception):
    """A failure the caller can act on: a stable machine id, a human message and details."""

    status: int = 400
    error: str = "bad-request"

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if error is not None:
            self.error = error
        if status is not None:
            self.status = status
        self.details: dict[str, Any] = details or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, "details": self.details}


class NotFound(CalltoError):
    status = 404
    error = "not-found"


class Conflict(CalltoError):
    status = 409
    error = "conflict"


class Forbidden(CalltoError):
    status = 403
    error = "forbidden"


class Unauthorized(CalltoError):
    status = 401
    error = "unauthorized"


class InvalidInput(CalltoError):
    status = 422
    error = "invalid-input"


class TooManyRequests(CalltoError):
    status = 429
    error = "too-many-requests"


class Unavailable(CalltoError):
    status = 503
    error = "unavailable"
