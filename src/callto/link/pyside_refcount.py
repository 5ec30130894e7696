"""A workaround for PySide6/shiboken6 6.12.0 on Python 3.11: every call into Qt drops a reference to
``None`` (and some to ``True``/``False``) that it never took.

Measured here: 100 ``QLabel.clear()`` calls lower ``sys.getrefcount(None)`` by exactly 100. Python 3.12
made these singletons immortal, so the same wheels are harmless there; on 3.11 the count reaches zero
after enough calls and the process aborts (``Fatal Python error: none_dealloc`` / ``bool_dealloc``), in a
long-running Link or at the end of a test run. Until a fixed PySide6 is installed, the three singletons
get a reference count no run can exhaust, which is what 3.12 does for them anyway.
"""

from __future__ import annotations

import ctypes
import sys
from importlib import metadata

# 2**40 references: at a million Qt calls a second, thirteen days... times a thousand.
_RESERVE = 1 << 40


def affected(python: tuple[int, int] | None = None, shiboken: str | None = None) -> bool:
    """Whether this interpreter and shiboken6 have the bug (CPython 3.11 or older with shiboken6 6.12.x)."""
    python = python or (sys.version_info.major, sys.version_info.minor)
    if shiboken is None:
        try:
            shiboken = metadata.version("shiboken6")
        except metadata.PackageNotFoundError:
            return False
    return python < (3, 12) and shiboken.startswith("6.12.") and sys.implementation.name == "cpython"


_applied = False


def apply() -> bool:
    """Reserve the references once per process when affected; returns whether it did."""
    global _applied
    if _applied or not affected():
        return False
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every CPython object (Include/object.h, 3.11).
        ctypes.c_ssize_t.from_address(id(singleton)).value += _RESERVE
    _applied = True
    return True
