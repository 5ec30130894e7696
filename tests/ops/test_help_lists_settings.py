"""`--help` of `callto serve` and `callto-link` lists the settings and variables they read."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from callto.config import Settings
from support.server import ROOT


def _help(*argv: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTO_")}
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_serve_help_names_every_setting() -> None:
    text = _help(sys.executable, "-m", "callto", "serve")
    missing = [f.name for f in dataclasses.fields(Settings) if f"CALLTO_{f.name.upper()}" not in text]
    assert not missing, missing


def test_link_help_names_its_settings_and_variables() -> None:
    text = _help(sys.executable, "-c", "import sys; from callto.link.main import main; sys.exit(main())")
    for name in ("server_url", "shortcut", "language", "settings.json", "CALLTO_LINK_LOG_LEVEL",
                 "CALLTO_LINK_CONFIG_DIR"):
        assert name in text, text
