"""A provisioned desk phone registers with the embedded switch using exactly what its config file says.

baresip stands in for the desk phone (a real Yealink cannot run here): the test fetches ``<mac>.cfg``
as a Yealink would, reads the SIP account out of the file, and configures baresip with exactly those
values. Unassigning the phone deletes its SIP device, so the same credentials are refused afterwards.
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from phone_formats import account

from support.baresip import Account, Baresip, BaresipError
from support.procs import ProcessGroup
from support.server import Api, ServerProcess
from support.tone import write_tone_wav

pytestmark = pytest.mark.sip


def _need_baresip() -> None:
    if shutil.which("baresip") is None:
        print("baresip is not installed (Debian package baresip-core)")
        pytest.skip("baresip is not installed (Debian package baresip-core)")


def _provisioned(admin_api: Api, user_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    mac = "805ec0" + secrets.token_hex(3)
    r = admin_api.post("/api/v1/admin/phones", json={"mac": mac, "model": "T46U", "user_id": user_id})
    assert r.status_code == 201, r.text
    phone = r.json()
    colon = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
    config = httpx.get(
        phone["provisioning_url"] + f"{mac}.cfg", headers={"User-Agent": f"Yealink SIP-T46U 108.86.0.20 {colon}"}
    )
    assert config.status_code == 200, config.text
    return phone, account("yealink", config.text)


def _baresip(tmp_path: Path, procs: ProcessGroup, name: str, sip: dict[str, Any], answermode: str) -> Baresip:
    settings = Account(
        aor=f"sip:{sip['username']}@{sip['server']}",
        password=sip["password"],
        auth_user=sip["auth"],
        outbound=f"sip:{sip['server']}:{sip['port']};transport=udp",
        regint=600,
        answermode=answermode,
    )
    tone = write_tone_wav(tmp_path / f"{name}.wav", 440.0, 5.0)
    return Baresip(tmp_path, procs, name=name, tone_wav=tone, account=settings).start()


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.timeout(90)
def test_provisioned_account_registers_and_unassigning_revokes_it(
    admin_api: Api, shared_server: ServerProcess, tmp_path: Path, procs: ProcessGroup
) -> None:
    _need_baresip()
    user = admin_api.create_user(extension=str(2000 + secrets.randbelow(7000)))
    phone, sip = _provisioned(admin_api, user["id"])
    assert sip["port"] == str(shared_server.sip_port)
    desk = _baresip(tmp_path, procs, "desk", sip, "manual")
    try:
        desk.wait_registered(timeout=15)
        assert _wait(
            lambda: admin_api.get(f"/api/v1/admin/phones/{phone['id']}").json()["registration"]["registered"], 10
        ), "the phone list shows the registration"
        state = admin_api.get(f"/api/v1/admin/phones/{phone['id']}").json()["registration"]
        assert state["address"] == "127.0.0.1" and "baresip" in (state["user_agent"] or "").lower()
    finally:
        desk.stop()

    r = admin_api.patch(f"/api/v1/admin/phones/{phone['id']}", json={"user_id": None})
    assert r.status_code == 200 and r.json()["device_id"] is None
    again = _baresip(tmp_path, procs, "old-creds", sip, "manual")
    try:
        with pytest.raises(BaresipError, match="registration failed"):
            again.wait_registered(timeout=15)
    finally:
        again.stop()


@pytest.mark.timeout(90)
def test_click_to_call_rings_the_provisioned_phone(
    admin_api: Api, anon_api: Api, tmp_path: Path, procs: ProcessGroup
) -> None:
    _need_baresip()
    user = admin_api.create_user(extension=str(2000 + secrets.randbelow(7000)), outbound="international")
    phone, sip = _provisioned(admin_api, user["id"])
    # Only the switch: the phone's web server (phone_http) is not something baresip has.
    r = admin_api.patch(f"/api/v1/admin/phones/{phone['id']}", json={"strategies": ["originate"]})
    assert r.status_code == 200
    desk = _baresip(tmp_path, procs, "desk-c2c", sip, "manual")
    me = anon_api.login(user["username"], "password-123")
    try:
        desk.wait_registered(timeout=15)
        r = me.post("/api/v1/calls", json={"to": "0721405516"})
        attempts = (r.json().get("attempts") or r.json().get("details", {}).get("attempts") or [])
        reasons = [a.get("reason", "") for a in attempts]
        if r.status_code == 503 and any("not running" in reason for reason in reasons):
            print(f"the switch offers no originator to click-to-call yet: {reasons}")
            pytest.skip(f"the switch offers no originator to click-to-call yet: {reasons}")
        assert r.status_code == 202, r.text
        desk.wait_incoming(timeout=10)
        desk.hangup()
    finally:
        me.close()
        desk.stop()
