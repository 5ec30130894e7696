"""Backup and restore: one archive taken while the server runs; restore refuses a running server's or a
non-empty data folder without --force, and into an empty one brings back every row and key file, so
phones register again with their old credentials."""

from __future__ import annotations

import secrets
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from ops.cli_support import callto, callto_on, sip_register
from support.server import ServerProcess, admin_client

TABLES = ("users", "devices", "prov_phones", "pb_contacts", "pb_numbers", "history_calls", "sip_trunks")


def _rows(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sqlalchemy.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return {t: sorted(tuple(r) for r in conn.execute(sqlalchemy.text(f"SELECT * FROM {t}")))
                    for t in TABLES}
    finally:
        engine.dispose()


def _add_history(database_url: str, user_id: int) -> None:
    engine = sqlalchemy.create_engine(database_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for i in range(3):
            conn.execute(
                sqlalchemy.text(
                    "INSERT INTO history_calls (call_id, user_id, direction, other_number, other_key, other_name,"
                    " device_id, started_at, answered_at, ended_at, duration, disposition, hangup_cause, missed,"
                    " seen, created_at) VALUES (:c, :u, 'inbound', '+390212345678', '0212345678', 'Rossi', NULL,"
                    " :t, :t, :t, 42, 'answered', '', false, true, :t)"
                ),
                {"c": f"call-{i}-{secrets.token_hex(4)}", "u": user_id, "t": now},
            )
    engine.dispose()


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Any:
    # the database inside the data folder, as a default install has it
    data = tmp_path / "data"
    proc = ServerProcess(data_dir=data, database_url=f"sqlite:///{data / 'callto.db'}").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.timeout(120)
def test_backup_while_running_then_restore_into_an_empty_folder_brings_everything_back(
    sqlite_server: ServerProcess, tmp_path: Path
) -> None:
    server = sqlite_server
    with admin_client(server.url) as admin:
        user = admin.create_user(extension="2901")
        device = admin.add_device(user["id"], "deskphone")
        phone = admin.post("/api/v1/admin/phones", json={"mac": "80:5E:C0:11:22:33", "model": "T54W",
                                                         "user_id": user["id"]})
        assert phone.status_code == 201, phone.text
        contact = admin.post("/api/v1/phonebook", json={"name": "Mario Rossi", "company": "Rossi srl",
                                                        "numbers": [{"number": "+390212345678", "type": "work"}]})
        assert contact.status_code == 201, contact.text
    _add_history(server.database_url, user["id"])
    assert (server.data_dir / "secret.key").is_file(), "the server keeps the key of its encrypted secrets there"
    assert sip_register(server, device["sip"]["username"], device["sip"]["password"], tmp_path / "r1").ok
    time.sleep(1.0)  # the binding is written behind

    archive = tmp_path / "backups" / "callto.tar.gz"
    made = callto_on(server, "backup", str(archive))
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_mode & 0o077 == 0, "a backup holds keys: owner only"
    before = _rows(server.database_url)
    assert len(before["history_calls"]) == 3 and len(before["pb_contacts"]) == 1
    files_before = {p.name: p.read_bytes() for p in (server.data_dir / "tls").glob("*")}
    files_before["secret.key"] = (server.data_dir / "secret.key").read_bytes()
    assert len(before["prov_phones"]) == 1 and len(files_before) >= 3  # certificate, key, secret.key

    refused = callto_on(server, "restore", str(archive))
    assert refused.returncode == 7, refused.stdout + refused.stderr
    assert "server is running" in refused.stderr and "Traceback" not in refused.stderr

    server.stop()
    not_empty = callto_on(server, "restore", str(archive))
    assert not_empty.returncode == 1 and "--force" in not_empty.stderr, not_empty.stderr

    shutil.rmtree(server.data_dir)
    restored = callto_on(server, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert _rows(server.database_url) == before
    files_after = {p.name: p.read_bytes() for p in (server.data_dir / "tls").glob("*")}
    files_after["secret.key"] = (server.data_dir / "secret.key").read_bytes()
    assert files_after == files_before

    server.start()
    again = sip_register(server, device["sip"]["username"], device["sip"]["password"], tmp_path / "r2")
    assert again.ok, again.describe()
    with admin_client(server.url) as admin:
        assert admin.get(f"/api/v1/admin/phones/{phone.json()['id']}").json()["mac_display"] == "80:5E:C0:11:22:33"


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_postgresql_backup_and_restore_into_an_empty_database(postgres_ok: None, tmp_path: Path) -> None:
    from support.server import POSTGRES_URL

    admin_url = sqlalchemy.engine.make_url(POSTGRES_URL)
    names = [f"callto_bk_{secrets.token_hex(4)}", f"callto_rs_{secrets.token_hex(4)}"]
    engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        source, target = (admin_url.set(database=n).render_as_string(hide_password=False) for n in names)
        data = tmp_path / "data"
        assert callto(data, source, "init").returncode == 0
        added = callto(data, source, "admin", "user", "add", "anna", "--extension", "201")
        assert added.returncode == 0, added.stderr
        assert callto(data, source, "admin", "device", "add", "anna", "deskphone").returncode == 0
        archive = tmp_path / "pg.tar.gz"
        made = callto(data, source, "backup", str(archive))
        assert made.returncode == 0, made.stderr
        restored = callto(tmp_path / "data2", target, "restore", str(archive))
        assert restored.returncode == 0, restored.stderr
        assert _rows(target) == _rows(source)
    finally:
        with engine.connect() as conn:
            for name in names:
                conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
