"""Screen pop in Link (offscreen Qt) against a real server: a real call from one desk phone to another
user rings, and Link opens the address the server filled in from the user's template, once, at the moment
the user chose, with the caller's name filled in. The opener is the only fake: it stands in for the OS
browser launch (``QDesktopServices``)."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from callto.link.app import LinkController
from callto.link.screenpop import ScreenPop, safe_url
from callto.link.secrets import Settings, TokenStore
from e2e.test_click_to_call_desk_phone import register_phone
from link.conftest import PASSWORD, make_user, qwait
from support.fixtures import BaresipFactory
from support.ports import free_port
from support.server import Api, ServerProcess
from support.sipp import run_sipp

pytestmark = [pytest.mark.timeout(90)]
TEMPLATE = "https://crm.example/search?phone={e164}&id={call_id}&who={name}"


def pump(seconds: float) -> None:
    """Run the Qt loop for a bounded time (to show that something does NOT happen)."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(AssertionError):
        qwait(lambda: time.monotonic() >= deadline, seconds + 1, "time to pass")


@pytest.mark.sip
def test_link_opens_the_users_crm_url_when_a_call_rings_and_at_answer_when_chosen(
    qapp: Any, link_home: Path, shared_server: ServerProcess, admin_api: Api, baresip_factory: BaresipFactory,
    tone_440: Path,
) -> None:
    user = make_user(admin_api, ("link", "deskphone"))
    caller = make_user(admin_api, ("deskphone",))
    theirs_api = Api(shared_server.url).login(caller.username, PASSWORD)
    caller_me = theirs_api.get("/api/v1/me").json()
    caller_ext, caller_name = str(caller_me["extension"]), str(caller_me["display_name"])
    theirs_api.close()
    api = Api(shared_server.url).login(user.username, PASSWORD)
    desk = user.devices["deskphone"]
    assert api.put("/api/v1/me/main-device", json={"device_id": desk["id"]}).status_code < 300
    assert api.put("/api/v1/me/screen-pop", json={"url_template": TEMPLATE, "on": "ringing"}).status_code == 200
    mine = register_phone(baresip_factory, tone_440, shared_server, desk, "mine")
    theirs = register_phone(baresip_factory, tone_440, shared_server, caller.devices["deskphone"], "theirs")
    opened: list[str] = []
    controller = LinkController(Settings.load(), TokenStore(), opener=lambda url: opened.append(url) is None)
    try:
        controller.sign_in(shared_server.url, user.username, PASSWORD)
        qwait(lambda: controller.events_state.value == "connected", 15, "event stream")
        qwait(lambda: controller.me is not None, 10, "the user")
        ext = controller.me.extension if controller.me else ""
        domain = shared_server.env()["CALLTO_SIP_DOMAIN"]

        theirs.dial(f"sip:{ext}@{domain}")
        mine.wait_incoming(timeout=10)
        qwait(lambda: bool(opened), 15, "the screen pop at ringing")
        query = parse_qs(urlsplit(opened[0]).query)
        assert opened[0].startswith(f"https://crm.example/search?phone={caller_ext}&id="), opened
        assert query["id"][0]
        # {name}: the caller's name the server put in the call's events (a colleague: the directory's)
        assert query["who"] == [caller_name], opened
        # and Link's own notice names the caller (an internal call to this user is an incoming one)
        assert ("Incoming call", f"{caller_name} ({caller_ext}) is calling.") in controller.notifications
        mine.answer()
        mine.wait_established(timeout=10)
        theirs.hangup()
        mine.wait_closed(timeout=10)
        pump(2.0)  # the answered event reaches Link and its request comes back
        assert len(opened) == 1, opened  # once per call, not again at answer

        # the user's choice: at answer only
        assert api.put("/api/v1/me/screen-pop", json={"url_template": TEMPLATE, "on": "answered"}).status_code == 200
        theirs.dial(f"sip:{ext}@{domain}")
        mine.wait_incoming(timeout=10)
        pump(2.0)  # the ringing event reaches Link and its request comes back: nothing to open yet
        assert len(opened) == 1, opened
        mine.answer()
        mine.wait_established(timeout=10)
        qwait(lambda: len(opened) == 2, 15, "the screen pop at answer")
        second = parse_qs(urlsplit(opened[1]).query)
        assert second["phone"] == [caller_ext] and second["id"] != query["id"]
        assert second["who"] == [caller_name]
        theirs.hangup()
        mine.wait_closed(timeout=10)
    finally:
        controller.shutdown()
        api.close()


@pytest.mark.sip
def test_a_call_from_a_phonebook_contact_through_the_trunk_pops_with_the_contacts_name(
    qapp: Any, link_home: Path, shared_server: ServerProcess, admin_api: Api, baresip_factory: BaresipFactory,
    tone_440: Path, tmp_path: Path,
) -> None:
    """A real inbound call: a provider (sipp) sends a customer's call to the user's DID; the server names the
    caller from the shared phonebook in the call's events, and Link's notice and screen pop carry that name."""
    user = make_user(admin_api, ("link", "deskphone"))
    sipp_port = free_port("udp")
    did = f"+390721{secrets.randbelow(900000) + 100000}"
    customer = f"+39051{secrets.randbelow(9000000) + 1000000}"
    trunk = admin_api.post("/api/v1/admin/trunks", json={
        "name": f"provider-{secrets.token_hex(3)}", "host": "127.0.0.1", "port": sipp_port,
        "dids": [{"number": did, "user_id": user.id}]})
    assert trunk.status_code == 201, trunk.text
    # typed in the national form; the provider sends it in E.164
    contact = admin_api.post("/api/v1/phonebook", json={
        "name": "Rossi Costruzioni", "shared": True, "numbers": [{"type": "work", "number": customer[3:]}]})
    assert contact.status_code == 201, contact.text
    api = Api(shared_server.url).login(user.username, PASSWORD)
    assert api.put("/api/v1/me/screen-pop", json={"url_template": TEMPLATE, "on": "ringing"}).status_code == 200
    desk = register_phone(baresip_factory, tone_440, shared_server, user.devices["deskphone"], "desk", "auto")
    opened: list[str] = []
    controller = LinkController(Settings.load(), TokenStore(), opener=lambda url: opened.append(url) is None)
    try:
        controller.sign_in(shared_server.url, user.username, PASSWORD)
        qwait(lambda: controller.events_state.value == "connected", 15, "event stream")
        uac = tmp_path / "uac.xml"  # sipp's own UAC (INVITE with SDP, ACK, pause, BYE), calling from the customer
        scenario = subprocess.run(["sipp", "-sd", "uac"], capture_output=True, text=True, check=False).stdout
        uac.write_text(scenario.replace("sip:sipp@", f"sip:{customer}@"))
        result = run_sipp(uac, f"127.0.0.1:{shared_server.sip_port}", tmp_path / "sipp", local_port=sipp_port,
                          timeout=20, extra=["-s", did, "-d", "300"])
        assert result.returncode == 0, result.describe()
        desk.wait_closed(timeout=10)
        qwait(lambda: bool(opened), 10, "the screen pop")
        assert parse_qs(urlsplit(opened[0]).query)["who"] == ["Rossi Costruzioni"], opened
        assert ("Incoming call", f"Rossi Costruzioni ({customer}) is calling.") in controller.notifications
    finally:
        controller.shutdown()
        api.close()
        admin_api.delete(f"/api/v1/admin/trunks/{trunk.json()['id']}")
        admin_api.delete(f"/api/v1/phonebook/{contact.json()['id']}")


def test_only_a_server_given_http_address_is_opened_once_per_call() -> None:
    opened: list[str] = []
    pop = ScreenPop(lambda url: opened.append(url) is None)
    ring = {"type": "call.ringing", "data": {"call_id": "c1", "direction": "internal", "from": "712", "to": "711"}}
    assert pop.query(ring, "711") == {"number": "712", "name": "", "call_id": "c1"}
    assert pop.query(ring, "712") is None  # the caller's own side of an internal call
    named = {**ring, "data": {**ring["data"], "call_id": "c2", "caller_name": "Anna Neri"}}
    assert pop.query(named, "711") == {"number": "712", "name": "Anna Neri", "call_id": "c2"}
    assert pop.query({**ring, "type": "call.ended"}, "711") is None
    for bad in ("javascript:alert(1)", "file:///etc/passwd", "https://", None, 5):
        assert safe_url(bad) is None
        assert pop.answer("call.ringing", "c1", {"url": bad, "on": "ringing"}) is None
    assert pop.answer("call.ringing", "c1", {"url": "https://crm.example/?p=1", "on": "answered"}) is None
    assert pop.answer("call.ringing", "c1", {"url": "https://crm.example/?p=1", "on": "ringing"}) == (
        "https://crm.example/?p=1", True)
    assert pop.query(ring, "711") is None
    assert pop.answer("call.ringing", "c1", {"url": "https://crm.example/?p=1", "on": "ringing"}) is None
    assert opened == ["https://crm.example/?p=1"]
