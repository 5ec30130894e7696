"""Typed errors of provisioning (MAC problems come from :mod:`callto.phones.errors`: ``invalid-mac``)."""

from __future__ import annotations

from callto.errors import Conflict, InvalidInput, NotFound, TooManyRequests


class PhoneNotFound(NotFound):
    error = "phone-not-found"


class MacTaken(Conflict):
    error = "mac-taken"


class VendorNotSuggested(InvalidInput):
    """No ``vendor`` given and the MAC's OUI does not point to exactly one vendor."""

    error = "vendor-unknown"


class UnknownPhoneModel(InvalidInput):
    error = "unknown-model"


class DeviceNotUsable(Conflict):
    """The device to link is not a desk phone of that user, or another phone already uses it."""

    error = "device-not-usable"


class NothingToServe(NotFound):
    """A request the provisioning server has no file for (wrong token, unknown MAC, unassigned phone)."""

    error = "not-found"


class TooManyGuesses(TooManyRequests):
    error = "too-many-guesses"


class InvalidStrategies(InvalidInput):
    error = "invalid-strategies"

