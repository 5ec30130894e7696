"""An API token during a database outage: 503 ``storage-unavailable`` with ``Retry-After`` (never 401, so a
CRM keeps its token and retries), and the same token works again once the database is back. The database
is a throwaway PostgreSQL this test starts and stops itself."""

from __future__ import annotations

import time

import httpx
import pytest

from support import postgres
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
def pg(throwaway_pg: postgres.ThrowawayPostgres) -> postgres.ThrowawayPostgres:
    return throwaway_pg


@pytest.fixture
def server(throwaway_pg_server: ServerProcess) -> ServerProcess:
    return throwaway_pg_server


def test_token_gets_503_during_an_outage_and_works_after_it(pg: postgres.ThrowawayPostgres,
                                                            server: ServerProcess) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    created = admin.post("/api/v1/me/tokens", json={"name": "crm", "scopes": ["history:read"]})
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['secret']}"}
    with httpx.Client(base_url=server.url, timeout=15, headers=headers) as http:
        assert http.get("/api/v1/history").status_code == 200
        pg.stop()
        r = http.get("/api/v1/history")
        assert r.status_code == 503 and r.json()["error"] == "storage-unavailable", r.text
        assert int(r.headers["Retry-After"]) > 0
        pg.start()
        deadline = time.monotonic() + 15
        while http.get("/api/v1/history").status_code != 200:
            assert time.monotonic() < deadline, "the token did not work again after the outage"
            time.sleep(0.2)
    assert "Traceback" not in server.log(), server.log()[-3000:]
