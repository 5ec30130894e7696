"""Fixtures for the CTI data tests, imported by each test module: a real server (uvicorn, real HTTP and
WebSocket) run in this process, so tests can also reach the service objects the SIP switch will call
(``record_call``, ``call_state``, ``push_card``) until the switch lands and real calls can produce them."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from support.inprocess import InprocessServer, start_inprocess_server
from support.server import Api, admin_client

CtiServer = InprocessServer
start_cti_server = start_inprocess_server


@pytest.fixture(scope="module")
def cti(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[CtiServer]:
    server = start_cti_server(tmp_path_factory.mktemp("cti"), module_database_url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def admin(cti: CtiServer) -> Iterator[Api]:
    with admin_client(cti.url) as api:
        yield api


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
