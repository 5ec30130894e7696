"""The switch inside the running server: devices register with their own credentials and show online,
registrations survive a restart, removing a device revokes its account, trunks are administered (their
DIDs read by the one number parser, in any form a person types, and still routing the provider's calls)."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from support.baresip import Account, Baresip, BaresipError
from support.fixtures import BaresipFactory
from support.ports import free_port
from support.server import Api, ServerProcess
from support.sipp import run_sipp


def _wait(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _phone(factory: BaresipFactory, tone: Path, server: ServerProcess, device: dict[str, Any], name: str) -> Baresip:
    sip = device["sip"]
    return factory(
        name, tone,
        Account(
            aor=f"sip:{sip['username']}@callto.test",
            password=sip["password"],
            outbound=f"sip:127.0.0.1:{server.sip_port}",
            regint=600,
        ),
    )


def _online(api: Api, device_id: int) -> bool:
    return bool({d["id"]: d for d in api.get("/api/v1/me/devices").json()}[device_id]["online"])


@pytest.mark.sip
def test_desk_phone_registers_and_shows_online_across_a_restart(
    server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = admin.create_user(extension="301")
    desk = admin.add_device(user["id"], "deskphone")
    me = Api(server.url).login(user["username"], "password-123")
    assert not _online(me, desk["id"])
    phone = _phone(baresip_factory, tone_440, server, desk, "desk")
    assert phone.wait_registered().startswith("200")
    _wait(lambda: _online(me, desk["id"]), what="desk phone online")
    checks = {c["id"]: c for c in me.get("/api/v1/me/diagnostics").json()["checks"]}
    assert checks[f"device-{desk['id']}"]["status"] == "ok"
    assert "127.0.0.1" in checks[f"device-{desk['id']}"]["message"]
    time.sleep(1.0)  # registrations are written behind, in batches
    server.restart()
    me = Api(server.url).login(user["username"], "password-123")
    assert _online(me, desk["id"]), "the stored registration is loaded at start"
    phone.stop()


@pytest.mark.sip
def test_wrong_password_does_not_register(server: ServerProcess, baresip_factory: BaresipFactory,
                                          tone_440: Path) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = admin.create_user(extension="302")
    desk = admin.add_device(user["id"], "deskphone")
    desk["sip"]["password"] = "not-the-password"
    phone = _phone(baresip_factory, tone_440, server, desk, "bad")
    with pytest.raises(BaresipError, match="403"):
        phone.wait_registered()
    me = Api(server.url).login(user["username"], "password-123")
    assert not _online(me, desk["id"])


@pytest.mark.sip
def test_removed_device_can_no_longer_register(server: ServerProcess, baresip_factory: BaresipFactory,
                                               tone_440: Path) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = admin.create_user(extension="303")
    desk = admin.add_device(user["id"], "deskphone")
    phone = _phone(baresip_factory, tone_440, server, desk, "first")
    assert phone.wait_registered().startswith("200")
    phone.stop()
    assert admin.delete(f"/api/v1/admin/devices/{desk['id']}").status_code == 204
    again = _phone(baresip_factory, tone_440, server, desk, "again")
    with pytest.raises(BaresipError, match=r"40[34]"):
        again.wait_registered()


def test_trunks_are_administered_with_a_write_only_password(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user()
    body = {"name": "provider", "host": "127.0.0.1", "port": 5099, "username": "acct", "password": "s3cret",
            "register": True, "caller_id": "+390721405500", "dids": [{"number": "0721405501", "user_id": user["id"]}]}
    r = admin_api.post("/api/v1/admin/trunks", json=body)
    assert r.status_code == 201, r.text
    trunk = r.json()
    assert trunk["password_set"] is True and "password" not in trunk and "s3cret" not in r.text
    assert admin_api.post("/api/v1/admin/trunks", json=body).status_code == 409
    r = admin_api.post("/api/v1/admin/trunks", json={**body, "name": "other"})
    assert r.status_code == 409 and r.json()["error"] == "did-taken"
    r = admin_api.post("/api/v1/admin/trunks", json={**body, "name": "bad", "host": "evil host\r\n", "dids": []})
    assert r.status_code == 422
    r = admin_api.patch(f"/api/v1/admin/trunks/{trunk['id']}", json={"port": 5098})
    assert r.status_code == 200 and r.json()["port"] == 5098 and r.json()["password_set"]
    me = anon_api.login(user["username"], "password-123")
    assert me.get("/api/v1/admin/trunks").status_code == 403
    assert admin_api.delete(f"/api/v1/admin/trunks/{trunk['id']}").status_code == 204
    assert admin_api.get(f"/api/v1/admin/trunks/{trunk['id']}").status_code == 404
    me.close()


def test_a_bad_or_repeated_did_is_refused_naming_its_row_and_value(admin_api: Api) -> None:
    user = admin_api.create_user()
    body: dict[str, Any] = {"name": f"dids-{secrets.token_hex(3)}", "host": "127.0.0.1", "port": 5097}
    r = admin_api.post("/api/v1/admin/trunks", json={**body, "dids": [
        {"number": "(0721) 405-521", "user_id": user["id"]}, {"number": "0721 40552x", "user_id": user["id"]}]})
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["error"] == "invalid-number" and "0721 40552x" in error["message"]
    [problem] = error["details"]["problems"]
    assert (problem["field"], problem["error"], problem["reason"], problem["value"]) == (
        "dids.1.number", "invalid-number", "letters", "0721 40552x")
    # one number in two spellings is listed twice
    r = admin_api.post("/api/v1/admin/trunks", json={**body, "dids": [
        {"number": "tel:+39-0721-405521", "user_id": user["id"]}, {"number": "0721 405521", "user_id": user["id"]}]})
    assert r.status_code == 422, r.text
    assert r.json()["details"] == {"field": "dids.1.number", "value": "0721 405521", "index": 1, "same_as": 0}
    r = admin_api.post("/api/v1/admin/trunks",
                       json={**body, "dids": [{"number": "+390721405521", "user_id": user["id"]}]})
    assert r.status_code == 201, r.text
    other = {**body, "name": f"{body['name']}-b", "dids": [{"number": "(0721) 405521", "user_id": user["id"]}]}
    r = admin_api.post("/api/v1/admin/trunks", json=other)
    assert r.status_code == 409 and r.json()["error"] == "did-taken"
    assert r.json()["details"]["dids"] == ["(0721) 405521"]


@pytest.mark.sip
def test_dids_typed_in_any_form_route_the_providers_calls_in_either_rendering(
    admin_api: Api, shared_server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path, tmp_path: Path
) -> None:
    # (with an extension: the switch names the user's phones by it in the To of their INVITE)
    user = admin_api.create_user(extension="3950")
    desk = admin_api.add_device(user["id"], "deskphone")
    provider_port = free_port("udp")
    typed = [{"number": "tel:+39 0721 405516", "user_id": user["id"]},
             {"number": "(0721) 405-517", "user_id": user["id"]}]
    r = admin_api.post("/api/v1/admin/trunks", json={
        "name": f"forms-{secrets.token_hex(3)}", "host": "127.0.0.1", "port": provider_port, "dids": typed})
    assert r.status_code == 201, r.text
    assert r.json()["dids"] == typed, "kept as typed"
    try:
        sip = desk["sip"]
        phone = baresip_factory("didphone", tone_440, Account(
            aor=f"sip:{sip['username']}@callto.test", password=sip["password"],
            outbound=f"sip:127.0.0.1:{shared_server.sip_port}", regint=600, answermode="auto",
        ))
        assert phone.wait_registered().startswith("200")
        uac = tmp_path / "uac.xml"  # sipp's own UAC scenario (INVITE with SDP, ACK, pause, BYE)
        uac.write_text(subprocess.run(["sipp", "-sd", "uac"], capture_output=True, text=True, check=False).stdout)
        # the provider sends the first one in national form, the second in E.164
        for dialed in ("0721405516", "+390721405517"):
            result = run_sipp(uac, f"127.0.0.1:{shared_server.sip_port}", tmp_path / f"uac-{dialed}",
                              local_port=provider_port, timeout=15, extra=["-s", dialed, "-d", "200"])
            assert result.returncode == 0, result.describe()
            phone.wait_established(timeout=5)
            phone.wait_closed(timeout=5)
    finally:
        admin_api.delete(f"/api/v1/admin/trunks/{r.json()['id']}")


@pytest.mark.sip
def test_reload_sends_check_sync_to_the_registered_phone(
    server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = admin.create_user(extension="304")
    phone = admin.post("/api/v1/admin/phones", json={"mac": "00:15:65:12:34:56", "model": "T54W",
                                                    "user_id": user["id"]})
    assert phone.status_code == 201, phone.text
    device = admin.get(f"/api/v1/admin/devices/{phone.json()['device_id']}").json()
    r = admin.post(f"/api/v1/admin/phones/{phone.json()['id']}/reload")
    assert r.json()["outcome"] == "not-registered"
    desk = _phone(baresip_factory, tone_440, server, device, "prov")
    assert desk.wait_registered().startswith("200")
    r = admin.post(f"/api/v1/admin/phones/{phone.json()['id']}/reload")
    # baresip is no Yealink: it refuses the event, but it got the NOTIFY and answered (no timeout).
    assert r.json()["outcome"] in ("sent", "rejected"), r.json()


def test_sip_over_tls_answers_options(server: ServerProcess) -> None:
    import socket
    import ssl

    port = server.sip_tls_port
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the generated certificate is self-signed
    deadline = time.monotonic() + 5
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        local = tls.getsockname()
        tls.sendall(
            (f"OPTIONS sip:callto.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:{local[1]};branch=z9hG4bKtls1\r\n"
             "Max-Forwards: 70\r\nTo: <sip:callto.test>\r\nFrom: <sip:probe@callto.test>;tag=t1\r\n"
             "Call-ID: tls-probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            answer += tls.recv(4096)
    assert answer.startswith(b"SIP/2.0 200"), answer[:200]
