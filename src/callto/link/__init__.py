"""callto Link: the desktop tray app that catches ``tel:``/``callto:`` links and places calls via the server.

Pure logic lives in small modules (``urls``, ``handlers``, ``client``, ``events``, ``secrets``,
``connection_test``, ``single``); the Qt user interface (``app``, ``tray``, ``settings_window``,
``phone_window``) only wires them together. ``main`` is the ``callto-link`` console script.
"""

from __future__ import annotations

from callto.link import pyside_refcount

# Before any Qt call: see pyside_refcount (PySide6 6.12.0 on Python 3.11 drops references to None).
pyside_refcount.apply()

APP_NAME = "callto Link"
APP_ID = "callto-link"
BUNDLE_ID = "org.callto.link"
SCHEMES: tuple[str, ...] = ("tel", "callto")
