"""A private X server (Xvfb) on a free display number, and the X tools the desktop tests drive it with:
``xclip`` to own the PRIMARY selection or the CLIPBOARD like a program where the user selected text, and
``xdotool`` to press keys as the user would."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support.procs import ManagedProcess, ProcessGroup

X11_DIR = Path("/tmp/.X11-unix")


def missing_tools(*tools: str) -> list[str]:
    return [t for t in ("Xvfb", *tools) if shutil.which(t) is None]


@dataclass
class XDisplay:
    number: int
    process: ManagedProcess
    procs: ProcessGroup

    @property
    def name(self) -> str:
        return f":{self.number}"

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.name}

    def own_selection(self, text: str, selection: str = "primary") -> ManagedProcess:
        """Own PRIMARY (what the user selected) or CLIPBOARD (what the user copied) until stopped or until
        another owner takes it. ``-quiet`` keeps xclip in the foreground, so the test can stop it."""
        proc = self.procs.start(
            ["xclip", "-quiet", "-selection", selection, "-i"],
            name=f"xclip-{selection}",
            env={"DISPLAY": self.name},
            stdin_pipe=True,
        )
        assert proc.popen.stdin is not None
        proc.popen.stdin.write(text.encode())
        proc.popen.stdin.close()
        # Ownership is taken once the input is read; the test's next read must see it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            got = subprocess.run(
                ["xclip", "-o", "-selection", selection],
                env={**os.environ, "DISPLAY": self.name},
                capture_output=True,
                timeout=5,
            )
            if got.returncode == 0 and got.stdout.decode(errors="replace") == text:
                return proc
            time.sleep(0.05)
        raise AssertionError(f"xclip did not take the {selection} selection:\n{proc.tail()}")

    def press(self, chord: str) -> None:
        """Press and release a key chord (``ctrl+alt+d``) through the XTEST extension, like a keyboard."""
        subprocess.run(
            ["xdotool", "key", "--clearmodifiers", chord],
            env={**os.environ, "DISPLAY": self.name},
            check=True,
            timeout=10,
        )


def start_xvfb(procs: ProcessGroup, attempts: int = 6) -> XDisplay | str:
    """Start Xvfb on a display number nobody uses; return it, or the reason it could not start."""
    reason = "Xvfb did not start"
    for _ in range(attempts):
        number = random.randrange(100, 900)
        if (X11_DIR / f"X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        proc = procs.start(
            ["Xvfb", f":{number}", "-nolisten", "tcp", "-screen", "0", "1024x768x24", "-noreset"],
            name=f"xvfb-{number}",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.alive():
            if (X11_DIR / f"X{number}").exists():
                ready = subprocess.run(
                    ["xdpyinfo"] if shutil.which("xdpyinfo") else ["xdotool", "getdisplaygeometry"],
                    env={**os.environ, "DISPLAY": f":{number}"},
                    capture_output=True,
                    timeout=5,
                )
                if ready.returncode == 0:
                    return XDisplay(number, proc, procs)
            time.sleep(0.05)
        # Another test process may have taken the same number between the check and the start.
        reason = f"Xvfb :{number} did not start: {proc.tail(5)}"
        proc.stop()
    return reason
