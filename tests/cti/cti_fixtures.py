"""Fixtures for the CTI data tests, imported by each test module: a real server (uvicorn, real HTTP and
WebSocket) run in this process, so tests can also reach the service objects the SIP switch will call
(``record_call``, ``call_state``, ``push_card``) until the switch lands and real calls can produce them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.sync.client import ClientConnection, connect

from callto.app import Services, build_services, create_app
from callto.config import load_settings
from support.server import ADMIN_PASSWORD, Api, free_port, free_tcp_udp_port


class _ThreadServer(uvicorn.Server):
    """uvicorn in a worker thread: signals stay with pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class CtiServer:
    url: str
    ws_url: str
    services: Services
    server: _ThreadServer
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    def server_loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop, to run what the switch would run there (``push_card``)."""
        return self.loop

    def feature(self, name: str) -> Any:
        return self.services.features[name]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        if not self.thread.is_alive():
            self.loop.close()
        self.services.db.dispose()


def start_cti_server(data_dir: Path, database_url: str) -> CtiServer:
    """Start the app in this process; ports are picked free, and picked again if another test process
    took one between the pick and the bind (two workers run the suite)."""
    for attempt in range(3):
        try:
            return _start_cti_server(data_dir, database_url)
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _start_cti_server(data_dir: Path, database_url: str) -> CtiServer:
    http_port = free_port()
    settings = load_settings(
        env={},
        data_dir=data_dir,
        database_url=database_url,
        bind="127.0.0.1",
        http_port=http_port,
        https_port=free_port(),
        sip_port=free_tcp_udp_port(),
        sip_tls_port=free_port(),
        sip_domain="127.0.0.1",
        admin_password=ADMIN_PASSWORD,
        log_level="warning",
        media_rtpengine="off",
    )
    services = build_services(settings)
    app = create_app(services)
    server = _ThreadServer(
        uvicorn.Config(app, host="127.0.0.1", port=http_port, lifespan="on", log_level="warning", ws_ping_interval=None)
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve()), name="cti-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    url = f"http://127.0.0.1:{http_port}"
    while time.monotonic() < deadline:
        if not thread.is_alive():
            services.db.dispose()
            raise RuntimeError("the in-process server stopped while starting")
        with contextlib.suppress(httpx.HTTPError):
            if server.started and httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return CtiServer(url, f"ws://127.0.0.1:{http_port}", services, server, thread, loop)
        time.sleep(0.05)
    server.should_exit = True
    thread.join(10)
    raise RuntimeError("the in-process server did not become healthy in 30 s")


@pytest.fixture(scope="module")
def cti(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[CtiServer]:
    server = start_cti_server(tmp_path_factory.mktemp("cti"), module_database_url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def admin(cti: CtiServer) -> Iterator[Api]:
    anon = Api(cti.url)
    api = anon.login("admin", ADMIN_PASSWORD)
    anon.close()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def make_user(cti: CtiServer, admin: Api) -> Iterator[Any]:
    """``make_user(**fields) -> (user, api)``: a new user and a client logged in as them."""
    opened: list[Api] = []

    def make(**fields: Any) -> tuple[dict[str, Any], Api]:
        user = admin.create_user(**fields)
        anon = Api(cti.url)
        api = anon.login(user["username"], "password-123")
        anon.close()
        opened.append(api)
        return user, api

    try:
        yield make
    finally:
        for api in opened:
            api.close()


@contextlib.contextmanager
def open_events(cti: CtiServer, token: str | None) -> Iterator[ClientConnection]:
    """The event stream of the user with ``token``, after ``session.ready``."""
    with connect(f"{cti.ws_url}/api/v1/events?token={token}", open_timeout=5) as ws:
        first = json.loads(ws.recv(timeout=5))
        assert first["type"] == "session.ready", first
        yield ws


def next_event(
    ws: ClientConnection, kind: str, timeout: float = 5.0, where: Any = None
) -> dict[str, Any]:
    """The next event of ``kind`` (and matching ``where(event)``), skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {kind} event within {timeout} s")
        message = json.loads(ws.recv(timeout=remaining))
        if message["type"] == kind and (where is None or where(message)):
            return dict(message)
