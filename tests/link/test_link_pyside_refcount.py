"""Link survives PySide6 6.12.0's lost references to None on Python 3.11 (see callto.link.pyside_refcount):
a child process makes 200,000 Qt calls, which without the workaround abort it with none_dealloc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from callto.link import pyside_refcount

CALLS = """
import sys
{imports}
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication([])
label = QLabel()
for _ in range(200_000):
    label.clear()
print("survived")
"""


def _run(imports: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-c", CALLS.format(imports=imports)], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_workaround_is_for_python_3_11_with_shiboken_6_12_only() -> None:
    assert pyside_refcount.affected((3, 11), "6.12.0")
    assert not pyside_refcount.affected((3, 12), "6.12.0")
    assert not pyside_refcount.affected((3, 11), "6.11.2")


def test_link_survives_many_qt_calls() -> None:
    done = _run("import callto.link")
    assert done.returncode == 0 and "survived" in done.stdout, done.stderr[-2000:]
    if not pyside_refcount.affected():
        pytest.skip("this PySide6/Python pair does not lose references: nothing to compare against")
    # The same calls without Link's workaround: the bug is real here, so the test above can fail.
    bare = _run("")
    assert bare.returncode != 0 and "dealloc" in bare.stderr, (bare.returncode, bare.stderr[-500:])
