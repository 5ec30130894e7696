"""Personal access tokens and service tokens against a real server (SQLite and PostgreSQL): scopes are
checked on every route, expiry and revocation take effect on the next request, last use is recorded,
the secret is stored only as a hash, and a service token places calls for a user within that user's
outbound class, with an audit of who placed it."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy
from websockets.sync.client import connect

from support.server import Api, ServerProcess

# generous: the first test also waits for the module's server to start, slow on a loaded machine
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


def _token(api: Api, scopes: list[str], path: str = "/api/v1/me/tokens", **extra: Any) -> dict[str, Any]:
    r = api.post(path, json={"name": "crm", "scopes": scopes, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _user_api(admin_api: Api, shared_server: ServerProcess, **fields: Any) -> tuple[dict[str, Any], Api]:
    user = admin_api.create_user(**fields)
    return user, Api(shared_server.url).login(user["username"], "password-123")


def test_token_reaches_only_the_routes_of_its_scopes(admin_api: Api, shared_server: ServerProcess) -> None:
    _, alice = _user_api(admin_api, shared_server)
    created = _token(alice, ["history:read"])
    token = Api(shared_server.url, created["secret"])
    assert token.get("/api/v1/history").status_code == 200
    refused = token.get("/api/v1/phonebook")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "token-scope-missing"
    assert refused.json()["details"]["required"] == ["phonebook:read"]
    r = token.post("/api/v1/calls", json={"to": "100"})
    assert r.status_code == 403 and r.json()["error"] == "token-scope-missing", r.text
    # outside every scope: token management, the profile, the event stream
    for method, path in [("GET", "/api/v1/me/tokens"), ("POST", "/api/v1/me/tokens"), ("GET", "/api/v1/me"),
                         ("PUT", "/api/v1/me/presence")]:
        r = token.http.request(method, path, json={} if method != "GET" else None)
        assert r.status_code == 403 and r.json()["error"] == "token-not-allowed", (path, r.text)
    with connect(f"{shared_server.ws_url}/api/v1/events?token={created['secret']}", open_timeout=5) as ws:
        first = json.loads(ws.recv(timeout=5))
    assert first["type"] == "error" and first["data"]["error"] == "token-not-allowed", first


def test_an_admins_token_never_reaches_admin_routes(admin_api: Api, shared_server: ServerProcess) -> None:
    every = ["calls:write", "calls:read", "history:read", "phonebook:read", "phonebook:write"]
    token = Api(shared_server.url, _token(admin_api, every)["secret"])
    for path in ("/api/v1/admin/users", "/api/v1/admin/service-tokens", "/api/v1/admin/history"):
        r = token.get(path)
        assert r.status_code == 403 and r.json()["error"] == "token-not-allowed", (path, r.text)
    service = Api(shared_server.url, _token(admin_api, every, "/api/v1/admin/service-tokens")["secret"])
    r = service.get("/api/v1/admin/users")
    assert r.status_code == 403 and r.json()["error"] == "token-not-allowed", r.text


def test_secret_is_shown_once_and_stored_only_as_its_hash(
    admin_api: Api, shared_server: ServerProcess, module_database_url: str
) -> None:
    _, alice = _user_api(admin_api, shared_server)
    created = _token(alice, ["phonebook:read"], note="for the CRM")
    secret = created["secret"]
    assert secret.startswith("ct_pat_") and len(secret) > 40
    listed = alice.get("/api/v1/me/tokens").json()
    assert [t["id"] for t in listed] == [created["token"]["id"]]
    assert secret not in json.dumps(listed) and listed[0]["note"] == "for the CRM"
    engine = sqlalchemy.create_engine(module_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("select * from integration_tokens where id = :id"),
                                {"id": created["token"]["id"]}).mappings().all()
    finally:
        engine.dispose()
    assert rows[0]["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps([dict(r) for r in rows], default=str)


def test_expired_token_is_refused(admin_api: Api, shared_server: ServerProcess) -> None:
    _, alice = _user_api(admin_api, shared_server)
    expires = datetime.now(UTC) + timedelta(seconds=2)
    token = Api(shared_server.url, _token(alice, ["history:read"], expires_at=expires.isoformat())["secret"])
    assert token.get("/api/v1/history").status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    r = token.get("/api/v1/history")
    assert r.status_code == 401 and r.json()["details"]["reason"] == "expired", r.text
    past = alice.post("/api/v1/me/tokens", json={"name": "old", "scopes": ["history:read"],
                                                 "expires_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.json()["error"] == "invalid-token-request", past.text


def test_revoked_token_is_refused_on_the_next_request(admin_api: Api, shared_server: ServerProcess) -> None:
    _, alice = _user_api(admin_api, shared_server)
    created = _token(alice, ["history:read"])
    token = Api(shared_server.url, created["secret"])
    assert token.get("/api/v1/history").status_code == 200
    assert alice.delete(f"/api/v1/me/tokens/{created['token']['id']}").status_code == 204
    r = token.get("/api/v1/history")
    assert r.status_code == 401 and r.json()["details"]["reason"] == "revoked", r.text
    assert alice.get("/api/v1/me/tokens").json() == []
    # a user cannot revoke someone else's token
    _, bob = _user_api(admin_api, shared_server)
    other = _token(bob, ["history:read"])
    assert alice.delete(f"/api/v1/me/tokens/{other['token']['id']}").status_code == 404


def test_last_use_is_recorded(admin_api: Api, shared_server: ServerProcess) -> None:
    _, alice = _user_api(admin_api, shared_server)
    created = _token(alice, ["history:read"])
    assert alice.get("/api/v1/me/tokens").json()[0]["last_used_at"] is None
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert Api(shared_server.url, created["secret"]).get("/api/v1/history").status_code == 200
    used = alice.get("/api/v1/me/tokens").json()[0]["last_used_at"]
    assert used is not None and datetime.fromisoformat(used.replace("Z", "+00:00")) >= before


def test_service_token_calls_on_behalf_of_within_that_users_outbound_class(
    admin_api: Api, shared_server: ServerProcess
) -> None:
    internal, _ = _user_api(admin_api, shared_server, outbound="internal")
    national, national_api = _user_api(admin_api, shared_server, outbound="national")
    service = Api(shared_server.url, _token(admin_api, ["calls:write"], "/api/v1/admin/service-tokens",
                                            name="crm-server")["secret"])
    # the national number is beyond the internal user's class: refused before anything is dialed
    r = service.post("/api/v1/integrations/calls", json={"to": "0721 405516", "on_behalf_of": internal["username"]})
    assert r.status_code == 403 and r.json()["error"] == "number-not-permitted", r.text
    # the same number for the national user passes the class check and stops at their (missing) device
    r = service.post("/api/v1/integrations/calls", json={"to": "0721 405516", "on_behalf_of": national["id"]})
    assert r.status_code == 409 and r.json()["error"] == "no-main-device", r.text
    r = service.post("/api/v1/integrations/calls", json={"to": "100", "on_behalf_of": "nobody-here"})
    assert r.status_code == 404, r.text
    audit = admin_api.get("/api/v1/admin/service-calls").json()
    mine = [a for a in audit if a["on_behalf_of_user_id"] in (internal["id"], national["id"])]
    assert {(a["on_behalf_of_user_id"], a["outcome"]) for a in mine} == {
        (internal["id"], "number-not-permitted"), (national["id"], "no-main-device")}
    assert {a["token_name"] for a in mine} == {"crm-server"}
    # a personal token, even with calls:write, only calls for its owner
    personal = Api(shared_server.url, _token(national_api, ["calls:write"])["secret"])
    r = personal.post("/api/v1/integrations/calls", json={"to": "100", "on_behalf_of": internal["id"]})
    assert r.status_code == 403 and r.json()["error"] == "on-behalf-not-allowed", r.text
