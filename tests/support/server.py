"""A real ``callto serve`` for tests and benchmarks: free loopback ports, a client of its HTTP API."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("CALLTO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN_PASSWORD = "admin-secret-1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_tcp_udp_port() -> int:
    """A port free for both TCP and UDP (the SIP listener takes both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


class PortTaken(RuntimeError):
    """The server could not bind a port picked for it."""


@dataclass
class ServerProcess:
    """A real ``callto serve`` in a subprocess, on free loopback ports."""

    data_dir: Path
    database_url: str
    env_extra: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    sip_port: int = field(default_factory=free_tcp_udp_port)
    sip_tls_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTO_")}
        env.update(
            CALLTO_DATA_DIR=str(self.data_dir),
            CALLTO_DATABASE_URL=self.database_url,
            CALLTO_BIND="127.0.0.1",
            CALLTO_HTTP_PORT=str(self.http_port),
            CALLTO_HTTPS_PORT=str(self.https_port),
            CALLTO_SIP_PORT=str(self.sip_port),
            CALLTO_SIP_TLS_PORT=str(self.sip_tls_port),
            CALLTO_ADMIN_PASSWORD=ADMIN_PASSWORD,
            CALLTO_SIP_DOMAIN="callto.test",
            CALLTO_LOG_LEVEL="info",
            # Tests that need media start their own rtpengine (ports must not collide between servers).
            CALLTO_MEDIA_RTPENGINE="off",
        )
        env.update(self.env_extra)
        return env

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start and wait for health. Ports are picked free; when another test process takes one between
        the pick and the bind (two workers run the suite), pick again."""
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if attempt == 2:
                    raise
                self.http_port, self.https_port = free_port(), free_port()
                self.sip_port, self.sip_tls_port = free_tcp_udp_port(), free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{int(time.time() * 1000)}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callto", "serve"], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log()
                if "could not listen" in log or "address already in use" in log.lower():
                    raise PortTaken(log[-500:])
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{log}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


class Api:
    """A small client of the real HTTP API; ``as_user`` gives one logged in as someone else."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=15)

    def close(self) -> None:
        self.http.close()

    def login(self, username: str, password: str, **extra: Any) -> Api:
        r = self.http.post("/api/v1/auth/login", json={"username": username, "password": password, **extra})
        assert r.status_code == 200, r.text
        return Api(self.base_url, r.json()["token"])

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.put(path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.patch(path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.delete(path, **kw)

    def create_user(self, username: str | None = None, **fields: Any) -> dict[str, Any]:
        username = username or f"u{secrets.token_hex(4)}"
        body = {"username": username, "display_name": username.title(), "password": "password-123", **fields}
        r = self.post("/api/v1/admin/users", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def add_device(self, user_id: int, kind: str) -> dict[str, Any]:
        r = self.post(f"/api/v1/admin/users/{user_id}/devices", json={"kind": kind})
        assert r.status_code == 201, r.text
        return dict(r.json())


def start_server(tmp: Path, database_url: str, **env: str) -> ServerProcess:
    return ServerProcess(data_dir=tmp, database_url=database_url, env_extra=env).start()


@contextlib.contextmanager
def admin_client(base_url: str) -> Iterator[Api]:
    """A client logged in as the first admin, closed afterwards."""
    anon = Api(base_url)
    api = anon.login("admin", ADMIN_PASSWORD)
    anon.close()
    try:
        yield api
    finally:
        api.close()
