"""Errors of the directory: authentication, users and devices."""

from __future__ import annotations

from callto.errors import CalltoError, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized


class InvalidCredentials(Unauthorized):
    error = "invalid-credentials"


class OtpRequired(Unauthorized):
    error = "otp-required"


class InvalidToken(Unauthorized):
    error = "invalid-token"


class TooManyAttempts(TooManyRequests):
    error = "too-many-attempts"


class AdminOnly(Forbidden):
    error = "admin-only"


class DeviceNotOwned(Forbidden):
    error = "device-not-owned"


class UserNotFound(NotFound):
    error = "user-not-found"


class DeviceNotFound(NotFound):
    error = "device-not-found"


class AlreadyExists(Conflict):
    error = "already-exists"


class LastAdmin(Conflict):
    error = "last-admin"


class BadOtp(CalltoError):
    status = 422
    error = "invalid-otp"
