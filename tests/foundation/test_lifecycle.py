"""Server lifecycle: first start, restart with the same data, token expiry; the CLI on the same data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from support.server import ROOT, Api, ServerProcess, start_server


def _cli(data_dir: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTO_")}
    env.update(CALLTO_DATA_DIR=str(data_dir), CALLTO_DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-m", "callto", *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_restart_loses_nothing(server: ServerProcess) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = admin.create_user(extension="2601")
    device = admin.add_device(user["id"], "deskphone")
    server.restart()
    admin2 = Api(server.url).login("admin", "admin-secret-1")
    again = admin2.get(f"/api/v1/admin/users/{user['id']}").json()
    assert again["extension"] == "2601"
    assert again["devices"][0]["sip"] == device["sip"]
    Api(server.url).login(user["username"], "password-123").close()
    for api in (admin, admin2):
        api.close()


def test_first_start_prints_a_generated_admin_password_only_once(tmp_path: Path, database_url: str) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=database_url)
    proc.env_extra = {"CALLTO_ADMIN_PASSWORD": ""}
    proc.start()
    try:
        match = re.search(r"log in as 'admin' with password '([^']+)'", proc.log())
        assert match, proc.log()
        Api(proc.url).login("admin", match.group(1)).close()
        proc.restart()
        assert "log in as 'admin'" not in proc.log()
        Api(proc.url).login("admin", match.group(1)).close()
    finally:
        proc.stop()


def test_expired_token_is_refused_with_a_clear_reason(tmp_path: Path, database_url: str) -> None:
    proc = start_server(tmp_path / "data", database_url, CALLTO_TOKEN_TTL_SECONDS="1")
    try:
        api = Api(proc.url).login("admin", "admin-secret-1")
        assert api.get("/api/v1/me").status_code == 200
        import time

        time.sleep(2.2)
        r = api.get("/api/v1/me")
        assert r.status_code == 401
        assert r.json()["details"] == {"reason": "expired"}
        api.close()
    finally:
        proc.stop()


def test_cli_administers_the_same_data_as_the_server(server: ServerProcess) -> None:
    data, url = server.data_dir, server.database_url
    r = _cli(data, url, "admin", "user", "add", "carla", "--name", "Carla Rossi", "--extension", "2701", "--json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    password = created["password"]
    r = _cli(data, url, "admin", "device", "add", "carla", "deskphone", "--json")
    assert r.returncode == 0, r.stderr
    device = json.loads(r.stdout)
    assert device["sip"]["username"]
    # The running server sees what the CLI wrote.
    api = Api(server.url).login("carla", password)
    me = api.get("/api/v1/me").json()
    assert me["extension"] == "2701" and me["devices"][0]["id"] == device["id"]
    r = _cli(data, url, "admin", "user", "reset-password", "carla")
    assert r.returncode == 0
    assert api.get("/api/v1/me").status_code == 401
    Api(server.url).login("carla", r.stdout.strip()).close()
    r = _cli(data, url, "admin", "user", "list", "--json")
    assert {u["username"] for u in json.loads(r.stdout)} == {"admin", "carla"}
    api.close()


def test_cli_bad_input_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert _cli(tmp_path, url, "init").returncode == 0
    r = _cli(tmp_path, url, "admin", "user", "add", "Bad Name!")
    assert r.returncode == 2 and "username" in r.stderr and "Traceback" not in r.stderr
    r = _cli(tmp_path, url, "admin", "user", "show", "nobody")
    assert r.returncode == 1 and "no user 'nobody'" in r.stderr
    r = _cli(tmp_path, url, "--help")
    assert r.returncode == 0
    for command in ("serve", "admin"):
        assert command in r.stdout


def test_health_reports_when_the_server_is_up(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/api/v1/health").json()["status"] == "ok"
