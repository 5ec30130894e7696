"""The global "dial selected text" shortcut: parsing and checking the key combination, telling whether a
global shortcut is possible on this desktop, and the listener itself.

Qt has no system-wide hotkeys, so Link uses ``pynput`` (installed with ``callto[link]``): on Linux it
watches the X server's key events (XRecord), on Windows and macOS the OS hooks (macOS asks for the
Accessibility permission). Wayland lets no application see keys pressed in other applications, so there
the settings window says so and the tray menu's "Dial selection / clipboard" is the way.

The user picks the combination in a ``QKeySequenceEdit``; Link stores Qt's portable text (``Ctrl+Alt+D``)
and translates it here to pynput's syntax (``<ctrl>+<alt>+d``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from callto.link.i18n import tr

log = logging.getLogger("callto.link")

READY_TIMEOUT = 3.0

# Qt's portable names -> pynput's. On macOS Qt's "Ctrl" is the Command key and "Meta" the Control key.
_MODS = {"ctrl": "<ctrl>", "alt": "<alt>", "shift": "<shift>", "meta": "<cmd>"}
_MODS_MAC = {"ctrl": "<cmd>", "alt": "<alt>", "shift": "<shift>", "meta": "<ctrl>"}
_MOD_WORDS = {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "meta": "Meta"}
_MOD_WORDS_MAC = {"ctrl": "Command", "alt": "Option", "shift": "Shift", "meta": "Control"}
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
    "pgup": "<page_up>",
    "pgdown": "<page_down>",
    "up": "<up>",
    "down": "<down>",
    "left": "<left>",
    "right": "<right>",
}
_KEY_WORDS = {"space": "Space", "return": "Enter", "enter": "Enter", "esc": "Esc", "ins": "Insert", "del": "Delete"}


@dataclass(frozen=True)
class Shortcut:
    """A checked key combination: Qt's portable text, pynput's hotkey text, and the words to show."""

    qt: str
    pynput: str
    words: str


def _parts(sequence: str) -> list[str]:
    return [p.strip() for p in sequence.replace("++", "+plus").split("+") if p.strip()]


def parse(sequence: str, *, platform: str | None = None) -> Shortcut:
    """Check ``sequence`` (Qt portable text) and translate it; raise ``ValueError`` saying why not."""
    mac = (platform or sys.platform) == "darwin"
    text = (sequence or "").strip()
    if not text:
        raise ValueError("Press a key combination, like Ctrl + Alt + D.")
    if "," in text.replace("+,", "+comma"):
        raise ValueError("Use one key combination, not a sequence of several.")
    mods_map, mod_words = (_MODS_MAC, _MOD_WORDS_MAC) if mac else (_MODS, _MOD_WORDS)
    mods: list[str] = []
    key: tuple[str, str, str] | None = None  # pynput, words, Qt
    for part in _parts(text):
        low = part.lower()
        if low in mods_map:
            if low not in mods:
                mods.append(low)
            continue
        if key is not None:
            raise ValueError("Use one key with the modifiers, like Ctrl + Alt + D.")
        if low in _KEYS:
            qt = part.upper() if low.startswith("f") else part.title()
            key = (_KEYS[low], _KEY_WORDS.get(low, qt), qt)
        elif low == "plus":
            key = ("+", "Plus", "+")
        elif len(part) == 1 and part.isprintable() and not part.isspace():
            key = (low, part.upper(), part.upper())
        else:
            raise ValueError(f"The key {part!r} cannot be used in a global shortcut.")
    if key is None:
        raise ValueError("Add a key to the modifiers, like Ctrl + Alt + D.")
    if not set(mods) - {"shift"}:
        raise ValueError(
            "A global shortcut needs Ctrl, Alt or Meta: a key alone, or with Shift, is typed in other "
            "programs all the time."
        )
    order = [m for m in ("ctrl", "alt", "shift", "meta") if m in mods]
    return Shortcut(
        qt="+".join([*(m.title() for m in order), key[2]]),
        pynput="+".join([*(mods_map[m] for m in order), key[0]]),
        words=" + ".join([*(mod_words[m] for m in order), key[1]]),
    )


def to_pynput(sequence: str) -> str:
    """``Ctrl+Alt+D`` (Qt portable text) -> ``<ctrl>+<alt>+d`` (pynput hotkey syntax)."""
    return parse(sequence).pynput


def describe(sequence: str) -> str:
    """The combination in plain words (``Ctrl + Alt + D``), or the text itself when it does not parse."""
    try:
        return parse(sequence).words
    except ValueError:
        return sequence


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


def _how_else() -> str:
    return tr("hotkey.howElse")


def availability(env: Mapping[str, str] | None = None, platform: str | None = None) -> Availability:
    """Whether a global shortcut can work here, and if not why, in words for the settings window."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    if platform not in ("win32", "darwin", "cygwin") and not env.get("DISPLAY"):
        if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
            return Availability(False, f"{tr('hotkey.wayland')} {_how_else()}")
        return Availability(False, f"{tr('hotkey.noDisplay')} {_how_else()}")
    try:
        from pynput import keyboard  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError):
            return Availability(False, f"{tr('hotkey.noPynput')} {_how_else()}")
        # pynput imports but finds no usable backend (X server gone, no permission).
        return Availability(False, f"{tr('hotkey.broken', problem=exc)} {_how_else()}")
    except Exception as exc:
        return Availability(False, f"{tr('hotkey.broken', problem=exc)} {_how_else()}")
    return Availability(True)


class GlobalHotkey:
    """Calls ``callback`` (from pynput's thread) when the shortcut is pressed anywhere.

    ``set`` returns whether the shortcut is now active; when it is not, ``reason`` says why in plain words.
    """

    def __init__(self, callback: Callable[[], None], *, check: Callable[[], Availability] = availability) -> None:
        self.callback = callback
        self._check = check
        self._listener: Any = None
        self._lock = threading.Lock()
        self.shortcut: Shortcut | None = None
        self.reason = ""

    @property
    def active(self) -> bool:
        return self._listener is not None and bool(self._listener.is_alive())

    def set(self, sequence: str) -> bool:
        self.stop()
        try:
            shortcut = parse(sequence)
        except ValueError as exc:
            self.reason = str(exc)
            return False
        self.shortcut = shortcut
        found = self._check()
        if not found.ok:
            self.reason = found.reason
            return False
        try:
            from pynput import keyboard  # type: ignore[import-not-found,import-untyped,unused-ignore]

            listener = keyboard.GlobalHotKeys({shortcut.pynput: self._pressed})
            listener.start()
        except Exception as exc:
            self.reason = f"{tr('hotkey.cannotWatch', shortcut=shortcut.words, problem=exc)} {_how_else()}"
            return False
        # pynput's own wait() blocks forever when its thread dies before it is ready (X server refused).
        deadline = time.monotonic() + READY_TIMEOUT
        while not getattr(listener, "_ready", True) and listener.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not listener.is_alive() or not getattr(listener, "_ready", True):
            listener.stop()
            self.reason = f"{tr('hotkey.listenerFailed', shortcut=shortcut.words)} {_how_else()}"
            return False
        with self._lock:
            self._listener = listener
        self.reason = ""
        log.info("global shortcut %s active", shortcut.words)
        return True

    def _pressed(self) -> None:
        try:
            self.callback()
        except Exception:  # an error must not kill pynput's thread and with it the shortcut
            log.exception("global shortcut handler failed")

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.stop()
                _wake_xrecord(listener)
                # Its thread closes its X connections on the way out; let it finish before going on.
                listener.join(2.0)
            except Exception as exc:  # the X server went away first (logout, display closed)
                log.info("global shortcut listener stopped with %s", exc.__class__.__name__)


def _wake_xrecord(listener: Any) -> None:
    """pynput (1.8) disables its XRecord context on the very connection its thread is blocked reading, so
    the request waits for the next key press and the thread lingers holding the X server. Disabling it on
    the listener's control connection, as XRecord documents, ends the thread at once."""
    control = getattr(listener, "_display_stop", None)
    context = getattr(listener, "_context", None)
    if control is None or context is None:
        return  # not the X11 backend (Windows, macOS) or it never started
    try:
        control.record_disable_context(context)
        control.flush()
    except Exception as exc:  # already closed by the thread itself, or the X server is gone
        log.debug("XRecord context already gone: %s", exc)
