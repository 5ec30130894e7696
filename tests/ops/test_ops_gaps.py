"""Operations behaviours without a test of their own yet: every command's ``--help`` names its settings,
text log lines by default, a restart takes a new TLS certificate, and CLI changes reach a server using
Redis within a second."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ops.cli_support import callto_on, sip_register
from support.cluster import deployment_env
from support.server import ROOT, ServerProcess, admin_client

# what each command reads besides the settings file: where the data is, and what it needs of its own
COMMANDS: dict[str, tuple[str, ...]] = {
    "init": ("CALLTO_DATA_DIR", "CALLTO_DATABASE_URL", "CALLTO_ADMIN_PASSWORD"),
    "backup": ("CALLTO_DATA_DIR", "CALLTO_DATABASE_URL"),
    "restore": ("CALLTO_DATA_DIR", "CALLTO_DATABASE_URL"),
    "db": ("CALLTO_DATA_DIR", "CALLTO_DATABASE_URL"),
    "admin": ("CALLTO_DATA_DIR", "CALLTO_DATABASE_URL", "CALLTO_REDIS_URL", "CALLTO_REDIS_PREFIX"),
    "doctor": ("CALLTO_DATA_DIR", "CALLTO_DATABASE_URL", "CALLTO_BIND", "CALLTO_HTTP_PORT"),
}


def _run_help(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTO_")}
    result = subprocess.run([sys.executable, "-m", "callto", *args, "--help"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_cli_command_help_lists_its_settings() -> None:
    top = _run_help()
    listed = re.findall(r"^    (\w[\w-]*)\s", top, re.M)
    assert set(COMMANDS) | {"serve"} <= set(listed), top
    unknown = set(listed) - set(COMMANDS) - {"serve"}
    assert not unknown, f"a command without an expectation here: {unknown}"
    for command, names in COMMANDS.items():
        text = _run_help(command)
        missing = [n for n in names if n not in text]
        assert not missing, f"`callto {command} --help` does not name {missing}:\n{text}"
        assert "callto serve --help" in text, text


def test_logs_are_text_lines_by_default(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'callto.db'}")
    assert "CALLTO_LOG_FORMAT" not in server.env()
    server.start()
    try:
        lines = [line for line in server.log().splitlines() if line.strip()]
    finally:
        server.stop()
    assert lines
    assert not any(line.lstrip().startswith("{") for line in lines), "JSON lines with no CALLTO_LOG_FORMAT"
    # the text format: date time LEVEL logger: message
    records = [line for line in lines if re.match(r"^\S+ \S+ [A-Z]+ callto[\w.]*: ", line)]
    assert records, "\n".join(lines[:20])


def _new_certificate(tls_dir: Path) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "replaced.callto.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    (tls_dir / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tls_dir / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert.public_bytes(serialization.Encoding.DER)


def _presented(port: int) -> bytes:
    # get_server_certificate does not verify: the certificate is self-signed
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port), timeout=5))


@pytest.mark.timeout(90)
def test_a_restart_picks_up_a_new_tls_certificate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data_dir=data, database_url=f"sqlite:///{tmp_path / 'callto.db'}")
    server.start()
    try:
        before = hashlib.sha256(_presented(server.https_port)).hexdigest()
        generated = hashlib.sha256(ssl.PEM_cert_to_DER_cert((data / "tls" / "server.crt").read_text()))
        assert before == generated.hexdigest()
        server.stop()
        new = hashlib.sha256(_new_certificate(data / "tls")).hexdigest()
        assert new != before
        server.start()
        after = hashlib.sha256(_presented(server.https_port)).hexdigest()
        assert after == new, "the HTTPS listener still presents the old certificate after a restart"
    finally:
        server.stop()


@pytest.mark.timeout(90)
def test_a_cli_change_reaches_a_running_server_within_a_second_with_redis(
    tmp_path: Path, redis_url: str
) -> None:
    server = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'callto.db'}",
                           env_extra=deployment_env(redis_url))
    server.start()
    try:
        with admin_client(server.url) as admin:
            user = admin.create_user(extension="2811")
            other = admin.add_device(user["id"], "webphone")
            first = sip_register(server, other["sip"]["username"], other["sip"]["password"], tmp_path / "warm")
            assert first.ok, first.describe()

        # callto_on passes the server's CALLTO_ variables, Redis URL and prefix included, to the CLI
        added = callto_on(server, "admin", "device", "add", user["username"], "deskphone", "--json")
        assert added.returncode == 0, added.stderr
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
    finally:
        server.stop()
