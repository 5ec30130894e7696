"""The tray icon, its menu, notifications, and the windows it opens (the UI's composition root)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtGui import QAction, QColor, QFont, QIcon, QKeySequence, QPainter, QPixmap, QShortcut
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from callto.link import APP_NAME
from callto.link.app import LinkController
from callto.link.i18n import tr
from callto.link.phone_window import PhoneWindow, open_in_browser, webengine_available
from callto.link.settings_window import ConnectionTestWindow, SettingsWindow

log = logging.getLogger("callto.link")


def link_icon(online: bool = True) -> QIcon:
    pix = QPixmap(64, 64)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor("#1b7a2e") if online else QColor("#8a8a8a"))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawRoundedRect(QRectF(2, 2, 60, 60), 14, 14)
    p.setPen(QColor("white"))
    font = QFont()
    font.setPixelSize(42)
    p.setFont(font)
    p.drawText(QRectF(0, 0, 64, 64), Qt.AlignmentFlag.AlignCenter, "\u260e")
    p.end()
    return QIcon(pix)


class LinkUi(QObject):
    def __init__(self, controller: LinkController) -> None:
        super().__init__()
        self.controller = controller
        self.settings_window: SettingsWindow | None = None
        self.test_window: ConnectionTestWindow | None = None
        self.phone_window: PhoneWindow | None = None
        self.tray = QSystemTrayIcon(link_icon(False))
        self.tray.setToolTip(f"{APP_NAME}: {tr('tray.notConnected')}")
        menu = QMenu()
        self.menu = menu
        self.dial_action = QAction(tr("tray.dialSelection"), menu)
        self.phone_action = QAction(tr("tray.phone"), menu)
        self.move_here_action = QAction(tr("tray.moveHere"), menu)
        self.move_main_action = QAction(tr("tray.moveToMain"), menu)
        self.settings_action = QAction(tr("tray.settings"), menu)
        self.test_action = QAction(tr("tray.test"), menu)
        self.quit_action = QAction(tr("tray.quit"), menu)
        for act in (self.dial_action, self.phone_action, self.move_here_action, self.move_main_action,
                    self.settings_action, self.test_action):
            menu.addAction(act)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        self.tray.setContextMenu(menu)
        self.dial_action.triggered.connect(controller.dial_selection)
        self.phone_action.triggered.connect(self.show_phone)
        self.move_here_action.triggered.connect(self.move_here)
        self.move_main_action.triggered.connect(controller.move_to_main)
        self.settings_action.triggered.connect(self.show_settings)
        self.test_action.triggered.connect(controller.test_connection)
        self.quit_action.triggered.connect(QApplication.quit)
        self.tray.activated.connect(self._on_activated)
        controller.notification.connect(self.show_message)
        controller.settings_requested.connect(self.show_settings)
        controller.checks_done.connect(self.show_checks)
        controller.phone_requested.connect(self.show_phone)
        controller.ring_device_changed.connect(self._ring_device_changed)
        controller.events_state_changed.connect(self._on_state)
        controller.hotkey_changed.connect(self._on_hotkey_changed)
        # Where no global shortcut is possible, the combination still works while a Link window has focus.
        self._local_shortcuts: list[QShortcut] = []

    def show(self) -> None:
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray.show()
        else:
            log.info("no system tray here; the settings window is the way in")
        self.controller.enable_shortcut()

    def _on_hotkey_changed(self, active: bool, _message: str) -> None:
        for sc in self._local_shortcuts:
            sc.setKey(QKeySequence(self.controller.settings.shortcut))
            # Both would fire while a Link window has focus: one press, two calls.
            sc.setEnabled(not active)

    def show_message(self, title: str, text: str) -> None:
        if self.tray.isVisible() and QSystemTrayIcon.supportsMessages():
            self.tray.showMessage(title, text, link_icon(True), 6000)

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.show_settings()

    def _on_state(self, state: str, why: str) -> None:
        online = state == "connected"
        self.tray.setIcon(link_icon(online))
        self.tray.setToolTip(f"{APP_NAME}: {tr('tray.connected') if online else why or tr('tray.notConnected')}")

    def show_settings(self) -> SettingsWindow:
        if self.settings_window is None:
            self.settings_window = SettingsWindow(self.controller)
            sc = QShortcut(QKeySequence(self.controller.settings.shortcut), self.settings_window)
            sc.activated.connect(self.controller.dial_selection)
            sc.setEnabled(not self.controller.hotkey.active)
            self._local_shortcuts.append(sc)
            self.settings_window.phone_button.setEnabled(True)
        self.settings_window.show()
        self.settings_window.raise_()
        self.settings_window.activateWindow()
        return self.settings_window

    def show_checks(self, checks: list[object]) -> ConnectionTestWindow:
        if self.test_window is None:
            self.test_window = ConnectionTestWindow()
        self.test_window.show_checks(checks)  # type: ignore[arg-type]
        self.test_window.show()
        self.test_window.raise_()
        return self.test_window

    def show_phone(self) -> None:
        base = self.controller.settings.server_url
        if not base:
            self.show_settings()
            return
        if not webengine_available():
            opened = open_in_browser(base)
            self.controller.notify(
                tr("tray.phone"), tr("notify.noWebEngine") + (" " + tr("notify.openedInBrowser") if opened else "")
            )
            return
        if self.phone_window is None:
            window = PhoneWindow(base)
            self.phone_window = window
            self.controller.phone_dialer = window.dial
            # the ring tone's speaker from Link's settings, now and whenever the user picks another
            window.set_ring_device(self.controller.settings.ring_device)
            window.destroyed.connect(self._phone_closed)
        self.phone_window.show()
        self.phone_window.raise_()

    def move_here(self) -> None:
        """Open the phone window (it takes the call), tell its page to answer by itself, then ask the move."""
        self.show_phone()
        if self.phone_window is not None:
            self.phone_window.expect_move()
        self.controller.move_here()

    def _ring_device_changed(self, name: str) -> None:
        if self.phone_window is not None:
            self.phone_window.set_ring_device(name)

    def _phone_closed(self) -> None:
        self.phone_window = None
        self.controller.phone_dialer = None
