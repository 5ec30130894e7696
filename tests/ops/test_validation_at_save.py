"""Validation at the edge: phone variables and trunk transports are refused when saved (422), not first
when a phone fetches its file or a trunk fails to connect."""

from __future__ import annotations

import secrets

from support.server import Api


def _mac() -> str:
    return "80:5E:C0:" + ":".join(secrets.token_hex(1).upper() for _ in range(3))


def test_phone_with_an_unknown_time_zone_is_refused_when_saved(admin_api: Api) -> None:
    r = admin_api.post("/api/v1/admin/phones",
                       json={"mac": _mac(), "model": "T54W", "variables": {"time_zone": "Mars/Base"}})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid-input" and "Mars/Base" in str(body), body


def test_phone_time_zone_and_language_are_checked_on_change_too(admin_api: Api) -> None:
    variables = {"time_zone": "Europe/Rome", "language": "it"}
    r = admin_api.post("/api/v1/admin/phones", json={"mac": _mac(), "model": "T54W", "variables": variables})
    assert r.status_code == 201, r.text
    phone_id = r.json()["id"]
    for variables in ({"time_zone": "../../etc/passwd"}, {"language": "xx"}):
        bad = admin_api.patch(f"/api/v1/admin/phones/{phone_id}", json={"variables": variables})
        assert bad.status_code == 422, (variables, bad.text)
    assert admin_api.get(f"/api/v1/admin/phones/{phone_id}").json()["variables"]["time_zone"] == "Europe/Rome"


def test_trunk_over_tls_is_refused_with_a_clear_message(admin_api: Api) -> None:
    body = {"name": "Provider", "host": "sip.example.net", "port": 5061, "transport": "tls"}
    r = admin_api.post("/api/v1/admin/trunks", json=body)
    assert r.status_code == 422, r.text
    assert "TLS" in r.text
    ok = admin_api.post("/api/v1/admin/trunks", json={**body, "transport": "tcp", "name": f"P{secrets.token_hex(3)}"})
    assert ok.status_code == 201, ok.text
    patched = admin_api.patch(f"/api/v1/admin/trunks/{ok.json()['id']}", json={"transport": "tls"})
    assert patched.status_code == 422, patched.text
