"""A provisioned desk phone: click-to-call makes the phone dial through its own web server
(``phone_http``); when that web server cannot be reached, the switch rings the phone first instead."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.test_click_to_call_desk_phone import register_phone
from provisioning.phone_formats import account
from support.baresip import BaresipError
from support.fake_phones import FakeYealinkPhone
from support.fixtures import BaresipFactory
from support.ports import free_port
from support.server import Api, ServerProcess
from support.tone import describe, has_tone

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]
MAC = "00:15:65:3a:4b:5c"
YEALINK_UA = "Yealink SIP-T54W 96.86.0.100 00:15:65:3a:4b:5c"


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Any:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
    yield proc
    proc.stop()


def test_phone_http_makes_the_desk_phone_dial_and_unreachable_falls_back_to_ringing_it_first(
    sqlite_server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    server = sqlite_server
    admin = Api(server.url).login("admin", "admin-secret-1")
    eve = admin.create_user("eve", extension="801", outbound="national")
    frank = admin.create_user("frank", extension="802")
    phone = admin.post("/api/v1/admin/phones", json={"mac": MAC, "model": "T54W", "user_id": eve["id"]}).json()
    config = httpx.get(phone["provisioning_url"] + "001565" + "3a4b5c.cfg", headers={"User-Agent": YEALINK_UA})
    assert config.status_code == 200, config.text
    seen = account("yealink", config.text)
    device = admin.get(f"/api/v1/admin/devices/{phone['device_id']}").json()
    desk = register_phone(baresip_factory, tone_440, server, device, "eve")
    other = register_phone(baresip_factory, tone_1000, server, admin.add_device(frank["id"], "deskphone"),
                           "frank", answermode="auto")

    def act(action: str, number: str | None) -> None:  # what the real phone does on an action URI
        if action == "call" and number:
            desk.dial(f"sip:{number}@callto.test")

    api = Api(server.url).login("eve", "password-123")
    with FakeYealinkPhone(password=seen["admin_password"], on_action=act) as web:
        assert admin.patch(f"/api/v1/admin/phones/{phone['id']}", json={"http_port": web.port}).status_code == 200
        r = api.post("/api/v1/calls", json={"to": "802"})
        assert r.status_code == 202, r.text
        assert r.json()["strategy"] == "phone_http" and r.json()["attempts"][0]["outcome"] == "ok"
        other.wait_established(timeout=10)
        desk.wait_established(timeout=5)
        time.sleep(2.0)
        desk.hangup()
        other.wait_closed(timeout=5)
        assert has_tone(other.received_wav(), 440, min_seconds=1.0), describe(other.received_wav())

    # The phone's web server is gone: phone_http fails fast, Link is not there, the switch rings the phone.
    closed = free_port()
    assert admin.patch(f"/api/v1/admin/phones/{phone['id']}", json={"http_port": closed}).status_code == 200
    r = api.post("/api/v1/calls", json={"to": "802"})
    assert r.status_code == 202, r.text
    attempts = {a["strategy"]: a for a in r.json()["attempts"]}
    assert attempts["phone_http"]["outcome"] == "failed" and "unreachable" in attempts["phone_http"]["reason"]
    assert attempts["lan_relay"]["outcome"] == "skipped"
    assert r.json()["strategy"] == "originate"
    incoming = desk.wait_incoming(timeout=5)
    assert "802" in f"{incoming.get('peeruri')} {incoming.get('peerdisplayname')}"
    with pytest.raises(BaresipError):
        other.wait_incoming(timeout=0.5)  # the destination waits until the desk phone answers
    desk.command("hangup")
