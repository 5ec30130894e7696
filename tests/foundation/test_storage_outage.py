"""A database outage logs nobody out: with PostgreSQL stopped under a running server, a valid token gets
503 ``storage-unavailable`` with ``Retry-After`` (never 401), login gets the same (never 500), the event
stream closes with 1013 "try again later" (not the 4401 that makes clients drop the session), and once
the database is back the same token works again with nothing restarted.

The database is a throwaway PostgreSQL this test starts and stops itself (support.postgres); the machine's
shared one is never touched.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from support import postgres
from support.server import ADMIN_PASSWORD, ServerProcess


@pytest.fixture
def pg(throwaway_pg: postgres.ThrowawayPostgres) -> postgres.ThrowawayPostgres:
    return throwaway_pg


@pytest.fixture
def server(throwaway_pg_server: ServerProcess) -> ServerProcess:
    return throwaway_pg_server


def _login(http: httpx.Client) -> httpx.Response:
    return http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})


async def _events_close(ws_url: str, token: str) -> tuple[int | None, dict[str, object] | None]:
    """Open the event stream with ``token``: the close code and the error it sent, or (None, ready)."""
    async with asyncio.timeout(10):
        async with connect(f"{ws_url}/api/v1/events?token={token}") as ws:
            first = json.loads(await ws.recv())
            try:
                await asyncio.wait_for(ws.recv(), 1.0)
            except ConnectionClosed:
                return ws.close_code, first
            except TimeoutError:
                return None, first
            return None, first


def _wait_for(predicate: object, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"not true within {timeout} s")


def test_database_outage_answers_503_and_the_same_token_works_once_it_is_back(
    pg: postgres.ThrowawayPostgres, server: ServerProcess
) -> None:
    with httpx.Client(base_url=server.url, timeout=15) as http:
        login = _login(http)
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert http.get("/api/v1/me", headers=auth).status_code == 200

        pg.stop()
        for path in ("/api/v1/me", "/api/v1/phonebook", "/api/v1/admin/users"):
            r = http.get(path, headers=auth)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.json()["error"] == "storage-unavailable", r.text
            assert int(r.headers["Retry-After"]) > 0
        r = _login(http)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "storage-unavailable"
        assert int(r.headers["Retry-After"]) > 0
        assert http.get("/api/v1/health").status_code == 503
        code, message = asyncio.run(_events_close(server.ws_url, token))
        assert code == 1013, (code, message)
        assert message is not None and message["data"]["error"] == "storage-unavailable"  # type: ignore[index]

        pg.start()
        waited = _wait_for(lambda: http.get("/api/v1/me", headers=auth).status_code == 200, 15)
        print(f"the same token worked again {waited:.1f} s after PostgreSQL came back")
        assert _login(http).status_code == 200
        code, message = asyncio.run(_events_close(server.ws_url, token))
        assert code is None and message is not None and message["type"] == "session.ready", (code, message)
    assert "Traceback" not in server.log(), server.log()[-3000:]


def test_link_keeps_its_session_on_storage_unavailable_and_says_it_retries() -> None:
    from callto.link import i18n
    from callto.link.client import _error_from
    from callto.link.errors import SessionExpired
    from callto.link.events import AUTH_CLOSE_CODES

    body = {"error": "storage-unavailable", "message": "the database cannot be reached", "details": {"retry_after": 5}}
    resp = httpx.Response(503, json=body, headers={"Retry-After": "5"},
                          request=httpx.Request("GET", "http://127.0.0.1:1/api/v1/me"))
    err = _error_from(resp)
    assert not isinstance(err, SessionExpired)  # the stored token is deleted only on SessionExpired
    assert err.status == 503 and err.error == "storage-unavailable"
    assert 1013 not in AUTH_CLOSE_CODES  # the event stream reconnects rather than dropping the session
    words = {}
    for language in ("en", "it"):
        i18n.set_language(language)
        words[language] = i18n.tr_error(err)
    i18n.set_language("auto")
    assert "database" in words["en"] and "retries" in words["en"], words
    assert "database" in words["it"] and "riprova" in words["it"], words
