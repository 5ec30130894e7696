"""The global "dial selected text" shortcut.

Qt has no system-wide hotkeys, so Link uses ``pynput`` (X11, Windows, macOS with Accessibility permission)
when it is installed; without it the shortcut works only while a Link window has focus and the tray menu
entry is the way to dial a selection. The Qt key sequence the user picks is translated here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MODS = {"ctrl": "<ctrl>", "alt": "<alt>", "shift": "<shift>", "meta": "<cmd>", "win": "<cmd>"}
_KEYS = {f"f{i}": f"<f{i}>" for i in range(1, 25)} | {
    "space": "<space>",
    "return": "<enter>",
    "enter": "<enter>",
    "tab": "<tab>",
    "esc": "<esc>",
    "home": "<home>",
    "end": "<end>",
    "ins": "<insert>",
    "del": "<delete>",
}


def to_pynput(sequence: str) -> str:
    """``Ctrl+Alt+D`` (Qt portable text) -> ``<ctrl>+<alt>+d`` (pynput hotkey syntax)."""
    first = sequence.split(",")[0].strip()
    if not first:
        raise ValueError("empty shortcut")
    parts = [p.strip() for p in first.replace("++", "+plus").split("+") if p.strip()]
    out: list[str] = []
    for p in parts:
        low = p.lower()
        if low in _MODS:
            out.append(_MODS[low])
        elif low in _KEYS:
            out.append(_KEYS[low])
        elif low == "plus":
            out.append("+")
        elif len(p) == 1:
            out.append(low)
        else:
            raise ValueError(f"unsupported key {p!r} in shortcut {sequence!r}")
    if not any(o in _MODS.values() for o in out):
        raise ValueError("a global shortcut needs at least one modifier (Ctrl, Alt, Shift, Meta)")
    return "+".join(out)


class GlobalHotkey:
    """Calls ``callback`` (from pynput's thread) when the shortcut is pressed anywhere."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self._listener: Any = None
        self.reason = ""

    def set(self, sequence: str) -> bool:
        self.stop()
        try:
            from pynput import keyboard  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except Exception as exc:  # ImportError, or no display for X11
            self.reason = f"Global shortcuts need the pynput package ({exc.__class__.__name__})."
            return False
        try:
            listener = keyboard.GlobalHotKeys({to_pynput(sequence): self.callback})
            listener.start()
        except Exception as exc:
            self.reason = f"Cannot register the shortcut {sequence}: {exc}"
            return False
        self._listener = listener
        self.reason = ""
        return True

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
