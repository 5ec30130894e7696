"""The settings window (server, sign-in, main device, handlers, start at login, shortcut, incoming-call
pop-up and ring tone, the ring tone's speaker, language, where the session is kept when there is no keyring)
and the Test connection results window. Both only talk to :class:`~callto.link.app.LinkController`. Every
text comes from :mod:`callto.link.i18n`; the window grows to fit what it says (long errors are never
clipped)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from callto.link import handlers
from callto.link.app import LinkController
from callto.link.client import Me, fetch_certificate, parse_server_address
from callto.link.connection_test import Check, Status
from callto.link.errors import InvalidServerAddress, LinkError, OtpRequired, UntrustedCertificate
from callto.link.hotkey import describe
from callto.link.i18n import tr, tr_error
from callto.link.secrets import DEFAULT_SHORTCUT

_OK = "color: #1b7a2e;"
_BAD = "color: #b3261e;"
_WARN = "color: #8a5a00;"


class SettingsWindow(QWidget):
    def __init__(self, controller: LinkController) -> None:
        super().__init__()
        self.controller = controller
        self.setWindowTitle(tr("link.settingsTitle"))
        self.setMinimumWidth(520)
        s = controller.settings

        # -- account
        self.server = QLineEdit(s.server_url)
        self.server.setPlaceholderText(tr("link.serverPlaceholder"))
        self.username = QLineEdit(s.username)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.otp = QLineEdit()
        self.otp.setPlaceholderText(tr("link.otpPlaceholder"))
        self.otp.setMaxLength(8)
        self.otp_label = QLabel(tr("login.otp"))
        self.sign_in_button = QPushButton(tr("login.submit"))
        self.status = QLabel(tr("link.notSignedIn"))
        self.status.setWordWrap(True)
        account = QGroupBox(tr("settings.account"))
        form = QFormLayout(account)
        form.addRow(tr("link.server"), self.server)
        form.addRow(tr("login.username"), self.username)
        form.addRow(tr("login.password"), self.password)
        form.addRow(self.otp_label, self.otp)
        form.addRow(self.sign_in_button, self.status)
        self._show_otp(False)

        # -- where the session is kept, asked only when the keyring cannot keep it
        self.store_box = QFrame()
        self.store_box.setFrameShape(QFrame.Shape.StyledPanel)
        store_layout = QVBoxLayout(self.store_box)
        self.store_text = QLabel()
        self.store_text.setWordWrap(True)
        self.keep_memory = QRadioButton(tr("link.keepInMemory"))
        self.keep_file = QRadioButton(tr("link.keepInFile"))
        self.keep_group = QButtonGroup(self)
        self.keep_group.addButton(self.keep_memory)
        self.keep_group.addButton(self.keep_file)
        store_layout.addWidget(self.store_text)
        store_layout.addWidget(self.keep_memory)
        store_layout.addWidget(self.keep_file)
        self.store_box.hide()

        # -- certificate prompt (only when the server's certificate is not trusted)
        self.cert_box = QFrame()
        self.cert_box.setFrameShape(QFrame.Shape.StyledPanel)
        cert_layout = QVBoxLayout(self.cert_box)
        self.cert_text = QLabel()
        self.cert_text.setWordWrap(True)
        self.cert_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.trust_button = QPushButton(tr("link.trust"))
        cert_layout.addWidget(self.cert_text)
        cert_layout.addWidget(self.trust_button)
        self.cert_box.hide()

        # -- main device
        devices = QGroupBox(tr("link.mainDeviceBox"))
        dev_layout = QHBoxLayout(devices)
        self.device_picker = QComboBox()
        self.device_picker.setEnabled(False)
        dev_layout.addWidget(self.device_picker, 1)

        # -- desktop integration
        desktop = QGroupBox(tr("link.thisComputer"))
        grid = QGridLayout(desktop)
        self.register_button = QPushButton(tr("link.registerHandler"))
        self.register_result = QLabel("")
        self.register_result.setWordWrap(True)
        self.autostart = QCheckBox(tr("link.autostart"))
        self.autostart.setChecked(s.start_at_login)
        self.shortcut = QKeySequenceEdit(QKeySequence(s.shortcut))
        self.shortcut.setMaximumSequenceLength(1)
        self.shortcut.setToolTip(tr("link.shortcutHelp"))
        self.shortcut_default = QPushButton(tr("link.shortcutDefault", shortcut=describe(DEFAULT_SHORTCUT)))
        self.shortcut_status = QLabel("")
        self.shortcut_status.setWordWrap(True)
        grid.addWidget(self.register_button, 0, 0, 1, 3)
        grid.addWidget(self.register_result, 1, 0, 1, 3)
        grid.addWidget(self.autostart, 2, 0, 1, 3)
        grid.addWidget(QLabel(tr("link.shortcut")), 3, 0)
        grid.addWidget(self.shortcut, 3, 1)
        grid.addWidget(self.shortcut_default, 3, 2)
        grid.addWidget(self.shortcut_status, 4, 0, 1, 3)
        self.language = QComboBox()
        for code, name in (("auto", tr("link.languageAuto")), ("it", "Italiano"), ("en", "English")):
            self.language.addItem(name, code)
        self.language.setCurrentIndex(max(0, self.language.findData(s.language)))
        grid.addWidget(QLabel(tr("lang.label")), 5, 0)
        grid.addWidget(self.language, 5, 1, 1, 2)
        grid.setColumnStretch(1, 1)

        # -- incoming calls: people who answer on a desk phone turn Link's own alerts off
        calls = QGroupBox(tr("link.calls"))
        calls_layout = QVBoxLayout(calls)
        self.incoming_popup = QCheckBox(tr("link.popup"))
        self.incoming_popup.setChecked(controller.incoming_popup)
        # the ring tone is the phone page's; the switch is the user's server-side one (hidden without it)
        self.ringtone = QCheckBox(tr("settings.ringtone"))
        self.ring_device = QComboBox()
        self.ring_device.setToolTip(tr("link.ringDeviceHelp"))
        ring_row = QHBoxLayout()
        ring_row.addWidget(QLabel(tr("settings.ringOutput")))
        ring_row.addWidget(self.ring_device, 1)
        calls_help = QLabel(tr("link.callsHelp"))
        calls_help.setWordWrap(True)
        calls_layout.addWidget(self.incoming_popup)
        calls_layout.addWidget(self.ringtone)
        calls_layout.addLayout(ring_row)
        calls_layout.addWidget(calls_help)
        self.show_preferences()
        self.show_ring_devices()

        self.test_button = QPushButton(tr("link.test"))
        self.phone_button = QPushButton(tr("link.openPhone"))
        buttons = QHBoxLayout()
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.phone_button)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.addWidget(account)
        layout.addWidget(self.store_box)
        layout.addWidget(self.cert_box)
        layout.addWidget(devices)
        layout.addWidget(calls)
        layout.addWidget(desktop)
        layout.addLayout(buttons)

        self.sign_in_button.clicked.connect(self.on_sign_in)
        self.password.returnPressed.connect(self.on_sign_in)
        self.otp.returnPressed.connect(self.on_sign_in)
        self.trust_button.clicked.connect(self.on_trust)
        self.device_picker.activated.connect(self.on_device_picked)
        self.register_button.clicked.connect(self.on_register)
        self.autostart.toggled.connect(self.on_autostart)
        self.shortcut.editingFinished.connect(self.on_shortcut)
        self.shortcut_default.clicked.connect(self.on_shortcut_default)
        self.incoming_popup.clicked.connect(controller.set_incoming_popup)
        self.ringtone.clicked.connect(controller.set_ringtone)
        self.ring_device.activated.connect(self.on_ring_device)
        controller.preferences_changed.connect(self.show_preferences)
        controller.me_changed.connect(self._on_me_preferences)
        self._outputs = _watch_outputs(self.show_ring_devices)
        self.language.activated.connect(self.on_language)
        self.keep_memory.clicked.connect(lambda: controller.keep_session("memory"))
        self.keep_file.clicked.connect(lambda: controller.keep_session("file"))
        controller.session_store_needed.connect(self.on_session_store_needed)
        controller.session_kept.connect(self.on_session_kept)
        controller.hotkey_changed.connect(self.on_hotkey_changed)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._on_focus)
        self.on_hotkey_changed(controller.hotkey.active, controller.shortcut_status())
        self.test_button.clicked.connect(controller.test_connection)
        self.phone_button.clicked.connect(controller.phone_requested.emit)
        controller.signed_in.connect(self.on_signed_in)
        controller.sign_in_failed.connect(self.on_sign_in_failed)
        controller.me_changed.connect(self.show_devices)
        controller.events_state_changed.connect(self.on_events_state)
        self._pending_der: bytes | None = None
        self._kept_note: str | None = None
        if controller.me is not None:
            self.on_signed_in(controller.me)

    # -- account
    def _show_otp(self, visible: bool) -> None:
        self.otp.setVisible(visible)
        self.otp_label.setVisible(visible)

    def _set_status(self, text: str, style: str = "") -> None:
        self.status.setText(text)
        self.status.setStyleSheet(style)
        self.fit_to_text()

    def fit_to_text(self) -> None:
        """Grow (never shrink) to what the window now says, so a long error is read whole."""
        layout = self.layout()
        if layout is not None:
            layout.activate()
        hint = self.sizeHint()
        if hint.height() > self.height() or hint.width() > self.width():
            self.resize(max(self.width(), hint.width()), max(self.height(), hint.height()))

    def on_language(self, index: int) -> None:
        self.controller.set_language(str(self.language.itemData(index)))
        # Texts are set when widgets are made: the window says when they change (on its next opening).
        self.status.setText(tr("link.notSignedIn") if self.controller.me is None else self.status.text())

    def on_session_store_needed(self, problem: str) -> None:
        self.store_text.setText(tr("link.keyringFailed"))
        # The keyring library's own (English) words, for whoever fixes the keyring.
        self.store_text.setToolTip(problem)
        self.store_box.show()
        self.fit_to_text()

    def on_session_kept(self, text: str) -> None:
        self._kept_note = text
        self.store_box.hide()
        self._set_status(text, _OK)

    def on_sign_in(self) -> None:
        try:
            base = parse_server_address(self.server.text())
        except InvalidServerAddress as exc:
            self._set_status(tr_error(exc), _BAD)
            return
        self.server.setText(base)
        if not self.username.text().strip() or not self.password.text():
            self._set_status(tr("link.enterCredentials"), _BAD)
            return
        self._set_status(tr("link.signingIn"))
        self.sign_in_button.setEnabled(False)
        self.controller.sign_in(
            base, self.username.text().strip(), self.password.text(), self.otp.text().strip() or None
        )

    def on_signed_in(self, me: Me) -> None:
        self.sign_in_button.setEnabled(True)
        # The password has done its job; it is not kept anywhere, not even in this field.
        self.password.clear()
        self.otp.clear()
        self._show_otp(False)
        self.cert_box.hide()
        self._set_status(tr("link.signedIn", name=me.display_name, username=me.username, extension=me.extension), _OK)
        self.show_devices(me)

    def on_sign_in_failed(self, exc: LinkError) -> None:
        self.sign_in_button.setEnabled(True)
        if isinstance(exc, OtpRequired):
            self._show_otp(True)
            self.otp.setFocus()
        if isinstance(exc, UntrustedCertificate):
            fp = str(exc.details.get("fingerprint", "?"))
            half = len(fp) // 2 + 1  # 32 bytes as "AB:" groups: break after the 16th
            self.cert_text.setText(tr("link.certPrompt") + f"<pre>{fp[:half]}\n{fp[half:]}</pre>")
            self.cert_box.show()
            self._set_status(tr("link.certNotTrusted"), _BAD)
            return
        self._set_status(tr_error(exc), _BAD)

    def on_trust(self) -> None:
        try:
            base = parse_server_address(self.server.text())
            der = fetch_certificate(base)
        except LinkError as exc:
            self._set_status(tr_error(exc), _BAD)
            return
        # The pin belongs to the server shown in the field, the one whose fingerprint the user compared.
        self.controller.settings.server_url = base
        fp = self.controller.trust_certificate(der)
        self.cert_box.hide()
        self._set_status(tr("link.trusted", fingerprint=fp[:23]))
        self.on_sign_in()

    # -- incoming calls
    def show_preferences(self) -> None:
        """The switches as they are now: the user's server-side preferences when the server keeps them."""
        c = self.controller
        self.incoming_popup.setChecked(c.incoming_popup)
        ring = c.ringtone
        self.ringtone.setVisible(ring is not None)
        self.ringtone.setChecked(bool(ring))
        # the profile's language may have changed it (texts follow when the window is next opened)
        self.language.setCurrentIndex(max(0, self.language.findData(c.settings.language)))

    def _on_me_preferences(self, _me: Me) -> None:
        self.show_preferences()

    def show_ring_devices(self) -> None:
        """The speakers this computer has, by the name the system shows, the chosen one selected; a chosen
        speaker that is unplugged stays listed as such (the ring tone goes to the calls' one meanwhile)."""
        chosen = self.controller.settings.ring_device
        self.ring_device.clear()
        self.ring_device.addItem(tr("settings.sameAsCall"), "")
        names = audio_outputs()
        for name in names:
            self.ring_device.addItem(name, name)
        if chosen and chosen not in names:
            self.ring_device.addItem(tr("link.ringDeviceMissing", name=chosen), chosen)
        self.ring_device.setCurrentIndex(max(0, self.ring_device.findData(chosen)))

    def on_ring_device(self, index: int) -> None:
        name = str(self.ring_device.itemData(index) or "")
        if name != self.controller.settings.ring_device:
            self.controller.set_ring_device(name)

    # -- devices
    def show_devices(self, me: Me) -> None:
        self.device_picker.clear()
        for dev in me.devices:
            self.device_picker.addItem(dev.describe(), dev.id)
            idx = self.device_picker.count() - 1
            self.device_picker.setItemData(
                idx, Qt.GlobalColor.darkGreen if dev.online else Qt.GlobalColor.gray, Qt.ItemDataRole.ForegroundRole
            )
            if dev.id == me.main_device_id:
                self.device_picker.setCurrentIndex(idx)
        self.device_picker.setEnabled(bool(me.devices))

    def on_device_picked(self, index: int) -> None:
        device_id = self.device_picker.itemData(index)
        if isinstance(device_id, int) and self.controller.me and device_id != self.controller.me.main_device_id:
            self.controller.set_main_device(device_id)

    def on_events_state(self, state: str, why: str) -> None:
        if state == "connected" and self.controller.me is not None:
            me = self.controller.me
            # While Link asks where to keep the session, or after it said where, that stays on screen.
            if self.store_box.isHidden() and self._kept_note is None:
                self._set_status(tr("link.connected", name=me.display_name, username=me.username), _OK)
        elif state in ("disconnected", "unauthorized") and why:
            self._set_status(why, _WARN)

    # -- desktop
    def on_register(self) -> None:
        try:
            report = handlers.register()
        except LinkError as exc:
            self.register_result.setText(exc.message)
            self.register_result.setStyleSheet(_BAD)
            return
        self.register_result.setText("\n".join(report.lines[-3:]))
        self.register_result.setStyleSheet(_OK if report.ok else _BAD)

    def on_autostart(self, enabled: bool) -> None:
        self.register_result.setText(self.controller.set_start_at_login(enabled))
        self.register_result.setStyleSheet("")

    def on_shortcut(self) -> None:
        seq = self.shortcut.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
        saved = self.controller.settings.shortcut
        if seq == saved and self.controller.hotkey.active:
            return  # focus left the field without a change: the listener keeps running
        try:
            self.controller.set_shortcut(seq)
        except ValueError as exc:
            # Keep the working combination: show it again and say why the new one cannot be used.
            self.shortcut.setKeySequence(QKeySequence(saved))
            self.shortcut_status.setText(tr("link.shortcutStays", problem=exc, shortcut=describe(saved)))
            self.shortcut_status.setStyleSheet(_BAD)

    def on_shortcut_default(self) -> None:
        self.shortcut.setKeySequence(QKeySequence(DEFAULT_SHORTCUT))
        self.on_shortcut()

    def on_hotkey_changed(self, active: bool, message: str) -> None:
        self.shortcut_status.setText(message)
        self.shortcut_status.setStyleSheet(_OK if active else _WARN)
        self.fit_to_text()

    def _on_focus(self, _old: QWidget | None, new: QWidget | None) -> None:
        # Pressing the current combination to type a new one must not also call the selected number.
        editing = new is not None and (new is self.shortcut or self.shortcut.isAncestorOf(new))
        self.controller.shortcut_editing = editing

    def closeEvent(self, event: QCloseEvent) -> None:
        # Closing the window keeps Link running in the tray.
        self.password.clear()
        event.accept()


def audio_outputs() -> list[str]:
    """The names of this computer's speakers (Qt Multimedia, part of PySide6-Addons like the phone window's
    WebEngine); none without it."""
    try:
        from PySide6.QtMultimedia import QMediaDevices
    except ImportError:
        return []
    return list(dict.fromkeys(d.description() for d in QMediaDevices.audioOutputs() if d.description()))


def _watch_outputs(changed: Callable[[], None]) -> QObject | None:
    """Lists the speakers again when one is plugged in or out; the watcher must be kept alive."""
    try:
        from PySide6.QtMultimedia import QMediaDevices
    except ImportError:
        return None
    devices = QMediaDevices()
    devices.audioOutputsChanged.connect(changed)
    return devices


_SYMBOL = {Status.OK: ("OK", _OK), Status.WARN: ("!", _WARN), Status.FAIL: ("FAIL", _BAD), Status.SKIP: ("-", "")}


class ConnectionTestWindow(QWidget):
    """One row per check: status, what was found, and the one-line fix."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(tr("link.testTitle"))
        self.setMinimumWidth(640)
        self.grid = QGridLayout(self)
        self.grid.setColumnStretch(2, 1)
        self.checks: list[Check] = []

    def show_checks(self, checks: list[Check]) -> None:
        self.checks = list(checks)
        while self.grid.count():
            item = self.grid.takeAt(0)
            w = item.widget() if item is not None else None
            if w is not None:
                w.deleteLater()
        for row, check in enumerate(checks):
            symbol, style = _SYMBOL[check.status]
            mark = QLabel(symbol)
            mark.setStyleSheet(style + " font-weight: bold;")
            title = QLabel(f"<b>{check.title}</b>")
            text = check.message + (f"<br><i>{tr('link.fix', fix=check.fix)}</i>" if check.fix else "")
            body = QLabel(text)
            body.setWordWrap(True)
            body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.grid.addWidget(mark, row, 0, Qt.AlignmentFlag.AlignTop)
            self.grid.addWidget(title, row, 1, Qt.AlignmentFlag.AlignTop)
            self.grid.addWidget(body, row, 2, Qt.AlignmentFlag.AlignTop)
        self.adjustSize()
