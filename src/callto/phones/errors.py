"""Typed errors of the phone catalog, config rendering and the phone HTTP client."""

from __future__ import annotations

from callto.errors import CalltoError


class InvalidMac(CalltoError):
    status = 422
    error = "invalid-mac"


class UnknownVendor(CalltoError):
    status = 404
    error = "unknown-vendor"


class UnknownModel(CalltoError):
    status = 404
    error = "unknown-model"


class UnknownConfigFile(CalltoError):
    status = 404
    error = "unknown-config-file"


class InvalidPhoneConfig(CalltoError):
    """A variable would produce a broken or unsafe config file (newline injection, bad host...)."""

    status = 422
    error = "invalid-phone-config"


class CatalogError(CalltoError):
    """A vendor data file is malformed; raised when the catalog loads, never at request time."""

    status = 500
    error = "phone-catalog-invalid"


class UnsupportedAction(CalltoError):
    status = 409
    error = "phone-action-unsupported"
