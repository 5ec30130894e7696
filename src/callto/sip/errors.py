"""Typed errors of the SIP core.

A peer's bad message becomes a :class:`SipMessageError` carrying the SIP status to answer with, a reason
naming the offending header, the extra headers that answer needs (``Unsupported`` for 420, ``Allow`` for
405/501, ``Accept`` for 415) and the raw ``Via``/``From``/``To``/``Call-ID``/``CSeq`` values that parsed, so
an error response can be built even from a partly broken request. Our own misuse of the core (answering a
transaction twice, sending a response in the wrong state) is a :class:`SipLocalError`, kept apart like h11
keeps ``LocalProtocolError`` apart from ``RemoteProtocolError``.
"""

from __future__ import annotations

from typing import Any

from callto.errors import CalltoError


class SipMessageError(CalltoError):
    """The peer sent something we must refuse; ``sip_status`` is what we answer (0: drop silently)."""

    status = 400
    error = "sip-bad-message"

    def __init__(
        self,
        reason: str,
        *,
        sip_status: int = 400,
        header: str | None = None,
        response_headers: list[tuple[str, str]] | None = None,
        copied: list[tuple[str, str]] | None = None,
        is_request: bool | None = None,
        method: str | None = None,
    ) -> None:
        super().__init__(
            reason, details={"sip_status": sip_status, "header": header} if header else {"sip_status": sip_status}
        )
        self.sip_status = sip_status
        self.reason = reason
        self.header = header
        self.response_headers: list[tuple[str, str]] = response_headers or []
        self.copied: list[tuple[str, str]] = copied or []
        self.is_request = is_request
        self.method = method

    def with_context(self, **kwargs: Any) -> SipMessageError:
        for key, value in kwargs.items():
            setattr(self, key, value)
        return self


class SipParseError(SipMessageError):
    """The bytes are not a well-formed SIP message (RFC 3261 section 25)."""

    error = "sip-parse-error"


class SipLocalError(CalltoError):
    """Our own code used the core wrongly (a bug on this side, never the peer's fault)."""

    status = 500
    error = "sip-local-error"
