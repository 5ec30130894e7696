"""Link's settings window grows to fit what it says (offscreen Qt): a long Italian connection error, from a
real sign-in against a port where nothing listens, is shown whole, not clipped by the window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callto.link import i18n
from callto.link.app import LinkController
from callto.link.secrets import Settings, TokenStore
from callto.link.settings_window import SettingsWindow
from link.conftest import qwait, tcp_port_closed

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def controller(qapp: Any, link_home: Path) -> Iterator[LinkController]:
    settings = Settings.load()
    settings.language = "it"  # the user's choice in the settings window, which Link applies at start
    c = LinkController(settings, TokenStore())
    yield c
    c.shutdown()
    i18n.set_language(None)


def test_link_windows_grow_to_fit_a_long_italian_message(controller: LinkController) -> None:
    window = SettingsWindow(controller)
    try:
        window.show()
        qwait(window.isVisible, 5, "the settings window")
        before = window.size()
        # a connection error worded in Italian, much longer than the "not signed in" the window opened with
        window.server.setText(f"http://127.0.0.1:{tcp_port_closed()}")
        window.username.setText("mario")
        window.password.setText("password-123")
        window.sign_in_button.click()
        qwait(lambda: window.sign_in_button.isEnabled() and "..." not in window.status.text(), 15, "the error")
        assert "Nessuno risponde" in window.status.text(), window.status.text()
        qwait(lambda: window.status.height() >= window.status.heightForWidth(window.status.width()), 5,
              "the label laid out at its full height")
        label = window.status
        assert len(label.text()) > 120, label.text()
        # not a fixed size: the window can grow, and it did grow to the label's needs
        assert window.minimumSize() != window.maximumSize()
        assert window.height() >= window.sizeHint().height(), (window.size(), window.sizeHint())
        assert window.height() > before.height(), (before, window.size())
        # every line of the wrapped message is inside the label, and the label inside the window
        assert label.height() >= label.heightForWidth(label.width()), (label.size(), label.text())
        bottom_right = label.mapTo(window, label.rect().bottomRight())
        assert window.rect().contains(bottom_right), (bottom_right, window.size())
    finally:
        window.close()
        window.deleteLater()
