"""Logs: one access line per request without tokens, security events in one parseable line that the
shipped fail2ban filter matches, text or JSON lines, a level per area."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from callto.ops.logs import parse_levels, redact_path, redact_query
from support.server import ROOT, ServerProcess

FILTER = ROOT / "packaging" / "fail2ban" / "callto.conf"
SECURITY = re.compile(r"security event=(\S+) source=(\S+) account=(\S+) count=(\d+)")


@pytest.fixture(params=["text", "json"])
def logged_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, ServerProcess]]:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'callto.db'}",
                         env_extra={"CALLTO_LOG_FORMAT": request.param, "CALLTO_LOG_LEVELS": "sip=warning"})
    proc.start()
    try:
        yield request.param, proc
    finally:
        proc.stop()


def _failregex() -> str:
    text = FILTER.read_text()
    line = next(line for line in text.splitlines() if line.startswith("failregex"))
    return line.split("=", 1)[1].strip()


def _python_equivalent(pattern: str) -> re.Pattern[str]:
    # fail2ban's <ADDR> is an IPv4 or IPv6 address
    return re.compile(pattern.replace("<ADDR>", r"(?P<host>[0-9a-fA-F.:]+)"))


def _provoke(url: str, secret: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        for _ in range(3):
            r = http.post("/api/v1/auth/login", json={"username": "mallory", "password": secret})
            assert r.status_code == 401, r.text
        assert http.get(f"/provisioning/{secret}/y000000000000.cfg").status_code in (403, 404)
        assert http.get("/api/v1/me", params={"token": secret}).status_code == 401


def test_security_events_and_access_lines_are_parseable_and_free_of_secrets(
    logged_server: tuple[str, ServerProcess], tmp_path: Path
) -> None:
    fmt, server = logged_server
    secret = "s3cret" + secrets.token_hex(8)
    _provoke(server.url, secret)
    # the access line is written once the answer has gone out: wait for the last request's line
    deadline = time.monotonic() + 5
    while "GET /api/v1/me?token=" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log()
    assert secret not in log, "a password or token reached the log"

    lines = [line for line in log.splitlines() if line.strip()]
    if fmt == "json":
        records = [json.loads(line) for line in lines if line.startswith("{")]
        assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
        messages = [(r["logger"], r["message"]) for r in records]
        # sip=warning: the switch's info lines (its listeners) are not there, other areas' are
        assert not any(name.startswith("callto.sip") and "listening" in msg for name, msg in messages)
        assert any(name == "callto.access" for name, _ in messages)
    else:
        messages = [(m.group(1), m.group(2)) for m in re.finditer(r"^\S+ \S+ \w+ (\S+): (.*)$", log, re.M)]
    events = [SECURITY.search(msg) for name, msg in messages if name == "callto.security"]
    kinds = [(e.group(1), e.group(2), e.group(3)) for e in events if e]
    assert kinds.count(("login-failed", "127.0.0.1", "mallory")) == 3, messages
    assert ("provisioning-guess", "127.0.0.1", "-") in kinds, messages
    counts = [int(e.group(4)) for e in events if e and e.group(1) == "login-failed"]
    assert counts == [1, 2, 3]

    access = [msg for name, msg in messages if name == "callto.access"]
    assert any(msg.startswith("127.0.0.1 GET /api/v1/me?token=*** 401") for msg in access), access
    assert any(msg.startswith("127.0.0.1 GET /provisioning/***/y000000000000.cfg") for msg in access), access
    assert sum(1 for msg in access if msg.startswith("127.0.0.1 POST /api/v1/auth/login ")) == 3

    log_file = tmp_path / f"callto-{fmt}.log"
    log_file.write_text(log)
    fail2ban = shutil.which("fail2ban-regex")
    if fail2ban is None:
        print("fail2ban-regex is not installed (Debian package fail2ban): checking the filter's regex in Python")
        pattern = _python_equivalent(_failregex())
        hosts = [m.group("host") for line in lines if (m := pattern.search(line))]
        assert hosts == ["127.0.0.1"] * 4, hosts
        return
    result = subprocess.run([fail2ban, str(log_file), str(FILTER)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    matched = re.search(r"Failregex: (\d+) total", result.stdout)
    assert matched and int(matched.group(1)) == 4, result.stdout


def test_log_levels_name_areas_or_loggers_and_refuse_the_rest() -> None:
    levels = parse_levels("sip=debug, api=warning, callto.history=error")
    assert levels["callto.sip"] == 10 and levels["callto.directory"] == 30 and levels["callto.history"] == 40
    for bad in ("sip", "sip=loud", "kernel=debug"):
        with pytest.raises(ValueError):
            parse_levels(bad)


def test_redaction_keeps_the_shape_but_not_the_secret() -> None:
    assert redact_query("token=abc&limit=5") == "token=***&limit=5"
    assert redact_query("access_token=abc") == "access_token=***"
    assert redact_path("/provisioning/abcdef/y000000000000.cfg") == "/provisioning/***/y000000000000.cfg"
    assert redact_path("/provisioning/y000000000000.cfg") == "/provisioning/y000000000000.cfg"
