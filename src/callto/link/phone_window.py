"""Link as a phone: the web phone page of the callto server hosted in a Qt WebEngine window.

Needs ``PySide6-WebEngine`` (pulled in by ``PySide6-Addons[webengine]``; about 120 MB). Without it, Link
opens the web CTI in the default browser instead and says so. The page keeps its own sign-in in a
persistent WebEngine profile under Link's config dir. A ``dial`` command the server sends to Link is handed
to the page through ``window.calltoPhone.dial(number, clickId)``, the hook the web phone exposes: the click's
id (``c2c-...``, the command's ``call_id``) goes with the number so the page's INVITE names its click
(``X-Callto-Click``, as the web phone does for its own clicks) and the switch ties the call to the click.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QVBoxLayout, QWidget

from callto.link.i18n import tr
from callto.link.secrets import config_dir

EXPECT_MOVE_JS = """
(function () {
  var p = window.calltoPhone;
  if (p && typeof p.expectMove === 'function') { p.expectMove(); return 'ok'; }
  return 'no-hook';
})()
"""

DIAL_JS = """
(function (n, c) {
  var p = window.calltoPhone || (window.callto && window.callto.phone);
  if (!p || typeof p.dial !== 'function') { return 'no-hook'; }
  try { var r = p.dial(n, c); return r === false ? 'refused' : 'ok'; } catch (e) { return 'error: ' + e; }
})(%s, %s)
"""
# The speaker for the ring tone, chosen in Link's settings, by the name the system shows: the page finds its
# own output of that name (``enumerateDevices`` labels) for its ring tone; "" puts it back on the calls' one.
RING_JS = """
(function (d) {
  var p = window.calltoPhone;
  if (!p || typeof p.setRingDevice !== 'function') { return 'no-hook'; }
  try { p.setRingDevice(d); return 'ok'; } catch (e) { return 'error: ' + e; }
})(%s)
"""
# The switch's form of a click id (callto.sip.b2bua): anything else is not sent to the page.
CLICK_ID = re.compile(r"c2c-[0-9a-f]{8,32}")


_PROFILES: dict[str, Any] = {}


def _profile(profile_cls: Any) -> Any:
    """One persistent WebEngine profile per config dir, kept for the life of the app (pages need it)."""
    storage = config_dir() / "webengine"
    key = str(storage)
    if key not in _PROFILES:
        profile = profile_cls("callto-link")
        profile.setPersistentStoragePath(key)
        profile.setCachePath(str(storage / "cache"))
        _PROFILES[key] = profile
    return _PROFILES[key]


def webengine_available() -> bool:
    try:
        import PySide6.QtWebEngineWidgets  # noqa: F401
    except ImportError:
        return False
    return True


def phone_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/?embedded=link"


def click_id(value: object) -> str | None:
    """The click id when it has the switch's form, else None (the call then goes untied, as before)."""
    return value if isinstance(value, str) and CLICK_ID.fullmatch(value) else None


def dial_script(number: str, click: str | None = None) -> str:
    # json.dumps makes each value a JS literal: nothing in them can break out into code.
    return DIAL_JS % (json.dumps(number), json.dumps(click_id(click)))


class PhoneWindow(QWidget):
    def __init__(self, base_url: str) -> None:
        from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineProfile
        from PySide6.QtWebEngineWidgets import QWebEngineView

        super().__init__()
        self.setWindowTitle(tr("link.phoneTitle"))
        self.resize(420, 720)
        self.base_url = base_url
        self.loaded = False
        self.ring_device: str | None = None  # set by Link from its settings (set_ring_device)
        self.profile = _profile(QWebEngineProfile)
        # The page is a child of the view so it goes before the (longer-lived) profile.
        self.view = QWebEngineView(self)
        self.page = QWebEnginePage(self.profile, self.view)
        self.page.permissionRequested.connect(self._on_permission)
        self.view.setPage(self.page)
        self.view.loadFinished.connect(self._on_loaded)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.view.load(QUrl(phone_url(base_url)))

    def _on_loaded(self, ok: bool) -> None:
        self.loaded = ok
        if ok and self.ring_device is not None:
            self.set_ring_device(self.ring_device)

    def expect_move(self) -> None:
        """The tray is moving the user's call here: the page answers the switch's INVITE for it by itself
        (a page still loading is not registered yet, and the server says the device is not registered)."""
        if self.loaded:
            self.page.runJavaScript(EXPECT_MOVE_JS)

    def set_ring_device(self, name: str, done: Callable[[str], None] | None = None) -> None:
        """Hand the page the speaker its ring tone plays on (now, and again whenever the page loads);
        ``done`` gets the page's answer: ``ok``, ``no-hook`` (a page without the hook) or an error."""
        self.ring_device = name
        if not self.loaded:
            return  # applied when the page has loaded
        self.page.runJavaScript(RING_JS % json.dumps(name), 0, lambda result: done(str(result)) if done else None)

    def _on_permission(self, permission: Any) -> None:
        from PySide6.QtWebEngineCore import QWebEnginePermission

        mine = urlsplit(self.base_url)
        origin = permission.origin()
        same = origin.scheme() == mine.scheme and origin.host() == (mine.hostname or "")
        wanted = permission.permissionType() in (
            QWebEnginePermission.PermissionType.MediaAudioCapture,
            QWebEnginePermission.PermissionType.Notifications,
        )
        # The microphone only for callto's own page: it is what makes Link a phone.
        if same and wanted:
            permission.grant()
        else:
            permission.deny()

    def dial(self, number: str, done: Callable[[bool, str | None], None], click: str | None = None) -> None:
        if not self.loaded:
            done(False, "Link's phone page has not loaded yet.")
            return

        def answer(result: Any) -> None:
            if result == "ok":
                done(True, None)
            elif result == "no-hook":
                done(False, "The phone page is not signed in or does not offer dialing.")
            else:
                done(False, f"The phone page did not dial ({result}).")

        self.page.runJavaScript(dial_script(number, click), 0, answer)


def open_in_browser(base_url: str) -> bool:
    return QDesktopServices.openUrl(QUrl(base_url.rstrip("/") + "/"))
