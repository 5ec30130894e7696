"""Prometheus metrics at /metrics: counted requests with latency histograms, registrations, sessions;
loopback may read them by default, anyone else needs an admin token."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from ops.cli_support import sip_register
from support.server import ADMIN_PASSWORD, Api, ServerProcess, admin_client, start_server


def _value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not in\n{text}"
    return float(match.group(1))


def test_metrics_count_requests_registrations_and_latency(server: ServerProcess, tmp_path: Path) -> None:
    with admin_client(server.url) as admin:
        user = admin.create_user()
        device = admin.add_device(user["id"], "deskphone")
    httpx.post(f"{server.url}/api/v1/auth/login", json={"username": "nobody", "password": "x"})
    assert sip_register(server, device["sip"]["username"], device["sip"]["password"], tmp_path / "reg").ok

    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert _value(text, 'callto_http_requests_total{method="POST",route="/api/v1/auth/login",status="401"}') == 1
    assert _value(text, 'callto_http_requests_total{method="POST",route="/api/v1/admin/users",status="201"}') == 1
    route = "/api/v1/admin/users/{user_id}/devices"
    assert _value(text, f'callto_http_requests_total{{method="POST",route="{route}",status="201"}}') == 1
    count = _value(text, 'callto_http_request_duration_seconds_count{route="/api/v1/auth/login"}')
    inf = _value(text, 'callto_http_request_duration_seconds_bucket{route="/api/v1/auth/login",le="+Inf"}')
    assert count == inf == 2  # the admin's login and the failed one
    assert _value(text, 'callto_device_status_changes_total{change="online"}') == 1
    assert _value(text, "callto_sip_registered_devices") == 1
    assert _value(text, "callto_sip_registered_devices_here") == 1, "registered on this node itself"
    assert _value(text, "callto_sip_calls_active") == 0
    assert _value(text, 'callto_sip_shed_total{method="REGISTER"}') == 0, "a calm switch sheds nothing"
    assert _value(text, "callto_sip_loop_lag_seconds") < 1
    assert _value(text, "callto_event_sessions") == 0
    assert "# TYPE callto_click_outcomes_total counter" in text


def test_metrics_need_an_admin_token_when_loopback_is_not_allowed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", f"sqlite:///{tmp_path / 'callto.db'}", CALLTO_METRICS_ALLOW="none")
    try:
        anonymous = httpx.get(f"{server.url}/metrics")
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
        with admin_client(server.url) as admin:
            user = admin.create_user()
            assert admin.get("/metrics").status_code == 200
        plain = Api(server.url).login(user["username"], "password-123")
        assert plain.get("/metrics").status_code == 401
        plain.close()
        assert ADMIN_PASSWORD not in httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer x"}).text
    finally:
        server.stop()
