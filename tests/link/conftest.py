"""Fixtures for callto Link: offscreen Qt, a file keyring, a private config dir, users with a Link device,
and an in-process server whose session hub the tests can drive (to push ``dial``/``lan_relay`` commands)."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")

import keyring
import pytest

from link.filekeyring import FileKeyring
from support.server import ADMIN_PASSWORD, Api, free_port, free_tcp_udp_port

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
PASSWORD = "password-123"


@pytest.fixture(scope="module")
def module_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Link is a client: the server's database backend does not change what it sees, so SQLite only."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'callto.db'}"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'callto.db'}"


@pytest.fixture(scope="session")
def qapp() -> Any:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["callto-link-tests"])
    app.setQuitOnLastWindowClosed(False)
    return app


def qwait(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Run the Qt event loop until ``predicate`` holds (fails the test on timeout)."""
    from PySide6.QtCore import QCoreApplication, QEventLoop

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def link_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private config dir, a private single-instance name, and a file keyring for this test."""
    home = tmp_path / "link-home"
    home.mkdir()
    keyfile = tmp_path / "keyring.json"
    monkeypatch.setenv("CALLTO_LINK_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("CALLTO_LINK_INSTANCE", f"callto-link-test-{secrets.token_hex(4)}")
    monkeypatch.setenv("CALLTO_TEST_KEYRING_FILE", str(keyfile))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "link.filekeyring.FileKeyring")
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring(keyfile))
    yield home
    keyring.set_keyring(previous)


_EXTENSIONS = itertools.count(3000 + secrets.randbelow(5000))


@dataclass
class LinkUser:
    id: int
    username: str
    password: str
    devices: dict[str, dict[str, Any]]


def make_user(admin: Api, kinds: tuple[str, ...] = ("link", "webphone", "deskphone")) -> LinkUser:
    user = admin.create_user(extension=str(next(_EXTENSIONS)))
    devices = {kind: admin.add_device(user["id"], kind) for kind in kinds}
    return LinkUser(user["id"], user["username"], PASSWORD, devices)


# ---------------------------------------------------------------------------------------------- in-process
@dataclass
class InprocServer:
    """The real callto app (same code as ``callto serve``) on a loopback port, in a thread of this test.

    Running it in-process gives the tests the server's own :class:`SessionHub`, so they can send the
    commands the click-to-call service sends (``dial``, ``lan_relay``) through the real event stream.
    """

    url: str
    services: Any
    loop: asyncio.AbstractEventLoop

    def command(self, user_id: int, device_id: int, kind: str, data: dict[str, Any], timeout: float = 5.0) -> Any:
        fut = asyncio.run_coroutine_threadsafe(
            self.services.hub.command(user_id, device_id, kind, data, timeout), self.loop
        )
        return fut.result(timeout + 2)


@pytest.fixture(scope="module")
def inproc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InprocServer]:
    import uvicorn

    from callto.app import build_services, create_app
    from callto.config import Settings

    data = tmp_path_factory.mktemp("inproc")
    port = free_port()
    settings = Settings(
        data_dir=data,
        bind="127.0.0.1",
        http_port=port,
        https_port=free_port(),
        sip_port=free_tcp_udp_port(),
        sip_tls_port=free_port(),
        sip_domain="127.0.0.1",
        admin_password=ADMIN_PASSWORD,
        media_rtpengine="off",
        log_level="warning",
    )
    services = build_services(settings)
    app = create_app(services)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("in-process server did not start")
        time.sleep(0.05)
    try:
        yield InprocServer(f"http://127.0.0.1:{port}", services, loop)
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def inproc_admin(inproc_server: InprocServer) -> Iterator[Api]:
    anon = Api(inproc_server.url)
    api = anon.login("admin", ADMIN_PASSWORD)
    anon.close()
    try:
        yield api
    finally:
        api.close()


def tcp_port_closed() -> int:
    """A loopback port with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
