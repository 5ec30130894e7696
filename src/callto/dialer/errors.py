"""Errors of click-to-call (number errors live with the number parser in :mod:`callto.dialer.numbers`)."""

from __future__ import annotations

from callto.errors import CalltoError, Conflict, NotFound


class NoMainDevice(Conflict):
    error = "no-main-device"


class DeviceOffline(Conflict):
    error = "device-offline"


class CallFailed(CalltoError):
    """Every strategy for the device was tried and none could start the call."""

    status = 503
    error = "call-failed"


class CallNotFound(NotFound):
    error = "call-not-found"


class NoMobile(Conflict):
    error = "no-mobile"
