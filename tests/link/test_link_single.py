"""Single instance between real processes: a second ``callto-link tel:...`` hands the link over and exits
at once; the running Link places the call and the user's desk phone (baresip) rings."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from link.conftest import PASSWORD, make_user
from support.baresip import Account
from support.fixtures import BaresipFactory
from support.procs import ManagedProcess, ProcessGroup
from support.server import Api, ServerProcess

pytestmark = pytest.mark.timeout(120)
REPO_ROOT = Path(__file__).resolve().parents[2]


def _env(link_home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("CALLTO_") or k.startswith("CALLTO_LINK")}
    return {
        **keep,
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "tests"), str(REPO_ROOT / "src")]),
        "CALLTO_TEST_KEYRING_FILE": os.environ["CALLTO_TEST_KEYRING_FILE"],
    }


def _link(procs: ProcessGroup, env: dict[str, str], *args: str, name: str = "link") -> ManagedProcess:
    return procs.start([sys.executable, "-m", "callto.link", *args], name=name, env=env)


def _second(env: dict[str, str], url: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "callto.link", url], env=env, capture_output=True, text=True, timeout=30
    )
    return proc, time.monotonic() - started


def test_second_launch_hands_the_link_to_the_running_link_and_exits(
    link_home: Path, procs: ProcessGroup
) -> None:
    env = _env(link_home)
    first = _link(procs, env, "--background")
    first.wait_for_output(r"ready \(instance", 30)
    second, elapsed = _second(env, "tel:+39 0721 405516")
    assert second.returncode == 0, second.stderr
    assert "handed 1 link(s) to the running Link" in second.stderr
    # Exits at once: no Qt widgets loaded, no second tray icon (measured with interpreter start-up).
    assert elapsed < 5, elapsed
    first.wait_for_output(r"call requested: tel:\+39 0721 405516", 10)
    first.wait_for_output(r"Sign in to call: \+390721405516 will be called once you are signed in", 10)
    assert first.alive()


def test_link_left_behind_by_a_crash_does_not_block_the_next_start(
    link_home: Path, procs: ProcessGroup
) -> None:
    env = _env(link_home)
    crashed = _link(procs, env, "--background", name="crashed")
    crashed.wait_for_output(r"ready \(instance", 30)
    os.kill(crashed.pid, signal.SIGKILL)
    crashed.popen.wait(10)
    fresh = _link(procs, env, "--background", name="fresh")
    fresh.wait_for_output(r"ready \(instance", 30)
    second, _ = _second(env, "callto://201")
    assert second.returncode == 0, second.stderr
    fresh.wait_for_output(r"call requested: callto://201", 10)


def registered_desk_phone(sip: dict[str, Any], factory: BaresipFactory, tone: Path, sip_port: int) -> Any:
    """A baresip desk phone registered to the test server with the device's ``sip`` credentials."""
    phone = factory(
        "desk",
        tone,
        Account(
            aor=f"sip:{sip['username']}@callto.test",
            password=sip["password"],
            outbound=f"sip:127.0.0.1:{sip_port}",
            regint=600,
            answermode="manual",
        ),
    )
    assert phone.wait_registered().startswith("200")
    return phone


def _configure_link(link_home: Path, base_url: str, username: str, link_device_id: int, token: str) -> None:
    config = Path(os.environ["CALLTO_LINK_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.json").write_text(
        json.dumps({"server_url": base_url, "username": username, "link_device_id": link_device_id})
    )
    keyfile = Path(os.environ["CALLTO_TEST_KEYRING_FILE"])
    keyfile.write_text(json.dumps({f"callto-link\x00{username}@{base_url}": token}))


@pytest.mark.sip
def test_forwarded_link_rings_the_users_desk_phone(
    link_home: Path,
    procs: ProcessGroup,
    shared_server: ServerProcess,
    admin_api: Api,
    baresip_factory: BaresipFactory,
    tone_440: Path,
) -> None:
    user = make_user(admin_api)
    desk = user.devices["deskphone"]
    sip: dict[str, Any] = desk["sip"]
    phone = registered_desk_phone(sip, baresip_factory, tone_440, shared_server.sip_port)
    token = httpx.post(
        f"{shared_server.url}/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}
    ).json()["token"]
    r = httpx.put(
        f"{shared_server.url}/api/v1/me/main-device",
        json={"device_id": desk["id"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code in (200, 204), r.text
    _configure_link(link_home, shared_server.url, user.username, user.devices["link"]["id"], token)
    env = _env(link_home)
    first = _link(procs, env, "--background")
    first.wait_for_output(r"event stream connected", 30)
    second, elapsed = _second(env, "tel:+39-0721-405516")
    assert second.returncode == 0, second.stderr
    assert elapsed < 5
    first.wait_for_output(r"call placed: \+390721405516", 20)
    incoming = phone.wait_incoming(timeout=20)
    assert incoming
    phone.hangup()


class _YealinkActionUrl:
    """A fake of a Yealink phone's web server for the action URL ``/servlet?key=number=<n>`` (HTTP Basic,
    user ``admin``, as Yealink documents it): it records each request and answers 200 to the right user."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen: list[str] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Basic "):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="yealink"')
                    self.end_headers()
                    return
                seen.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.sip
def test_click_uses_lan_relay_through_the_running_link(
    link_home: Path,
    procs: ProcessGroup,
    shared_server: ServerProcess,
    admin_api: Api,
    baresip_factory: BaresipFactory,
    tone_440: Path,
) -> None:
    """The phone is set to ``lan_relay`` first: the server asks the running Link, which calls the phone's
    HTTP action URL on its LAN and reports back; the call is placed with strategy ``lan_relay``."""
    user = make_user(admin_api)
    desk = user.devices["deskphone"]
    fake = _YealinkActionUrl()
    try:
        r = admin_api.post(
            "/api/v1/admin/phones",
            json={
                "mac": "00:15:65:" + ":".join(secrets.token_hex(3)[i : i + 2] for i in (0, 2, 4)),
                "model": "T31G",
                "vendor": "yealink",
                "user_id": user.id,
                "device_id": desk["id"],
                "strategies": ["lan_relay", "originate"],
                "http_port": fake.port,
            },
        )
        assert r.status_code == 201, r.text
        sip: dict[str, Any] = desk["sip"]
        phone = baresip_factory(
            "desk",
            tone_440,
            Account(
                aor=f"sip:{sip['username']}@callto.test",
                password=sip["password"],
                outbound=f"sip:127.0.0.1:{shared_server.sip_port}",
                regint=600,
                answermode="manual",
            ),
        )
        assert phone.wait_registered().startswith("200")
        token = httpx.post(
            f"{shared_server.url}/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}
        ).json()["token"]
        httpx.put(
            f"{shared_server.url}/api/v1/me/main-device",
            json={"device_id": desk["id"]},
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()
        _configure_link(link_home, shared_server.url, user.username, user.devices["link"]["id"], token)
        env = _env(link_home)
        first = _link(procs, env, "--background")
        first.wait_for_output(r"event stream connected", 30)
        second, _ = _second(env, "callto:+390721405516")
        assert second.returncode == 0, second.stderr
        placed = first.wait_for_output(r"call placed: \+390721405516 (.*)", 20)
        assert "'strategy': 'lan_relay'" in placed.group(1), placed.group(1)
        # Exactly one request reached the phone, from Link, with the dialed number in Yealink's form.
        assert len(fake.seen) == 1, fake.seen
        assert fake.seen[0].startswith("/servlet?key=number=") and fake.seen[0].endswith("0721405516")
    finally:
        fake.close()
