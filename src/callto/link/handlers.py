"""Make Link the operating system's handler for ``tel:`` and ``callto:`` links, and undo it.

- Linux (freedesktop): a ``.desktop`` file declaring ``MimeType=x-scheme-handler/tel;x-scheme-handler/callto;``
  in ``$XDG_DATA_HOME/applications``, ``update-desktop-database`` when present, and ``xdg-mime default``
  for both schemes (which records the choice in ``$XDG_CONFIG_HOME/mimeapps.list``).
- Windows: per-user registry entries under ``HKCU\\Software\\Classes`` (a ProgID plus the ``tel`` and
  ``callto`` scheme keys, each with ``URL Protocol`` and ``shell\\open\\command``) and a Default Programs
  registration (``Capabilities\\URLAssociations`` + ``RegisteredApplications``) so Link is listed in
  Settings > Default apps. Produced as data and as ``.reg`` text by pure functions; ``winreg`` writes them
  on Windows only.
- macOS: the bundle's ``Info.plist`` ``CFBundleURLTypes`` (LaunchServices reads it when the app is
  installed); URLs then arrive as Qt ``QFileOpenEvent``\\ s, handled in :mod:`callto.link.app`.
"""

from __future__ import annotations

import configparser
import os
import plistlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callto import __version__ as _pkg_version
from callto.link import APP_ID, APP_NAME, BUNDLE_ID, SCHEMES
from callto.link.errors import HandlerRegistrationFailed

DESKTOP_ID = f"{APP_ID}.desktop"
WIN_PROGID = "calltoLink.URL"
WIN_APP_KEY = r"Software\callto\Link"
WIN_CAPABILITIES = WIN_APP_KEY + r"\Capabilities"


def launcher_command() -> list[str]:
    """The command that starts this Link, as the OS should run it for a clicked link."""
    if getattr(sys, "frozen", False):  # PyInstaller / Briefcase bundle
        return [sys.executable]
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name.startswith(APP_ID) and argv0.exists():
        return [str(argv0.resolve())]
    found = shutil.which(APP_ID)
    if found:
        return [found]
    return [sys.executable, "-m", "callto.link"]


@dataclass
class Report:
    """What a registration did, in plain lines, for the CLI and the settings window."""

    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)


# ============================================================================================== Linux
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def _exec_quote(arg: str) -> str:
    """Quote one Exec argument as the Desktop Entry spec asks (quote, then escape for a string value)."""
    if arg and not (set(arg) & _EXEC_RESERVED) and "%" not in arg and "=" not in arg:
        return arg
    inner = "".join("\\" + c if c in '"`$\\' else c for c in arg).replace("%", "%%")
    # The whole value is itself a desktop-file string, where a backslash must be doubled once more.
    return '"' + inner.replace("\\", "\\\\") + '"'


def desktop_entry(command: list[str]) -> str:
    exec_line = " ".join(_exec_quote(a) for a in command) + " %u"
    mime = "".join(f"x-scheme-handler/{s};" for s in SCHEMES)
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        f"Name={APP_NAME}\n"
        "GenericName=Click-to-call\n"
        "Comment=Call tel: and callto: links with your own phone through callto\n"
        f"Exec={exec_line}\n"
        "Icon=call-start\n"
        "Terminal=false\n"
        "Categories=Network;Telephony;\n"
        f"MimeType={mime}\n"
        "StartupNotify=false\n"
    )


def _xdg_data_home(env: dict[str, str]) -> Path:
    return Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME") or Path.home()) / ".local" / "share")


def _xdg_config_home(env: dict[str, str]) -> Path:
    return Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME") or Path.home()) / ".config")


def _run(argv: list[str], env: dict[str, str], report: Report) -> bool:
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.add(f"{argv[0]} failed: {exc}")
        return False
    if proc.returncode != 0:
        report.add(f"{' '.join(argv)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
        return False
    return True


def linux_register(command: list[str] | None = None, env: dict[str, str] | None = None) -> Report:
    env = dict(os.environ if env is None else env)
    report = Report()
    apps = _xdg_data_home(env) / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    path = apps / DESKTOP_ID
    path.write_text(desktop_entry(command or launcher_command()), encoding="utf-8")
    report.add(f"Wrote {path}")
    if shutil.which("update-desktop-database", path=env.get("PATH")):
        if _run(["update-desktop-database", str(apps)], env, report):
            report.add(f"Updated the desktop database in {apps}")
    else:
        report.add("update-desktop-database not found (package desktop-file-utils); skipped, not required")
    if not shutil.which("xdg-mime", path=env.get("PATH")):
        report.ok = False
        report.add("xdg-mime not found: install xdg-utils (Debian/Ubuntu: apt install xdg-utils)")
        return report
    for scheme in SCHEMES:
        if _run(["xdg-mime", "default", DESKTOP_ID, f"x-scheme-handler/{scheme}"], env, report):
            report.add(f"{APP_NAME} is now the default handler for {scheme}: links")
        else:
            report.ok = False
    return report


def linux_query(scheme: str, env: dict[str, str] | None = None) -> str | None:
    env = dict(os.environ if env is None else env)
    try:
        proc = subprocess.run(
            ["xdg-mime", "query", "default", f"x-scheme-handler/{scheme}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None


def _strip_mimeapps(path: Path, report: Report) -> None:
    if not path.exists():
        return
    # configparser would lowercase nothing here (optionxform kept) but drops comments; mimeapps.list
    # has none by spec, and keeping other apps' entries intact is what matters.
    cp = configparser.RawConfigParser(delimiters=("=",), strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(path, encoding="utf-8")
    changed = False
    for section in ("Default Applications", "Added Associations"):
        if not cp.has_section(section):
            continue
        for scheme in SCHEMES:
            key = f"x-scheme-handler/{scheme}"
            if not cp.has_option(section, key):
                continue
            ids = [x for x in cp.get(section, key).split(";") if x]
            kept = [x for x in ids if x != DESKTOP_ID]
            if kept != ids:
                changed = True
                if kept:
                    cp.set(section, key, ";".join(kept) + (";" if section != "Default Applications" else ""))
                else:
                    cp.remove_option(section, key)
    if changed:
        with path.open("w", encoding="utf-8") as fh:
            cp.write(fh, space_around_delimiters=False)
        report.add(f"Removed {APP_NAME} from {path}")


def linux_unregister(env: dict[str, str] | None = None) -> Report:
    env = dict(os.environ if env is None else env)
    report = Report()
    apps = _xdg_data_home(env) / "applications"
    path = apps / DESKTOP_ID
    if path.exists():
        path.unlink()
        report.add(f"Removed {path}")
    for mimeapps in (_xdg_config_home(env) / "mimeapps.list", apps / "mimeapps.list"):
        _strip_mimeapps(mimeapps, report)
    if apps.exists() and shutil.which("update-desktop-database", path=env.get("PATH")):
        _run(["update-desktop-database", str(apps)], env, report)
    if not report.lines:
        report.add(f"{APP_NAME} was not registered.")
    return report


# ============================================================================================== Windows
@dataclass(frozen=True)
class RegKey:
    """One key under HKEY_CURRENT_USER and its string values ('' is the key's default value)."""

    path: str
    values: tuple[tuple[str, str], ...] = ()


def windows_command(command: list[str]) -> str:
    """``"C:\\...\\callto-link.exe" "%1"``: the exe quoted (paths have spaces), the URL as one argument."""
    return " ".join(f'"{a}"' for a in command) + ' "%1"'


def windows_entries(command: list[str], icon: str | None = None) -> list[RegKey]:
    """The per-user registry keys that make Link the tel:/callto: handler and list it in Default Apps."""
    open_cmd = windows_command(command)
    icon_value = icon or f"{command[0]},0"
    keys: list[RegKey] = [
        RegKey(
            rf"Software\Classes\{WIN_PROGID}",
            (("", f"URL:{APP_NAME}"), ("URL Protocol", ""), ("FriendlyTypeName", f"{APP_NAME} link")),
        ),
        RegKey(rf"Software\Classes\{WIN_PROGID}\DefaultIcon", (("", icon_value),)),
        RegKey(rf"Software\Classes\{WIN_PROGID}\shell\open\command", (("", open_cmd),)),
    ]
    for scheme in SCHEMES:
        keys += [
            RegKey(rf"Software\Classes\{scheme}", (("", f"URL:{scheme} Protocol"), ("URL Protocol", ""))),
            RegKey(rf"Software\Classes\{scheme}\DefaultIcon", (("", icon_value),)),
            RegKey(rf"Software\Classes\{scheme}\shell\open\command", (("", open_cmd),)),
        ]
    keys += [
        RegKey(
            WIN_CAPABILITIES,
            (
                ("ApplicationName", APP_NAME),
                ("ApplicationDescription", "Calls tel: and callto: links with your phone through callto."),
                ("ApplicationIcon", icon_value),
            ),
        ),
        RegKey(WIN_CAPABILITIES + r"\URLAssociations", tuple((s, WIN_PROGID) for s in SCHEMES)),
        RegKey(r"Software\RegisteredApplications", ((APP_NAME, WIN_CAPABILITIES),)),
    ]
    return keys


def _reg_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def windows_reg_text(keys: list[RegKey]) -> str:
    """The same entries as a ``.reg`` file (Registry Editor 5.00 format; save as UTF-16 LE with BOM)."""
    out = ["Windows Registry Editor Version 5.00", ""]
    for key in keys:
        out.append(f"[HKEY_CURRENT_USER\\{key.path}]")
        for name, value in key.values:
            out.append(f"{'@' if name == '' else _reg_string(name)}={_reg_string(value)}")
        out.append("")
    return "\r\n".join(out) + "\r\n"


def windows_unregister_text() -> str:
    """A ``.reg`` that removes what :func:`windows_entries` adds (``[-key]`` deletes, ``"v"=-`` drops)."""
    out = ["Windows Registry Editor Version 5.00", ""]
    for path in (rf"Software\Classes\{WIN_PROGID}", WIN_APP_KEY, *(rf"Software\Classes\{s}" for s in SCHEMES)):
        out += [f"[-HKEY_CURRENT_USER\\{path}]", ""]
    out += [r"[HKEY_CURRENT_USER\Software\RegisteredApplications]", f"{_reg_string(APP_NAME)}=-", ""]
    return "\r\n".join(out) + "\r\n"


def windows_register(keys: list[RegKey]) -> Report:  # pragma: no cover - needs Windows
    if sys.platform != "win32":
        raise HandlerRegistrationFailed("The Windows registry is only available on Windows.")
    import winreg

    report = Report()
    for key in keys:
        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, key.path, 0, winreg.KEY_WRITE) as h:
            for name, value in key.values:
                winreg.SetValueEx(h, name or None, 0, winreg.REG_SZ, value)
        report.add(rf"Wrote HKCU\{key.path}")
    _notify_windows_shell()
    report.add("Open Settings > Apps > Default apps > callto Link to confirm it for tel and callto.")
    return report


def _delete_tree(root: Any, path: str) -> None:  # pragma: no cover - needs Windows
    if sys.platform != "win32":
        raise HandlerRegistrationFailed("The Windows registry is only available on Windows.")
    import winreg

    try:
        with winreg.OpenKey(root, path, 0, winreg.KEY_ALL_ACCESS) as h:
            while True:
                try:
                    child = winreg.EnumKey(h, 0)
                except OSError:
                    break
                _delete_tree(root, path + "\\" + child)
        winreg.DeleteKey(root, path)
    except FileNotFoundError:
        pass


def windows_unregister(command: list[str] | None = None) -> Report:  # pragma: no cover - needs Windows
    if sys.platform != "win32":
        raise HandlerRegistrationFailed("The Windows registry is only available on Windows.")
    import winreg

    report = Report()
    mine = windows_command(command or launcher_command())
    hkcu = winreg.HKEY_CURRENT_USER
    _delete_tree(hkcu, rf"Software\Classes\{WIN_PROGID}")
    _delete_tree(hkcu, WIN_APP_KEY)
    for scheme in SCHEMES:
        # Only remove a scheme key that still points at Link: another app may have taken it since.
        try:
            current = winreg.QueryValue(hkcu, rf"Software\Classes\{scheme}\shell\open\command")
        except OSError:
            continue
        if current == mine:
            _delete_tree(hkcu, rf"Software\Classes\{scheme}")
            report.add(rf"Removed HKCU\Software\Classes\{scheme}")
    try:
        with winreg.OpenKey(hkcu, r"Software\RegisteredApplications", 0, winreg.KEY_SET_VALUE) as h:
            winreg.DeleteValue(h, APP_NAME)
    except OSError:
        pass
    _notify_windows_shell()
    report.add(f"{APP_NAME} is no longer registered for tel: and callto:.")
    return report


def _notify_windows_shell() -> None:  # pragma: no cover - needs Windows
    if sys.platform != "win32":
        raise HandlerRegistrationFailed("The Windows registry is only available on Windows.")
    import ctypes

    shcne_assocchanged, shcnf_idlist = 0x08000000, 0x0000
    ctypes.windll.shell32.SHChangeNotify(shcne_assocchanged, shcnf_idlist, None, None)


# ============================================================================================== macOS
def macos_url_types() -> list[dict[str, Any]]:
    """``CFBundleURLTypes``: one entry naming both schemes; Link only views (opens) these URLs."""
    return [
        {
            "CFBundleURLName": f"{BUNDLE_ID}.phone-link",
            "CFBundleURLSchemes": list(SCHEMES),
            "CFBundleTypeRole": "Viewer",
        }
    ]


def macos_info_plist(executable: str = APP_ID, version: str = _pkg_version) -> bytes:
    """An ``Info.plist`` for the app bundle (PyInstaller/Briefcase merge it into theirs)."""
    info: dict[str, Any] = {
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleExecutable": executable,
        "CFBundlePackageType": "APPL",
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        "CFBundleInfoDictionaryVersion": "6.0",
        "LSMinimumSystemVersion": "11.0",
        # A tray-only app: no Dock icon, no menu bar of its own.
        "LSUIElement": True,
        "NSHighResolutionCapable": True,
        "NSMicrophoneUsageDescription": "callto Link uses the microphone when it is your phone.",
        "CFBundleURLTypes": macos_url_types(),
    }
    return plistlib.dumps(info, fmt=plistlib.FMT_XML, sort_keys=True)


def macos_register() -> Report:  # pragma: no cover - needs macOS
    report = Report()
    report.add(
        "On macOS the handler comes with the app bundle (Info.plist CFBundleURLTypes): move callto Link "
        "to Applications and open it once; pick it for tel: links in FaceTime > Settings > Default for calls."
    )
    return report


# ============================================================================================== CLI
def register(command: list[str] | None = None) -> Report:
    if sys.platform.startswith("linux") or sys.platform.startswith("freebsd"):
        return linux_register(command)
    if sys.platform == "win32":  # pragma: no cover - needs Windows
        return windows_register(windows_entries(command or launcher_command()))
    if sys.platform == "darwin":  # pragma: no cover - needs macOS
        return macos_register()
    raise HandlerRegistrationFailed(f"Handler registration is not supported on {sys.platform}.")


def unregister() -> Report:
    if sys.platform.startswith("linux") or sys.platform.startswith("freebsd"):
        return linux_unregister()
    if sys.platform == "win32":  # pragma: no cover - needs Windows
        return windows_unregister()
    if sys.platform == "darwin":  # pragma: no cover - needs macOS
        rep = Report()
        rep.add("On macOS remove the app from Applications, or pick another default for tel: links.")
        return rep
    raise HandlerRegistrationFailed(f"Handler registration is not supported on {sys.platform}.")
