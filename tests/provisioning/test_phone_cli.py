"""``callto admin phone ...`` from a shell, on the same database a server would use.

SQLite only: each command is a process that migrates and builds the services (seconds each); the
behaviour behind it is the service the API tests run on both backends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.server import ADMIN_PASSWORD, ROOT


def _callto(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTO_")}
    env.update(CALLTO_DATA_DIR=str(tmp_path), CALLTO_DATABASE_URL=database_url, CALLTO_ADMIN_PASSWORD=ADMIN_PASSWORD)
    return subprocess.run(
        [sys.executable, "-m", "callto", *args], env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=60
    )


def test_admin_adds_assigns_and_unassigns_a_phone_from_the_shell(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'callto.db'}"
    assert _callto(tmp_path, database_url, "init").returncode == 0
    assert _callto(tmp_path, database_url, "admin", "user", "add", "anna", "--extension", "201").returncode == 0
    added = _callto(
        tmp_path, database_url, "admin", "phone", "add", "80-5e-c0-aa-bb-cc", "t54w", "--user", "anna",
        "--base-url", "http://pbx.example:8080/",
    )
    assert added.returncode == 0, added.stderr
    phone = json.loads(added.stdout)
    assert (phone["mac"], phone["vendor"], phone["model"]) == ("80:5E:C0:AA:BB:CC", "yealink", "T54W")
    assert phone["device_id"] and phone["provisioning_url"].startswith("http://pbx.example:8080/provisioning/")

    again = _callto(tmp_path, database_url, "admin", "phone", "add", "805ec0aabbcc", "T54W")
    assert again.returncode == 1 and "already registered" in again.stderr

    freed = _callto(tmp_path, database_url, "admin", "phone", "unassign", "80:5E:C0:AA:BB:CC")
    assert freed.returncode == 0, freed.stderr
    assert json.loads(freed.stdout)["device_id"] is None and json.loads(freed.stdout)["user_id"] is None
    assert _callto(tmp_path, database_url, "admin", "phone", "delete", str(phone["id"])).returncode == 0
    assert json.loads(_callto(tmp_path, database_url, "admin", "phone", "list").stdout) == []
