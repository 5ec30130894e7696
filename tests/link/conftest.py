"""Fixtures for callto Link: offscreen Qt, a file keyring, a private config dir, users with a Link device,
and an in-process server whose session hub the tests can drive (to push ``dial``/``lan_relay`` commands)."""

from __future__ import annotations

import itertools
import os
import secrets
import socket
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
from support.inprocess import InprocessServer, start_inprocess_server
from support.server import Api, admin_client

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
InprocServer = InprocessServer


@pytest.fixture(scope="module")
def inproc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InprocServer]:
    """The real app in this process: the tests send the click-to-call service's commands (``dial``,
    ``lan_relay``) through its own session hub and the real event stream."""
    data = tmp_path_factory.mktemp("inproc")
    server = start_inprocess_server(data, f"sqlite:///{data / 'callto.db'}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def inproc_admin(inproc_server: InprocServer) -> Iterator[Api]:
    with admin_client(inproc_server.url) as api:
        yield api


def tcp_port_closed() -> int:
    """A loopback port with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
