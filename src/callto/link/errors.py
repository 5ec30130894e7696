"""Typed errors of callto Link, each with a stable id and a message a user can act on."""

from __future__ import annotations

from callto.errors import CalltoError


class LinkError(CalltoError):
    """Base for every error Link shows to its user."""

    error = "link-error"


class InvalidLink(LinkError):
    """A clicked link or selected text that holds no dialable number."""

    status = 422
    error = "invalid-number"


class InvalidServerAddress(LinkError):
    status = 422
    error = "invalid-server-address"


class ServerUnreachable(LinkError):
    status = 503
    error = "server-unreachable"


class UntrustedCertificate(LinkError):
    """The server's TLS certificate is not trusted; ``details`` carries its SHA-256 fingerprint."""

    status = 495
    error = "untrusted-certificate"


class AuthFailed(LinkError):
    status = 401
    error = "invalid-credentials"


class OtpRequired(LinkError):
    status = 401
    error = "otp-required"


class SessionExpired(LinkError):
    status = 401
    error = "invalid-token"


class LinkNotEnabled(LinkError):
    """The user has no ``link`` device: the administrator has not enabled Phone Link."""

    status = 403
    error = "link-not-enabled"


class ServerError(LinkError):
    """Any other error answer of the server, carrying its id and message."""

    error = "server-error"


class HandlerRegistrationFailed(LinkError):
    status = 500
    error = "handler-registration-failed"


class RelayRefused(LinkError):
    """A ``lan_relay`` command Link will not perform (wrong host, not the user's phone, bad method)."""

    status = 403
    error = "relay-refused"
