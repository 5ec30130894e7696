"""Screen pop in Link: open the CRM address the server fills in when a call to this user rings or is answered.

The same contract as the web CTI (``web/src/screenpop.ts``): on ``call.ringing`` / ``call.answered`` for an
incoming call, Link asks ``GET /me/screen-pop/url`` (the server resolves the company-wide or the user's own
template, fills in the number, name and call id URL-encoded, and says when to open it: ``on``). Link opens
the answer only when the event is the moment the user chose, once per call, and only an http(s) address
the server gave; the opener is injectable so tests can see the URL without launching a browser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

Opener = Callable[[str], bool]


def desktop_opener(url: str) -> bool:
    """The OS's default browser (``QDesktopServices``); False when the system could not open it."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    return bool(QDesktopServices.openUrl(QUrl(url, QUrl.ParsingMode.StrictMode)))


def safe_url(url: object) -> str | None:
    """The address when it is an absolute http(s) URL with a host, else None (never a ``file:`` or script)."""
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def incoming_for(data: dict[str, Any], extension: str) -> bool:
    """A call to this user: an inbound call, or an internal one to this user's extension (the caller gets the
    same event for their side of an internal call and must not pop)."""
    direction = data.get("direction")
    if direction in ("in", "inbound", "incoming"):
        return True
    return direction == "internal" and bool(extension) and str(data.get("to") or "") == extension


class ScreenPop:
    """Decides which events ask the server for an address, and opens each call's address at most once."""

    def __init__(self, opener: Opener | None = None) -> None:
        self.opener: Opener = opener or desktop_opener
        self.popped: set[str] = set()
        self.opened: list[str] = []

    def reset(self) -> None:
        """A new sign-in: calls of the previous user are forgotten."""
        self.popped.clear()

    def query(self, msg: dict[str, Any], extension: str) -> dict[str, str] | None:
        """The ``/me/screen-pop/url`` parameters for this event, or None when it cannot pop."""
        kind = str(msg.get("type", ""))
        data = msg.get("data") if isinstance(msg.get("data"), dict) else None
        if kind not in ("call.ringing", "call.answered") or data is None or not incoming_for(data, extension):
            return None
        call_id = str(data.get("call_id") or "")
        if not call_id or call_id in self.popped:
            return None
        number = str(data.get("from") or data.get("caller") or "")
        name = str(data.get("from_name") or data.get("caller_name") or "")
        return {"number": number, "name": name, "call_id": call_id}

    def answer(self, kind: str, call_id: str, answer: dict[str, Any]) -> tuple[str, bool] | None:
        """Open the server's answer when ``kind`` is the user's moment: (address, whether the system opened
        it), or None when nothing was to be opened."""
        url = safe_url(answer.get("url"))
        if url is None or kind != f"call.{answer.get('on', 'ringing')}" or call_id in self.popped:
            return None
        self.popped.add(call_id)
        self.opened.append(url)
        del self.opened[:-50]
        return url, bool(self.opener(url))
