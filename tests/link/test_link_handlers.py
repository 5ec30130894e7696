"""tel:/callto: handler registration: for real on Linux (temporary XDG home), as checked data for Windows
and macOS (the formats documented by Microsoft and Apple)."""

from __future__ import annotations

import configparser
import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callto.link import autostart, handlers

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def xdg_env(tmp_path: Path) -> dict[str, str]:
    for tool in ("xdg-mime",):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install xdg-utils")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_DIRS": str(tmp_path / "data"),
        "XDG_CONFIG_DIRS": str(tmp_path / "config"),
    }
    (tmp_path / "home").mkdir()
    return env


def test_linux_registration_makes_xdg_mime_answer_our_desktop_file(xdg_env: dict[str, str]) -> None:
    report = handlers.linux_register(["/opt/callto link/bin/callto-link"], env=xdg_env)
    assert report.ok, report.lines
    desktop = Path(xdg_env["XDG_DATA_HOME"]) / "applications" / "callto-link.desktop"
    text = desktop.read_text()
    assert "MimeType=x-scheme-handler/tel;x-scheme-handler/callto;" in text
    # The path with a space is quoted as the Desktop Entry spec asks, and %u passes the clicked URL.
    assert 'Exec="/opt/callto link/bin/callto-link" %u' in text
    for scheme in ("tel", "callto"):
        assert handlers.linux_query(scheme, env=xdg_env) == "callto-link.desktop"
        out = subprocess.run(
            ["xdg-mime", "query", "default", f"x-scheme-handler/{scheme}"],
            env=xdg_env, capture_output=True, text=True, check=True,
        ).stdout.strip()
        assert out == "callto-link.desktop"


def test_desktop_file_passes_the_freedesktop_validator(tmp_path: Path) -> None:
    validator = shutil.which("desktop-file-validate")
    if validator is None:
        pytest.fail("desktop-file-validate is missing: apt-get install desktop-file-utils")
    path = tmp_path / "callto-link.desktop"
    path.write_text(handlers.desktop_entry(["/usr/bin/callto-link"]))
    proc = subprocess.run([validator, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stdout.lower(), proc.stdout + proc.stderr


def test_unregister_removes_link_and_keeps_other_handlers(xdg_env: dict[str, str]) -> None:
    config = Path(xdg_env["XDG_CONFIG_HOME"])
    config.mkdir(parents=True)
    (config / "mimeapps.list").write_text(
        "[Default Applications]\nx-scheme-handler/mailto=thunderbird.desktop\n"
        "[Added Associations]\nx-scheme-handler/tel=other-dialer.desktop;\n"
    )
    assert handlers.linux_register(["/usr/bin/callto-link"], env=xdg_env).ok
    assert handlers.linux_query("tel", env=xdg_env) == "callto-link.desktop"
    report = handlers.linux_unregister(env=xdg_env)
    assert not (Path(xdg_env["XDG_DATA_HOME"]) / "applications" / "callto-link.desktop").exists()
    cp = configparser.RawConfigParser(delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(config / "mimeapps.list")
    assert cp.get("Default Applications", "x-scheme-handler/mailto") == "thunderbird.desktop"
    assert not cp.has_option("Default Applications", "x-scheme-handler/tel")
    assert "callto-link.desktop" not in (config / "mimeapps.list").read_text()
    assert handlers.linux_query("tel", env=xdg_env) != "callto-link.desktop"
    assert any("Removed" in line for line in report.lines)


def test_register_handlers_command_line(xdg_env: dict[str, str]) -> None:
    env = {**xdg_env, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "callto.link", "--register-handlers"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "default handler for tel: links" in proc.stdout
    assert handlers.linux_query("callto", env=xdg_env) == "callto-link.desktop"
    proc = subprocess.run(
        [sys.executable, "-m", "callto.link", "--unregister-handlers"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert handlers.linux_query("callto", env=xdg_env) is None


# ---------------------------------------------------------------------------------------------- Windows
EXE = r"C:\Program Files\callto Link\callto-link.exe"


def _keys() -> dict[str, dict[str, str]]:
    return {k.path: dict(k.values) for k in handlers.windows_entries([EXE])}


def test_windows_scheme_keys_follow_registering_an_application_to_a_uri_scheme() -> None:
    keys = _keys()
    for scheme in ("tel", "callto"):
        root = keys[rf"Software\Classes\{scheme}"]
        # "URL Protocol" must exist (empty string) or Windows will not launch the handler.
        assert root["URL Protocol"] == ""
        assert root[""].startswith("URL:")
        assert keys[rf"Software\Classes\{scheme}\shell\open\command"][""] == f'"{EXE}" "%1"'
        assert keys[rf"Software\Classes\{scheme}\DefaultIcon"][""] == f"{EXE},0"
    progid = keys[r"Software\Classes\calltoLink.URL"]
    assert progid["URL Protocol"] == ""
    assert keys[r"Software\Classes\calltoLink.URL\shell\open\command"][""] == f'"{EXE}" "%1"'


def test_windows_default_programs_registration_lists_link_for_both_schemes() -> None:
    keys = _keys()
    caps = keys[r"Software\callto\Link\Capabilities"]
    assert caps["ApplicationName"] == "callto Link"
    assert caps["ApplicationDescription"]
    assoc = keys[r"Software\callto\Link\Capabilities\URLAssociations"]
    assert assoc == {"tel": "calltoLink.URL", "callto": "calltoLink.URL"}
    # RegisteredApplications points at the Capabilities key, relative to the same hive.
    assert keys[r"Software\RegisteredApplications"] == {"callto Link": r"Software\callto\Link\Capabilities"}


def test_windows_reg_text_is_a_valid_registry_editor_file() -> None:
    text = handlers.windows_reg_text(handlers.windows_entries([EXE]))
    lines = text.split("\r\n")
    assert lines[0] == "Windows Registry Editor Version 5.00"
    key_re = re.compile(r"^\[HKEY_CURRENT_USER\\[^\]]+\]$")
    value_re = re.compile(r'^(@|"(?:[^"\\]|\\.)*")="(?:[^"\\]|\\.)*"$')
    for line in lines[1:]:
        assert line == "" or key_re.match(line) or value_re.match(line), line
    assert r'[HKEY_CURRENT_USER\Software\Classes\tel\shell\open\command]' in lines
    assert r'@="\"C:\\Program Files\\callto Link\\callto-link.exe\" \"%1\""' in lines
    assert '"URL Protocol"=""' in lines
    undo = handlers.windows_unregister_text().split("\r\n")
    assert r"[-HKEY_CURRENT_USER\Software\Classes\tel]" in undo
    assert '"callto Link"=-' in undo
    # regedit reads version 5.00 files as UTF-16 LE with a BOM; the text must survive that encoding.
    assert text.encode("utf-16").decode("utf-16") == text


# ---------------------------------------------------------------------------------------------- macOS
def test_macos_info_plist_declares_both_url_schemes() -> None:
    info = plistlib.loads(handlers.macos_info_plist(executable="callto-link", version="1.2.3"))
    assert info["CFBundleIdentifier"] == "org.callto.link"
    assert info["CFBundlePackageType"] == "APPL"
    (url_type,) = info["CFBundleURLTypes"]
    # Apple: CFBundleURLName (abstract, reverse-DNS), CFBundleURLSchemes (array), CFBundleTypeRole
    # (Editor, Viewer, Shell or None).
    assert url_type["CFBundleURLName"].startswith("org.callto.link")
    assert url_type["CFBundleURLSchemes"] == ["tel", "callto"]
    assert url_type["CFBundleTypeRole"] in ("Editor", "Viewer", "Shell", "None")
    assert info["LSUIElement"] is True


def test_macos_url_open_event_reaches_the_dialer(qapp: object) -> None:
    from PySide6.QtCore import QCoreApplication, QUrl
    from PySide6.QtGui import QFileOpenEvent

    from callto.link.app import UrlOpenFilter

    seen: list[str] = []
    flt = UrlOpenFilter(seen.append)
    QCoreApplication.instance().installEventFilter(flt)  # type: ignore[union-attr]
    try:
        QCoreApplication.sendEvent(QCoreApplication.instance(), QFileOpenEvent(QUrl("tel:+390721405516")))
    finally:
        QCoreApplication.instance().removeEventFilter(flt)  # type: ignore[union-attr]
    assert seen == ["tel:+390721405516"]


def test_start_at_login_writes_and_removes_an_xdg_autostart_entry(xdg_env: dict[str, str]) -> None:
    msg = autostart.apply(True, ["/usr/bin/callto-link"], env=xdg_env)
    path = autostart.linux_autostart_path(xdg_env)
    assert path.exists() and "Exec=/usr/bin/callto-link --background" in path.read_text()
    assert str(path) in msg
    autostart.apply(False, ["/usr/bin/callto-link"], env=xdg_env)
    assert not path.exists()
    agent = plistlib.loads(autostart.macos_launch_agent(["/Applications/callto Link.app/Contents/MacOS/x"]))
    assert agent["RunAtLoad"] is True and agent["ProgramArguments"][-1] == "--background"
