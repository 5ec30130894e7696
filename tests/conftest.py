"""Fixtures for the whole suite: database URLs (SQLite and PostgreSQL), a real server process, API clients."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.fixtures import *  # noqa: F403  (shared real-peer fixtures: procs, rtpengine, baresip_factory, ...)
from support.server import (
    POSTGRES_URL,
    Api,
    ServerProcess,
    admin_client,
    start_server,
)


def _postgres_available() -> str | None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_ok() -> None:
    problem = _postgres_available()
    if problem is None:
        return
    if os.environ.get("CALLTO_TEST_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required here and not reachable: {problem}")
    pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable ({problem}); set CALLTO_TEST_POSTGRES_URL")


def _postgres_schema_url() -> Iterator[str]:
    import sqlalchemy

    schema = "t_" + secrets.token_hex(6)
    engine = sqlalchemy.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def _database_url(request: pytest.FixtureRequest, tmp: Path) -> Iterator[str]:
    if request.param == "postgres":
        request.getfixturevalue("postgres_ok")
        yield from _postgres_schema_url()
    else:
        yield f"sqlite:///{tmp / 'callto.db'}"


@pytest.fixture
def redis_url() -> str:
    """The machine's shared Redis (never stopped or reconfigured by a test); CI requires it."""
    import socket

    url = os.environ.get("CALLTO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError as exc:
        if os.environ.get("CALLTO_TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"Redis at {url} is required here and not reachable: {exc}")
        pytest.skip(f"Redis at {url} is not reachable ({exc})")
    return url


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def postgres_url(postgres_ok: None) -> Iterator[str]:
    """A fresh, empty schema on the shared PostgreSQL (tests that need PostgreSQL itself, such as two
    server processes on one database)."""
    yield from _postgres_schema_url()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    yield from _database_url(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _database_url(request, tmp_path_factory.mktemp("db"))


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path / "data", database_url)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[ServerProcess]:
    """One server for a module's tests (each test makes its own users)."""
    proc = start_server(tmp_path_factory.mktemp("data"), module_database_url)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def admin_api(shared_server: ServerProcess) -> Iterator[Api]:
    with admin_client(shared_server.url) as api:
        yield api


@pytest.fixture
def anon_api(shared_server: ServerProcess) -> Iterator[Api]:
    api = Api(shared_server.url)
    try:
        yield api
    finally:
        api.close()
