"""Security events in one stable, parseable line, for operators and fail2ban.

Every part of callto that notices something an attacker would do (a failed login, a guessed provisioning
address, SIP password guessing) calls :func:`security_event`. It logs, on the logger ``callto.security``
at WARNING, exactly one line::

    security event=<name> source=<ip> account=<name> count=<n>

``event`` is a stable id (``login-failed``, ``provisioning-guess``, ``sip-auth-failed``, ...), ``source``
the client's IP address (``-`` when unknown), ``account`` the user, SIP username or phone address tried
(``-`` when none), ``count`` how many times this source failed recently (1 when not counted). Values never
contain spaces or ``=`` (they are replaced by ``_``), so the line splits on spaces; no password, token or
secret is ever part of it. The fail2ban filter in ``packaging/fail2ban/callto.conf`` matches this line.

This module imports nothing from callto, so any package (including ``callto.sip``) may use it.
"""

from __future__ import annotations

import logging

LOGGER_NAME = "callto.security"
log = logging.getLogger(LOGGER_NAME)

_MAX_VALUE = 128


def _clean(value: object) -> str:
    text = str(value) if value is not None and value != "" else "-"
    # One token per field: a value with a space or '=' would let a crafted username forge fields.
    cleaned = "".join("_" if ch.isspace() or ch == "=" or not ch.isprintable() else ch for ch in text)
    return cleaned[:_MAX_VALUE]


def format_event(event: str, source: str | None, account: str | None = None, count: int = 1) -> str:
    """The line :func:`security_event` logs (without the logging prefix)."""
    return f"security event={_clean(event)} source={_clean(source)} account={_clean(account)} count={int(count)}"


def security_event(event: str, source: str | None, account: str | None = None, count: int = 1) -> None:
    """Log one security event (see the module docstring for the format)."""
    log.warning("%s", format_event(event, source, account, count))
