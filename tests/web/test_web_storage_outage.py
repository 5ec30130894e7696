"""The web CTI through a database outage: a page reloaded while PostgreSQL is down gets 503
``storage-unavailable`` for /me, keeps its token, says the server is retrying (``login.serverRetrying``)
instead of "session expired", and once the database is back it is signed in again by itself.

The database is a throwaway PostgreSQL this test stops and starts itself (support.postgres).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import postgres
from support.server import ADMIN_PASSWORD, ServerProcess, start_server

from .conftest import login, wait_js

RETRYING_EN = "cannot reach its database right now. You are still signed in"


@pytest.fixture
def pg_web_server(
    throwaway_pg: postgres.ThrowawayPostgres, tmp_path: Path, web_dist: Path
) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path / "data", throwaway_pg.url, CALLTO_WEB_DIR=str(web_dist))
    try:
        yield proc
    finally:
        proc.stop()


def test_web_cti_keeps_its_session_through_a_database_outage_and_says_it_retries(
    throwaway_pg: postgres.ThrowawayPostgres, pg_web_server: ServerProcess, browser: Any
) -> None:
    ctx = browser.new_context(base_url=pg_web_server.url, locale="en-US", viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(10_000)
    errors: list[str] = []
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        login(page, "admin", ADMIN_PASSWORD)
        token = page.evaluate("localStorage.getItem('callto.token')")
        assert token

        throwaway_pg.stop()
        page.reload()
        notice = page.wait_for_selector("[data-testid=login-notice]")
        text = notice.inner_text()
        assert RETRYING_EN in text, text  # not "your session expired"
        assert page.evaluate("localStorage.getItem('callto.token')") == token  # the session is kept
        assert page.query_selector("[data-testid=logout]") is None

        throwaway_pg.start()
        # boot() asks /me again after Retry-After (5 s): signed in again with nobody typing a password.
        wait_js(page, "!!document.querySelector('[data-testid=logout]')", timeout=20)
        assert page.evaluate("localStorage.getItem('callto.token')") == token
        assert page.query_selector("[data-testid=login-notice]") is None
    finally:
        ctx.close()
    assert not errors, errors
    assert "Traceback" not in pg_web_server.log(), pg_web_server.log()[-3000:]
