"""Customer cards and their sources through the real HTTP API, on SQLite and PostgreSQL: a CRM in a
separate SQLite or PostgreSQL database, HTTP JSON sources (one that hangs), admin-only configuration,
injection attempts, and the ``card`` event the switch will push on a call (driven through
``CardService.push_card`` until the switch lands)."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from cti_fixtures import CtiServer, admin, cti, make_user, next_event, open_events

from callto.history.service import CallRecord, Direction, Disposition
from support.server import POSTGRES_URL, Api

__all__ = ["admin", "cti", "make_user"]


class _Handler(BaseHTTPRequestHandler):
    """A tiny CRM web service: /customer/<number> answers JSON; /slow/... hangs; /broken/... fails."""

    seen: list[str] = []

    def do_GET(self) -> None:
        _Handler.seen.append(self.path)
        if self.path.startswith("/slow/"):
            time.sleep(3)
        if self.path.startswith("/broken/"):
            self.send_response(500)
            self.end_headers()
            return
        authorized = self.headers.get("Authorization") == "Bearer s3cret"
        body = json.dumps({"path": self.path, "authorized": authorized, "tier": "gold"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def crm_http() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crm_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A CRM database apart from callto's, with a customers table keyed by phone as the CRM wrote it."""
    rows = [("ACME Idraulica", "0721 405516", 1200.5), ("Other Srl", "02 999", 3.0)]
    if request.param == "sqlite":
        path = tmp_path / "crm.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE customers (name TEXT, phone TEXT, balance REAL)")
            conn.executemany("INSERT INTO customers VALUES (?, ?, ?)", rows)
        yield f"sqlite:///{path}"
        return
    request.getfixturevalue("postgres_ok")
    schema = "crm_" + secrets.token_hex(4)
    engine = sqlalchemy.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sqlalchemy.text(f'CREATE TABLE "{schema}".customers (name TEXT, phone TEXT, balance NUMERIC)'))
        for name, phone, balance in rows:
            conn.execute(
                sqlalchemy.text(f'INSERT INTO "{schema}".customers VALUES (:n, :p, :b)'),
                {"n": name, "p": phone, "b": balance},
            )
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


CRM_QUERY = "SELECT name, balance FROM customers WHERE replace(phone, ' ', '') = :national"


def _source(admin: Api, **body: Any) -> dict[str, Any]:
    body = {"name": f"src-{secrets.token_hex(3)}", **body}
    r = admin.post("/api/v1/admin/card-sources", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _without_sources(admin: Api) -> None:
    for source in admin.get("/api/v1/admin/card-sources").json():
        assert admin.delete(f"/api/v1/admin/card-sources/{source['id']}").status_code == 204


def test_card_combines_contacts_last_calls_and_a_crm_database(
    cti: CtiServer, crm_db: str, make_user: Any, admin: Api
) -> None:
    _without_sources(admin)
    user, api = make_user()
    contact = {"name": "Mario Rossi", "numbers": [{"type": "work", "number": "+39 0721 40 55 16"}]}
    assert api.post("/api/v1/phonebook", json=contact).status_code == 201
    start = datetime.now(UTC) - timedelta(hours=1)
    cti.feature("history").record_call(
        CallRecord(
            call_id=secrets.token_hex(6), user_id=user["id"], direction=Direction.incoming,
            other_number="+390721405516", started_at=start, answered_at=None,
            ended_at=start + timedelta(seconds=20), disposition=Disposition.missed,
        )
    )
    crm = _source(admin, kind="sql", timeout_ms=3000, config={"url": crm_db, "query": CRM_QUERY})
    card = api.get("/api/v1/customer-card", params={"number": "0721 405516"})
    assert card.status_code == 200, card.text
    body = card.json()
    assert body["e164"] == "+390721405516"
    assert [c["name"] for c in body["contacts"]] == ["Mario Rossi"]
    assert [(c["number"], c["name"], c["missed"]) for c in body["calls"]] == [("+390721405516", "Mario Rossi", True)]
    [found] = body["sources"]
    assert (found["id"], found["status"]) == (crm["id"], "ok")
    assert [(row["name"], float(row["balance"])) for row in found["data"]] == [("ACME Idraulica", 1200.5)]
    assert "url" not in card.text and crm_db not in card.text
    unknown = api.get("/api/v1/customer-card", params={"number": "+39 06 000"}).json()
    assert unknown["contacts"] == [] and unknown["sources"][0]["status"] == "empty"
    _without_sources(admin)


def test_a_hanging_source_times_out_and_the_card_still_comes_back(
    cti: CtiServer, crm_http: str, make_user: Any, admin: Api
) -> None:
    _without_sources(admin)
    _, api = make_user()
    good = _source(
        admin, kind="http", timeout_ms=2000,
        config={
            "url_template": crm_http + "/customer/{number}?n={national}",
            "headers": {"Authorization": "Bearer s3cret"},
        },
    )
    slow = _source(admin, kind="http", timeout_ms=400, config={"url_template": crm_http + "/slow/{number}"})
    broken = _source(admin, kind="http", timeout_ms=2000, config={"url_template": crm_http + "/broken/{digits}"})
    started = time.monotonic()
    card = api.get("/api/v1/customer-card", params={"number": "+39 0721 405516"})
    elapsed = time.monotonic() - started
    assert card.status_code == 200, card.text
    assert elapsed < 2.0, f"the card waited {elapsed:.2f} s for a source with a 0.4 s timeout"
    by_id = {s["id"]: s for s in card.json()["sources"]}
    assert by_id[slow["id"]]["status"] == "timeout" and "400 ms" in by_id[slow["id"]]["problem"]
    assert by_id[broken["id"]]["status"] == "error" and "500" in by_id[broken["id"]]["problem"]
    answer = by_id[good["id"]]
    assert answer["status"] == "ok" and answer["data"]["tier"] == "gold" and answer["data"]["authorized"] is True
    # The number is URL-encoded into the template, never pasted raw.
    assert answer["data"]["path"] == "/customer/%2B390721405516?n=0721405516"
    assert "s3cret" not in card.text
    _without_sources(admin)


def test_source_configuration_is_for_admins_only(cti: CtiServer, make_user: Any, admin: Api) -> None:
    _, api = make_user()
    config = {"url_template": "http://127.0.0.1:9/{number}", "headers": {"X-Key": "k"}}
    source = _source(admin, kind="http", config=config)
    assert admin.get(f"/api/v1/admin/card-sources/{source['id']}").json()["config"]["headers"] == {"X-Key": "k"}
    for method, path in (
        ("get", "/api/v1/admin/card-sources"),
        ("get", f"/api/v1/admin/card-sources/{source['id']}"),
        ("patch", f"/api/v1/admin/card-sources/{source['id']}"),
        ("delete", f"/api/v1/admin/card-sources/{source['id']}"),
        ("post", f"/api/v1/admin/card-sources/{source['id']}/test?number=0721"),
    ):
        r = getattr(api, method)(path, **({"json": {"enabled": False}} if method == "patch" else {}))
        assert r.status_code == 403 and r.json()["error"] == "admin-only", (method, path, r.text)
    assert api.post("/api/v1/admin/card-sources", json={"name": "x", "kind": "http", "config": {}}).status_code == 403
    assert admin.get(f"/api/v1/admin/card-sources/{source['id']}").json()["enabled"] is True
    assert admin.delete(f"/api/v1/admin/card-sources/{source['id']}").status_code == 204


def test_injection_attempts_in_source_and_card_parameters_change_nothing(
    cti: CtiServer, crm_db: str, make_user: Any, admin: Api
) -> None:
    _without_sources(admin)
    _, api = make_user()
    bad_configs = [
        {"kind": "sql", "config": {"url": crm_db, "query": "SELECT * FROM customers WHERE phone = '{number}'"}},
        {"kind": "sql", "config": {"url": crm_db, "query": "SELECT * FROM customers WHERE phone = %s"}},
        {"kind": "sql", "config": {"url": crm_db, "query": "DELETE FROM customers WHERE phone = :number"}},
        {"kind": "sql", "config": {"url": crm_db, "query": "SELECT 1 WHERE :number = '1'; DROP TABLE customers"}},
        {"kind": "sql", "config": {"url": crm_db, "query": "SELECT * FROM customers WHERE phone = :password"}},
        {"kind": "sql", "config": {"url": "mysql://x/y", "query": "SELECT 1 WHERE :number = 1"}},
        {"kind": "sql", "config": {"url": "not a url", "query": "SELECT 1 WHERE :number = 1"}},
        {"kind": "http", "config": {"url_template": "http://127.0.0.1/{0.__class__}"}},
        {"kind": "http", "config": {"url_template": "file:///etc/passwd?{number}"}},
        {"kind": "http", "config": {"url_template": "http://{number}.evil.example/"}},
        {"kind": "http", "config": {"url_template": "http://127.0.0.1/x"}},
        {"kind": "http", "config": {"url_template": "http://127.0.0.1/{number}", "headers": {"X": "a\r\nB: c"}}},
        {"kind": "shell", "config": {}},
    ]
    for body in bad_configs:
        r = admin.post("/api/v1/admin/card-sources", json={"name": f"bad-{secrets.token_hex(3)}", **body})
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"] in ("invalid-card-source", "invalid-input"), r.text
        assert r.json()["message"]
    assert admin.get("/api/v1/admin/card-sources").json() == []
    query = "SELECT name FROM customers WHERE phone = :number"
    crm = _source(admin, kind="sql", config={"url": crm_db, "query": query})
    for number in ("1' OR '1'='1", "0721'; DROP TABLE customers;--", "0721 405516 OR 1=1", "+39 abc", "", "1" * 70):
        r = api.get("/api/v1/customer-card", params={"number": number})
        assert r.status_code == 422, (number, r.text)
        assert r.json()["error"] in ("invalid-number", "invalid-input"), r.text
    tested = admin.post(f"/api/v1/admin/card-sources/{crm['id']}/test", params={"number": "02 999"})
    assert tested.status_code == 200 and tested.json()["status"] == "empty", tested.text
    tested = admin.post(
        f"/api/v1/admin/card-sources/{crm['id']}/test", params={"number": "x' UNION SELECT password_hash FROM users"}
    )
    assert tested.status_code == 422
    engine = sqlalchemy.create_engine(crm_db)
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT count(*) FROM customers")).scalar_one() == 2
    engine.dispose()
    _without_sources(admin)


def test_a_failing_sql_source_is_reported_and_a_slow_query_is_stopped(
    cti: CtiServer, tmp_path: Path, make_user: Any, admin: Api
) -> None:
    _without_sources(admin)
    _, api = make_user()
    path = tmp_path / "crm-slow.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    missing = _source(
        admin, kind="sql", config={"url": f"sqlite:///{path}", "query": "SELECT * FROM nowhere WHERE x = :digits"}
    )
    # A recursive query that would run for minutes: the timeout must interrupt it.
    forever = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT count(*) AS c FROM n WHERE i = :digits"
    )
    slow = _source(admin, kind="sql", timeout_ms=500, config={"url": f"sqlite:///{path}", "query": forever})
    started = time.monotonic()
    body = api.get("/api/v1/customer-card", params={"number": "0721"}).json()
    assert time.monotonic() - started < 2.5
    by_id = {s["id"]: s for s in body["sources"]}
    assert by_id[missing["id"]]["status"] == "error" and "nowhere" in by_id[missing["id"]]["problem"]
    assert by_id[slow["id"]]["status"] == "timeout"
    _without_sources(admin)


def test_a_call_pushes_the_card_to_the_user_when_it_is_ready(cti: CtiServer, make_user: Any) -> None:
    user, api = make_user()
    other, other_api = make_user()
    lia = {"name": "Lia Moro", "numbers": [{"number": "06 4455"}]}
    assert api.post("/api/v1/phonebook", json=lia).status_code == 201
    cards = cti.feature("cards")
    loop = cti.server_loop()
    with open_events(cti, api.token) as ws, open_events(cti, other_api.token) as other_ws:
        asyncio.run_coroutine_threadsafe(
            cards.push_card(user["id"], "+39 06 4455", call_id="c-77", direction="incoming"), loop
        ).result(10)
        event = next_event(ws, "card")
        assert event["data"]["call_id"] == "c-77" and [c["name"] for c in event["data"]["contacts"]] == ["Lia Moro"]
        with pytest.raises(TimeoutError):
            next_event(other_ws, "card", timeout=0.5)
    assert other["id"] != user["id"]
