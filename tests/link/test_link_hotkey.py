"""The global "call the selected number" shortcut: the key combination in plain words and its checks, the
settings window where no global shortcut is possible, finding the number in selected text, and the real
thing: Link on a private X server, text selected by another program, the chord pressed with xdotool, the
call placed on the server and the user's desk phone (baresip) ringing."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from callto.link.app import LinkController
from callto.link.hotkey import GlobalHotkey, availability, describe, parse, to_pynput
from callto.link.secrets import DEFAULT_SHORTCUT, Settings, TokenStore
from callto.link.settings_window import SettingsWindow
from callto.link.urls import find_number
from link.conftest import PASSWORD, SCREENSHOTS, make_user, qwait
from support.fixtures import BaresipFactory
from support.procs import ProcessGroup
from support.server import Api, ServerProcess
from support.xvfb import XDisplay, missing_tools, start_xvfb

pytestmark = pytest.mark.timeout(120)
REPO_ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------ the combination
@pytest.mark.parametrize(
    ("qt", "pynput", "words"),
    [
        ("Ctrl+Alt+D", "<ctrl>+<alt>+d", "Ctrl + Alt + D"),
        ("ctrl+alt+d", "<ctrl>+<alt>+d", "Ctrl + Alt + D"),
        ("Meta+Shift+F9", "<shift>+<cmd>+<f9>", "Shift + Meta + F9"),
        ("Ctrl++", "<ctrl>++", "Ctrl + Plus"),
        ("Alt+Space", "<alt>+<space>", "Alt + Space"),
    ],
)
def test_shortcut_translates_to_a_global_hotkey_and_plain_words(qt: str, pynput: str, words: str) -> None:
    assert to_pynput(qt) == pynput
    assert describe(qt) == words


def test_shortcut_on_macos_names_the_command_key() -> None:
    mac = parse("Ctrl+Alt+D", platform="darwin")
    assert mac.pynput == "<cmd>+<alt>+d"
    assert mac.words == "Command + Option + D"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "Press a key combination"),
        ("D", "needs Ctrl, Alt or Meta"),
        ("Shift+D", "needs Ctrl, Alt or Meta"),
        ("Ctrl+Alt", "Add a key"),
        ("Ctrl+Alt+D, Ctrl+X", "one key combination"),
        ("Ctrl+Banana", "cannot be used"),
        ("Ctrl+A+B", "one key with the modifiers"),
    ],
)
def test_unusable_shortcut_is_refused_in_plain_words(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse(bad)


def test_wayland_without_x_says_no_global_shortcut_is_possible() -> None:
    found = availability({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}, "linux")
    assert not found.ok
    assert "Wayland" in found.reason and "tray menu" in found.reason
    bare = availability({}, "linux")
    assert not bare.ok and "no X11 display" in bare.reason


def test_missing_pynput_is_named_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynput", None)
    found = availability({"DISPLAY": ":0"}, "linux")
    assert not found.ok and "pynput package" in found.reason
    hotkey = GlobalHotkey(lambda: None, check=lambda: found)
    assert hotkey.set("Ctrl+Alt+D") is False
    assert hotkey.reason == found.reason and not hotkey.active


# ------------------------------------------------------------------------------------------ selected text
@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("+39 0721 405516", "+390721405516"),
        ("Call Mario at +39 0721 405516 after five", "+390721405516"),
        ("see tel:+390721405516 for sales", "+390721405516"),
        ("Mario Rossi\n0721-405516\nmario@example.com", "0721405516"),
        ("Tel. (0721) 40 55 16 ext. 12", "0721405516;ext=12"),
        ("  201\n", "201"),
    ],
)
def test_number_is_found_in_selected_text(text: str, number: str) -> None:
    assert find_number(text).target == number


@pytest.mark.parametrize("text", ["hello world", "room 12", "x" * 5000])
def test_text_without_a_number_says_so(text: str) -> None:
    with pytest.raises(Exception, match="holds no phone number") as err:
        find_number(text, source="clipboard")
    assert "clipboard" in str(err.value)


@pytest.fixture
def controller(qapp: Any, link_home: Path) -> Any:
    c = LinkController(Settings.load(), TokenStore())
    yield c
    c.shutdown()


def test_dial_selection_without_a_number_notifies_and_calls_nobody(controller: LinkController, qapp: Any) -> None:
    failed: list[Any] = []
    controller.call_failed.connect(failed.append)
    qapp.clipboard().setText("")
    controller.dial_selection()
    assert controller.notifications[-1] == (
        "No number to call",
        "The clipboard is empty. Copy a phone number, then try again.",
    )
    qapp.clipboard().setText("Lunch at noon?")
    controller.dial_selection()
    assert controller.notifications[-1] == (
        "No number to call",
        "The clipboard holds no phone number: \u201cLunch at noon?\u201d.",
    )
    assert len(failed) == 2 and all(f.error == "invalid-number" for f in failed)
    assert controller.pending == []
    qapp.clipboard().setText("Mario: +39 0721 405516")
    controller.dial_selection()
    # Not signed in yet: kept for after sign-in, as a clicked link is.
    assert controller.pending == ["+390721405516"]


def test_settings_window_says_when_no_global_shortcut_is_possible(
    controller: LinkController, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert controller.enable_shortcut() is False
    window = SettingsWindow(controller)
    window.show()
    assert "Wayland" in window.shortcut_status.text()
    assert "tray menu" in window.shortcut_status.text()
    # A combination without a modifier is refused and the saved one stays.
    window.shortcut.setKeySequence("D")
    window.on_shortcut()
    assert "needs Ctrl, Alt or Meta" in window.shortcut_status.text()
    assert controller.settings.shortcut == DEFAULT_SHORTCUT
    assert window.shortcut.keySequence().toString() == DEFAULT_SHORTCUT
    # A good one is saved (and would be applied; here the reason it cannot be global shows again).
    window.shortcut.setKeySequence("Ctrl+Shift+K")
    window.on_shortcut()
    assert controller.settings.shortcut == "Ctrl+Shift+K"
    assert Settings.load().shortcut == "Ctrl+Shift+K"
    assert "Wayland" in window.shortcut_status.text()
    window.shortcut_default.click()
    assert Settings.load().shortcut == DEFAULT_SHORTCUT
    window.resize(560, window.sizeHint().height())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "link-settings-shortcut.png"))
    window.close()


# ------------------------------------------------------------------------------------------ for real
def test_settings_window_shows_the_active_shortcut_and_a_new_one_takes_over(
    controller: LinkController, procs: ProcessGroup, monkeypatch: pytest.MonkeyPatch, qapp: Any
) -> None:
    """On an X server the listener really runs: the window says so in plain words, pressing the old
    combination while typing a new one calls nobody, and the new combination works at once."""
    missing = missing_tools("xdotool")
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian: xvfb xdotool, in the Makefile's DEB_TEST)")
    display = start_xvfb(procs)
    if isinstance(display, str):
        pytest.skip(f"no X server for the global shortcut test: {display}")
    monkeypatch.setenv("DISPLAY", display.name)
    try:
        _active_shortcut_takes_over(controller, display, qapp)
    finally:
        # Before the X server goes (procs' teardown): the listener thread holds connections to it.
        controller.hotkey.stop()


def _active_shortcut_takes_over(controller: LinkController, display: XDisplay, qapp: Any) -> None:
    assert controller.enable_shortcut() is True, controller.hotkey.reason
    window = SettingsWindow(controller)
    window.show()
    assert window.shortcut_status.text() == (
        "Press Ctrl + Alt + D in any program to call the selected number (or the copied one)."
    )
    window.resize(560, window.sizeHint().height())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "link-settings-shortcut-active.png"))
    qapp.clipboard().setText("no number here")
    controller.shortcut_editing = True  # what focusing the shortcut field does
    display.press("ctrl+alt+d")
    qwait(lambda: controller.hotkey_presses >= 1, 10, "the press to reach Link")
    assert controller.notifications == []
    controller.shortcut_editing = False
    window.shortcut.setKeySequence("Ctrl+Shift+K")
    window.on_shortcut()
    assert "Press Ctrl + Shift + K in any program" in window.shortcut_status.text()
    display.press("ctrl+alt+d")  # the old one is gone
    display.press("ctrl+shift+k")
    qwait(lambda: bool(controller.notifications), 10, "the new shortcut to dial")
    assert controller.hotkey_presses == 2
    assert controller.notifications == [
        ("No number to call", "The clipboard holds no phone number: \u201cno number here\u201d.")
    ]
    window.close()


def _link_env(display: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("CALLTO_") or k.startswith("CALLTO_LINK")}
    keep.pop("WAYLAND_DISPLAY", None)
    return {
        **keep,
        # The real X11 platform: Link reads the selection from the X server like on a desktop.
        "QT_QPA_PLATFORM": "xcb",
        "DISPLAY": display,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "tests"), str(REPO_ROOT / "src")]),
        "CALLTO_TEST_KEYRING_FILE": os.environ["CALLTO_TEST_KEYRING_FILE"],
    }


@pytest.mark.sip
def test_global_shortcut_calls_the_selected_number_and_the_desk_phone_rings(
    link_home: Path,
    procs: ProcessGroup,
    shared_server: ServerProcess,
    admin_api: Api,
    baresip_factory: BaresipFactory,
    tone_440: Path,
) -> None:
    missing = missing_tools("xdotool", "xclip")
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian: xvfb xdotool xclip, in the Makefile's DEB_TEST)")
    display = start_xvfb(procs)
    if isinstance(display, str):
        pytest.skip(f"no X server for the global shortcut test: {display}")
    from link.test_link_single import _configure_link, registered_desk_phone

    user = make_user(admin_api)
    desk = user.devices["deskphone"]
    sip: dict[str, Any] = desk["sip"]
    phone = registered_desk_phone(sip, baresip_factory, tone_440, shared_server.sip_port)
    api = Api(shared_server.url).login(user.username, PASSWORD)
    try:
        assert api.put("/api/v1/me/main-device", json={"device_id": desk["id"]}).status_code in (200, 204)
        _configure_link(link_home, shared_server.url, user.username, user.devices["link"]["id"], api.token or "")
        link = procs.start(
            [sys.executable, "-m", "callto.link", "--background"], name="link", env=_link_env(display.name)
        )
        link.wait_for_output(r"global shortcut Ctrl \+ Alt \+ D active", 30)
        link.wait_for_output(r"event stream connected", 30)

        # 1. Only the clipboard holds text, and no number: a clear notification, no call.
        display.own_selection("Lunch at noon?", "clipboard")
        display.press("ctrl+alt+d")
        link.wait_for_output(r"No number to call: The clipboard holds no phone number: .Lunch at noon\?.", 15)
        assert "call placed" not in link.output()

        # 2. Another program selects a sentence with a number (PRIMARY wins over the clipboard).
        display.own_selection("Call Mario at +39 0721 405516 after five", "primary")
        display.press("ctrl+alt+d")
        placed = link.wait_for_output(r"call placed: \+390721405516 (\{.*\})", 20)
        answer = ast.literal_eval(placed.group(1))
        incoming = phone.wait_incoming(timeout=20)
        assert incoming
        # The server has the call, for that number, on the user's desk phone.
        call = httpx.get(
            f"{shared_server.url}/api/v1/calls/{answer['call_id']}",
            headers={"Authorization": f"Bearer {api.token}"},
            timeout=5,
        ).json()
        assert call["number"]["dialed"].endswith("0721405516"), call
        assert call["device_id"] == desk["id"]
        assert f"Calling +390721405516: Pick up {desk['label']}" in link.output()
        phone.hangup()
        assert link.output().count("global shortcut pressed") == 2
    finally:
        api.close()
