"""Secrets on disk: the data folder is 0700 and the database, key and certificates 0600 (a wider one is
named in a warning at start); SIP passwords, trunk passwords and the token signing key are stored
encrypted with a key that is not in the database, every consumer still reads them (the registrar's
digest, provisioning, the web phone's account, the trunk's registration with its provider), rows from
before are encrypted at start, and a copy of the database alone gives no working credential."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from callto.app import build_services
from callto.config import load_settings
from callto.directory.schemas import DeviceCreate, DeviceKind, UserCreate
from callto.store.private import check_private
from callto.store.secretbox import PREFIX, SecretKeyError, new_key_text
from callto.tls import ensure_certificate
from callto.trunks.schemas import TrunkIn, TrunkPatch
from callto.trunks.service import TrunkService
from support.baresip import Account, Baresip
from support.server import ADMIN_PASSWORD, Api, ServerProcess, admin_client, start_server
from support.sipp import start_sipp


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _settings(data: Path, **env: str) -> Any:
    return load_settings({"CALLTO_DATA_DIR": str(data), "CALLTO_ADMIN_PASSWORD": ADMIN_PASSWORD, **env})


def test_a_new_data_folder_holds_its_secrets_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "var" / "callto"
    services = build_services(_settings(data))
    ensure_certificate(data / "tls")
    try:
        assert _mode(data) == 0o700
        assert _mode(data / "tls") == 0o700
        for name in ("callto.db", "secret.key", "tls/server.key", "tls/server.crt"):
            assert _mode(data / name) == 0o600, name
        for extra in ("callto.db-wal", "callto.db-shm"):
            if (data / extra).exists():
                assert _mode(data / extra) == 0o600, extra
        assert check_private(data) == []
    finally:
        services.db.dispose()


def test_start_names_each_secret_file_that_others_can_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    build_services(_settings(data)).db.dispose()
    (data / "callto.db").chmod(0o644)
    (data / "secret.key").chmod(0o640)
    data.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="callto.store.private"):
        build_services(_settings(data)).db.dispose()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for path in (data, data / "callto.db", data / "secret.key"):
        assert f"{path} is mode" in logged, (path, logged)
    assert "chmod 600" in logged and "chmod 700" in logged


def test_rows_from_before_are_encrypted_at_start_and_keep_working(tmp_path: Path) -> None:
    data = tmp_path / "data"
    services = build_services(_settings(data))
    user = services.directory.create_user(UserCreate(username="anna", display_name="Anna", password="password-123"))
    device = services.directory.add_device(user.id, DeviceCreate(kind=DeviceKind.deskphone))
    clear = device.sip_password
    services.db.dispose()
    # as a database written before encryption at rest: the password and the signing key in clear
    with sqlite3.connect(data / "callto.db") as conn:
        conn.execute("UPDATE devices SET sip_password = ? WHERE id = ?", (clear, device.id))
        conn.execute("UPDATE settings SET value = ? WHERE key = 'jwt_key'", ('"old-clear-signing-key"',))
    services = build_services(_settings(data))
    try:
        with sqlite3.connect(data / "callto.db") as conn:
            stored = conn.execute("SELECT sip_password FROM devices WHERE id = ?", (device.id,)).fetchone()[0]
            key = conn.execute("SELECT value FROM settings WHERE key = 'jwt_key'").fetchone()[0]
        assert stored.startswith(PREFIX) and clear not in stored
        assert PREFIX in key and "old-clear-signing-key" not in key
        account = services.directory.sip_account(device.sip_username)
        assert account is not None and account.password == clear
        # tokens signed before the migration stay valid: the key itself did not change, only how it is kept
        token, _ = services.auth.signer.issue(user.id, 0)
        assert jwt.decode(token, "old-clear-signing-key", algorithms=["HS256"])["sub"] == str(user.id)
    finally:
        services.db.dispose()


@pytest.mark.timeout(120)
def test_every_consumer_reads_the_encrypted_passwords_and_a_database_copy_alone_gives_none(
    tmp_path: Path, baresip_factory: Callable[..., Baresip], tone_440: Path
) -> None:
    data = tmp_path / "data"
    server = start_server(data, f"sqlite:///{data / 'callto.db'}")
    try:
        with admin_client(server.url) as admin:
            user = admin.create_user()
            web = admin.add_device(user["id"], "webphone")
            mac = "805ec0a1b2c3"
            phone = admin.post("/api/v1/admin/phones", json={"mac": mac, "model": "T54W", "user_id": user["id"]})
            assert phone.status_code == 201, phone.text
            desk = admin.get(f"/api/v1/admin/devices/{phone.json()['device_id']}").json()
            provisioning_url = phone.json()["provisioning_url"]
        me = Api(server.url).login(user["username"], "password-123")
        own = me.get(f"/api/v1/me/devices/{web['id']}/sip").json()
        me.close()
        assert own["password"] == web["sip"]["password"] and not own["password"].startswith(PREFIX)
        config = httpx.get(f"{provisioning_url}{mac}.cfg", headers={"User-Agent": "Yealink SIP-T54W 96.85.0.5"},
                           timeout=10)
        assert config.status_code == 200 and desk["sip"]["password"] in config.text, "provisioning renders it"
        sip = desk["sip"]
        baresip = baresip_factory("desk", tone_440, account=Account(
            aor=f"sip:{sip['username']}@{server.env()['CALLTO_SIP_DOMAIN']}", password=sip["password"],
            auth_user=sip["username"], outbound=f"sip:127.0.0.1:{server.sip_port};transport=udp", regint=300,
        ))
        baresip.wait_registered()  # the registrar's digest check used the decrypted password
    finally:
        server.stop()

    # What a thief with the database file alone holds:
    copy = tmp_path / "stolen"
    copy.mkdir()
    shutil.copy(data / "callto.db", copy / "callto.db")
    raw = (copy / "callto.db").read_bytes()
    for secret in (web["sip"]["password"], desk["sip"]["password"]):
        assert secret.encode() not in raw, "a SIP password is in the database file in clear"
    with sqlite3.connect(copy / "callto.db") as conn:
        stored_key = conn.execute("SELECT value FROM settings WHERE key = 'jwt_key'").fetchone()[0]
    assert PREFIX in stored_key
    # ... cannot forge a session with what the settings table holds ...
    forged = jwt.encode({"sub": "1", "ver": 0, "exp": 2**31 - 1}, stored_key.strip('"'), algorithm="HS256")
    restarted = ServerProcess(data_dir=data, database_url=f"sqlite:///{data / 'callto.db'}").start()
    try:
        r = httpx.get(f"{restarted.url}/api/v1/admin/users", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401, "a token signed with the stored value is refused"
    finally:
        restarted.stop()
    # ... and a server given the copy without its key refuses to start, naming what is missing.
    with pytest.raises(RuntimeError, match=r"secret\.key"):
        start_server(copy, f"sqlite:///{copy / 'callto.db'}")
    with pytest.raises(RuntimeError, match="does not decrypt"):
        start_server(copy, f"sqlite:///{copy / 'callto.db'}", CALLTO_SECRET_KEY=new_key_text())


def _stored_trunk_password(data: Path, trunk_id: int) -> str:
    with sqlite3.connect(data / "callto.db") as conn:
        return str(conn.execute("SELECT password FROM sip_trunks WHERE id = ?", (trunk_id,)).fetchone()[0])


def test_trunk_passwords_are_stored_encrypted_and_only_the_switch_gets_them_in_clear(tmp_path: Path) -> None:
    data = tmp_path / "data"
    services = build_services(_settings(data))
    try:
        trunks = TrunkService(services.db, services.directory)
        created = trunks.create(TrunkIn(name="provider", host="127.0.0.1", username="acct", password="trunk-s3cret"))
        stored = _stored_trunk_password(data, created["id"])
        assert stored.startswith(PREFIX) and "trunk-s3cret" not in stored
        assert created["password_set"] is True and "password" not in created
        assert "trunk-s3cret" not in repr(trunks.list()) + repr(trunks.get(created["id"]))
        assert [c["password"] for c in trunks.configs()] == ["trunk-s3cret"]
        # bound to its purpose: the same ciphertext in a device's password field does not decrypt
        with pytest.raises(SecretKeyError):
            services.directory.box.reveal(stored, "sip-password")

        trunks.update(created["id"], TrunkPatch(password="n3w-s3cret"))
        changed = _stored_trunk_password(data, created["id"])
        assert changed.startswith(PREFIX) and changed != stored and "n3w-s3cret" not in changed
        assert [c["password"] for c in trunks.configs()] == ["n3w-s3cret"]
        trunks.update(created["id"], TrunkPatch(password=""))  # no password: nothing to hide
        assert _stored_trunk_password(data, created["id"]) == ""
        assert trunks.get(created["id"])["password_set"] is False
    finally:
        services.db.dispose()


# A provider that only takes registrations: 401, then 200 for the right credentials (403 otherwise).
REGISTRAR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="provider-registrar">
  <recv request="REGISTER"/>
  <send>
    <![CDATA[
      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="provider.test", nonce="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d", algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="register_ok" username="trunkuser" password="trunk-s3cret"/>
    </action>
  </recv>
  <nop hide="true" test="register_ok" next="registered"/>
  <send next="end">
    <![CDATA[
      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="registered"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Contact:];expires=600
      Content-Length: 0

    ]]>
  </send>
  <label id="end"/>
</scenario>
"""


@pytest.mark.sip
@pytest.mark.timeout(60)
def test_a_trunk_password_stored_in_clear_before_is_encrypted_at_start_and_still_registers(tmp_path: Path) -> None:
    scenario = tmp_path / "registrar.xml"
    scenario.write_text(REGISTRAR)
    provider = start_sipp(scenario, None, tmp_path / "sipp", calls=1, timeout=30)
    data = tmp_path / "data"
    services = build_services(_settings(data))
    trunk = TrunkService(services.db, services.directory).create(TrunkIn(
        name="provider", host="127.0.0.1", port=provider.port, username="trunkuser", password="trunk-s3cret",
        register=True,
    ))
    services.db.dispose()
    # as a database written before trunk passwords were encrypted at rest
    with sqlite3.connect(data / "callto.db") as conn:
        conn.execute("UPDATE sip_trunks SET password = 'trunk-s3cret' WHERE id = ?", (trunk["id"],))
    server = start_server(data, f"sqlite:///{data / 'callto.db'}")
    try:
        stored = _stored_trunk_password(data, trunk["id"])
        assert stored.startswith(PREFIX) and "trunk-s3cret" not in stored
        result = provider.finish(timeout=15)  # the provider checked the digest made with the clear password
        assert result.ok, result.describe()
        with admin_client(server.url) as admin:
            deadline = time.monotonic() + 5
            while not (seen := admin.get(f"/api/v1/admin/trunks/{trunk['id']}").json())["registered"]:
                assert time.monotonic() < deadline, seen
                time.sleep(0.05)
        assert seen["password_set"] is True and "trunk-s3cret" not in repr(seen)
    finally:
        server.stop()
        provider.kill()
    services = build_services(_settings(data))  # the next start's pass leaves it as it is
    try:
        assert TrunkService(services.db, services.directory).encrypt_stored_passwords() == 0
    finally:
        services.db.dispose()
    assert _stored_trunk_password(data, trunk["id"]) == stored
    assert b"trunk-s3cret" not in (data / "callto.db").read_bytes()
