"""Start Link at login when the user asks: XDG autostart, the Windows Run key, a macOS LaunchAgent."""

from __future__ import annotations

import contextlib
import os
import plistlib
import sys
from pathlib import Path
from typing import Any

from callto.link import APP_ID, APP_NAME, BUNDLE_ID
from callto.link.handlers import _exec_quote, launcher_command

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


def linux_autostart_path(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ if env is None else env)
    base = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME") or Path.home()) / ".config")
    return base / "autostart" / f"{APP_ID}.desktop"


def linux_autostart_entry(command: list[str]) -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        f"Name={APP_NAME}\n"
        f"Exec={' '.join(_exec_quote(a) for a in command)} --background\n"
        "Icon=call-start\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
        "NoDisplay=true\n"
    )


def macos_launch_agent(command: list[str]) -> bytes:
    """``~/Library/LaunchAgents/org.callto.link.plist``: run Link at login, once."""
    agent: dict[str, Any] = {
        "Label": BUNDLE_ID,
        "ProgramArguments": [*command, "--background"],
        "RunAtLoad": True,
        "ProcessType": "Interactive",
    }
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=True)


def windows_run_value(command: list[str]) -> tuple[str, str]:
    return APP_NAME, " ".join(f'"{a}"' for a in command) + " --background"


def apply(enabled: bool, command: list[str] | None = None, env: dict[str, str] | None = None) -> str:
    """Turn start-at-login on or off for this user; returns what was done, in words."""
    cmd = command or launcher_command()
    if sys.platform == "win32":  # pragma: no cover - needs Windows
        import winreg

        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as h:
            name, value = windows_run_value(cmd)
            if enabled:
                winreg.SetValueEx(h, name, 0, winreg.REG_SZ, value)
            else:
                with contextlib.suppress(FileNotFoundError):
                    winreg.DeleteValue(h, name)
        return f"{'Added to' if enabled else 'Removed from'} HKCU\\{RUN_KEY}"
    if sys.platform == "darwin":  # pragma: no cover - needs macOS
        path = Path.home() / "Library" / "LaunchAgents" / f"{BUNDLE_ID}.plist"
    else:
        path = linux_autostart_path(env)
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        if sys.platform == "darwin":  # pragma: no cover - needs macOS
            path.write_bytes(macos_launch_agent(cmd))
        else:
            path.write_text(linux_autostart_entry(cmd), encoding="utf-8")
        return f"Link will start at login ({path})."
    path.unlink(missing_ok=True)
    return "Link will not start at login."
