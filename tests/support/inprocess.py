"""The callto app served by uvicorn in a thread of the test process, on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import uvicorn
from fastapi import FastAPI

from callto.app import Features, Services, build_services, create_app
from callto.config import load_settings
from support.server import ADMIN_PASSWORD, free_port, free_tcp_udp_port


class _ThreadServer(uvicorn.Server):
    """uvicorn in a worker thread: signals stay with pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class InprocessServer:
    """The real app (the same code as ``callto serve``) on a loopback port, in a thread of the test process,
    so a test also reaches its services (the session hub, history, presence) directly."""

    url: str
    ws_url: str
    services: Services
    app: FastAPI
    server: _ThreadServer
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    def server_loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop, to run what the switch would run there (``push_card``)."""
        return self.loop

    @property
    def features(self) -> Features:
        return cast(Features, self.app.state.features)

    def feature(self, name: str) -> Any:
        """A feature's service by its attribute on :class:`callto.app.Features` (``"history"``)."""
        return getattr(self.features, name)

    def command(self, user_id: int, device_id: int, kind: str, data: dict[str, Any], timeout: float = 5.0) -> Any:
        """Send a command (``dial``, ``lan_relay``) to a device session as the click-to-call service does."""
        fut = asyncio.run_coroutine_threadsafe(
            self.services.hub.command(user_id, device_id, kind, data, timeout), self.loop
        )
        return fut.result(timeout + 2)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        if not self.thread.is_alive():
            self.loop.close()
        self.services.db.dispose()


def start_inprocess_server(data_dir: Path, database_url: str) -> InprocessServer:
    """Start the app in this process; ports are picked free, and picked again if another test process
    took one between the pick and the bind (two workers run the suite)."""
    for attempt in range(3):
        try:
            return _start_once(data_dir, database_url)
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _start_once(data_dir: Path, database_url: str) -> InprocessServer:
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
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve()), name="inproc", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    url = f"http://127.0.0.1:{http_port}"
    while time.monotonic() < deadline:
        if not thread.is_alive():
            services.db.dispose()
            raise RuntimeError("the in-process server stopped while starting")
        with contextlib.suppress(httpx.HTTPError):
            if server.started and httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return InprocessServer(url, f"ws://127.0.0.1:{http_port}", services, app, server, thread, loop)
        time.sleep(0.05)
    server.should_exit = True
    thread.join(10)
    raise RuntimeError("the in-process server did not become healthy in 30 s")
