"""Link in Italian on a desktop with no keyring, against a real server: sign-in never hangs, the user
chooses where the session is kept (memory only, or a file only they can read), connection problems are
said in plain words with the likely fix, and the window grows to show them whole."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backends import fail

from callto.link import i18n
from callto.link.app import LinkController
from callto.link.secrets import Settings, TokenStore, session_file
from callto.link.settings_window import SettingsWindow
from link.conftest import PASSWORD, SCREENSHOTS, make_user, qwait, tcp_port_closed
from support.server import Api, ServerProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def italian_without_keyring(qapp: Any, link_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The OS says Italian; keyring has no backend at all (what it falls back to without a Secret Service:
    keyring's own ``fail.Keyring``, whose every call raises ``NoKeyringError``)."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "it_IT.UTF-8")
    keyring.set_keyring(fail.Keyring())
    yield
    i18n.set_language("en")


@pytest.fixture
def controller(italian_without_keyring: None) -> Iterator[LinkController]:
    c = LinkController(Settings.load(), TokenStore())
    yield c
    c.shutdown()


def _sign_in(window: SettingsWindow, server: str, username: str) -> None:
    window.server.setText(server)
    window.username.setText(username)
    window.password.setText(PASSWORD)
    window.sign_in_button.click()


def _label_fits(label: Any) -> bool:
    return bool(label.height() >= label.heightForWidth(label.width()))


def test_italian_sign_in_without_keyring_offers_a_file_only_the_user_can_read(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    window = SettingsWindow(controller)
    window.show()
    assert (window.sign_in_button.text(), window.windowTitle()) == ("Accedi", "callto Link - Impostazioni")
    _sign_in(window, shared_server.url, user.username)
    assert window.status.text() == "Accesso in corso..."
    qwait(lambda: not window.store_box.isHidden(), 15, "the choice of where to keep the session")
    assert controller.signed_in_ok and window.sign_in_button.isEnabled()
    assert "portachiavi" in window.store_text.text()
    assert window.keep_file.text() == "In un file che solo tu puoi leggere"
    assert _label_fits(window.store_text)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "link-settings-no-keyring-it.png"))

    window.keep_file.click()
    qwait(lambda: window.store_box.isHidden(), 5, "the choice to be taken")
    path = session_file()
    assert window.status.text().startswith("Accesso effettuato.") and str(path) in window.status.text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["token"] == controller.token
    assert Settings.load().session_store == "file"
    qwait(lambda: controller.events_state.value == "connected", 10, "event stream")
    assert window.status.text().startswith("Accesso effettuato.")

    # The next start resumes from that file, still without a keyring, and signing out removes it.
    again = LinkController(Settings.load(), TokenStore())
    try:
        again.start()
        qwait(lambda: again.signed_in_ok, 15, "resume from the session file")
        again.sign_out()
        assert not path.exists()
    finally:
        again.shutdown()


def test_sign_in_without_keyring_can_keep_the_session_in_memory_only(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    window = SettingsWindow(controller)
    _sign_in(window, shared_server.url, user.username)
    qwait(lambda: not window.store_box.isHidden(), 15, "the choice of where to keep the session")
    window.keep_memory.click()
    assert window.status.text() == "Accesso effettuato. La sessione è conservata solo finché Link è aperto."
    assert not session_file().exists() and Settings.load().session_store == "memory"
    assert controller.signed_in_ok


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        # https (the default) to the plain HTTP port: the SSL library's WRONG_VERSION_NUMBER, reworded.
        ("127.0.0.1:{http}", "Il server 127.0.0.1:{http} non usa HTTPS su quella porta. Se lì risponde in "
         "HTTP semplice, scrivi http://127.0.0.1:{http}"),
        ("http://127.0.0.1:{https}", "Se usa HTTPS, scrivi https://127.0.0.1:{https}"),
        ("127.0.0.1:{closed}", "Nessuno risponde su 127.0.0.1:{closed}. Controlla il numero di porta"),
    ],
)
def test_connection_problems_are_said_in_plain_italian_with_the_fix(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api, address: str, expected: str
) -> None:
    ports = {"http": shared_server.url.rsplit(":", 1)[1], "https": shared_server.https_port,
             "closed": tcp_port_closed()}
    window = SettingsWindow(controller)
    window.show()
    before = window.height()
    _sign_in(window, address.format(**ports), "nobody")
    qwait(lambda: window.sign_in_button.isEnabled(), 15, "the sign-in to fail")
    text = window.status.text()
    assert expected.format(**ports) in text, text
    assert "SSL" not in text and "Errno" not in text and "_ssl.c" not in text
    # The window grew (or already was big enough) to show the whole message.
    assert window.height() >= before and _label_fits(window.status)


def test_no_english_text_reaches_the_italian_settings_window(controller: LinkController) -> None:
    from PySide6.QtWidgets import QAbstractButton, QGroupBox, QLabel

    window = SettingsWindow(controller)
    shown = [w.text() for w in window.findChildren(QLabel) + window.findChildren(QAbstractButton)]
    shown += [g.title() for g in window.findChildren(QGroupBox)]
    shown += [window.windowTitle(), window.server.placeholderText(), window.otp.placeholderText()]
    english_only = {v for k, v in i18n.EN.items() if v != i18n.IT[k] and "{" not in v}
    leaked = sorted(text for text in shown if text in english_only)
    assert not leaked, leaked
    assert "Accedi" in shown and "Dispositivo principale: dove squillano le tue chiamate" in shown


def test_a_wrong_password_is_said_in_italian(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    window = SettingsWindow(controller)
    window.server.setText(shared_server.url)
    window.username.setText(user.username)
    window.password.setText("not-the-password")
    window.sign_in_button.click()
    qwait(lambda: window.sign_in_button.isEnabled(), 15, "the sign-in to fail")
    assert window.status.text() == "Nome utente o password errati."
    assert not controller.signed_in_ok
