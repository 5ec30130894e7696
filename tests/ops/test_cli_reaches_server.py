"""A safe command line: what the CLI changes reaches a running server within a second (no Redis), and
the CLI never creates a data folder or database unless asked with ``callto init``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from ops.cli_support import callto, callto_on, sip_register
from support.server import ServerProcess, admin_client


@pytest.mark.timeout(90)
def test_desk_phone_added_with_the_cli_registers_within_a_second_and_deleted_is_refused(
    server: ServerProcess, tmp_path: Path
) -> None:
    with admin_client(server.url) as admin:
        user = admin.create_user(extension="2801")
        # a first REGISTER of someone else: the switch has loaded its accounts and serves them from memory
        other = admin.add_device(user["id"], "webphone")
        first = sip_register(server, other["sip"]["username"], other["sip"]["password"], tmp_path / "warm")
        assert first.ok, first.describe()

    added = callto_on(server, "admin", "device", "add", user["username"], "deskphone", "--json")
    assert added.returncode == 0, added.stderr
    assert "using data folder" in added.stderr
    sip = json.loads(added.stdout)["sip"]
    time.sleep(1.0)
    result = sip_register(server, sip["username"], sip["password"], tmp_path / "added")
    assert result.ok, f"a desk phone added with the CLI was refused a second later\n{result.describe()}"

    deleted = callto_on(server, "admin", "device", "delete", str(json.loads(added.stdout)["id"]))
    assert deleted.returncode == 0, deleted.stderr
    time.sleep(1.0)
    refused = sip_register(server, sip["username"], sip["password"], tmp_path / "deleted")
    assert not refused.ok, "a device deleted with the CLI still registers a second later"
    assert re.search(r"SIP/2.0 (401|403)", refused.messages()), refused.describe()


def test_cli_refuses_a_missing_data_folder_and_init_creates_it_with_the_admin_password(tmp_path: Path) -> None:
    data = tmp_path / "typo"
    url = f"sqlite:///{data / 'callto.db'}"
    r = callto(data, url, "admin", "user", "list")
    assert r.returncode == 6, r.stderr
    assert "callto init" in r.stderr and "Traceback" not in r.stderr
    assert not data.exists(), "the CLI created a data folder nobody asked for"

    r = callto(data, url, "init", CALLTO_ADMIN_PASSWORD="")
    assert r.returncode == 0, r.stderr
    match = re.search(r"log in as 'admin' with password '([^']+)'", r.stdout)
    assert match, r.stdout
    assert str(data) in r.stderr
    assert (data.stat().st_mode & 0o777) == 0o700

    r = callto(data, url, "admin", "user", "list", "--json")
    assert r.returncode == 0, r.stderr
    assert [u["username"] for u in json.loads(r.stdout)] == ["admin"]
    assert f"data folder {data}" in r.stderr and "database sqlite:///" in r.stderr

    again = callto(data, url, "init")
    assert again.returncode == 0 and "already set up" in again.stderr and "password" not in again.stdout


def test_doctor_reports_the_running_servers_live_state(server: ServerProcess, tmp_path: Path) -> None:
    with admin_client(server.url) as admin:
        user = admin.create_user(extension="2802")
        device = admin.add_device(user["id"], "deskphone")
    registered = sip_register(server, device["sip"]["username"], device["sip"]["password"], tmp_path / "reg")
    assert registered.ok, registered.describe()
    live = callto_on(server, "doctor", user["username"])
    assert "live state from the running server" in live.stdout, live.stdout + live.stderr
    assert "(desk phone) is online" in live.stdout, live.stdout
    server.stop()
    stored = callto_on(server, "doctor", user["username"])
    assert "stored state only" in stored.stdout, stored.stdout + stored.stderr
