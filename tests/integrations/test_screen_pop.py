"""Screen pop: the company-wide and per-user URL templates (checked, filled in and URL-encoded by the
server), and the web CTI in Debian's Chromium opening the expected URL when a real call rings."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from e2e.test_click_to_call_desk_phone import register_phone
from support.fixtures import BaresipFactory
from support.ports import free_port
from support.server import Api, ServerProcess
from support.sipp import run_sipp
from web.conftest import login

pytestmark = [pytest.mark.timeout(90)]
TEMPLATE = "https://crm.example/search?phone={e164}&name={name}&id={call_id}"


def test_templates_are_checked_and_a_users_own_wins(web_server: ServerProcess) -> None:
    admin = Api(web_server.url).login("admin", "admin-secret-1")
    user = admin.create_user(display_name="Ada")
    api = Api(web_server.url).login(user["username"], "password-123")
    for bad, error in [("javascript:alert(1)//{e164}", "invalid-screen-pop"),
                       ("https://crm.example/?q={secret}", "invalid-screen-pop")]:
        r = admin.put("/api/v1/admin/screen-pop", json={"url_template": bad})
        assert r.status_code == 422 and r.json()["error"] == error, r.text
    assert admin.put("/api/v1/admin/screen-pop", json={"url_template": TEMPLATE}).status_code == 200
    mine = api.get("/api/v1/me/screen-pop").json()
    assert mine["url_template"] == TEMPLATE and mine["source"] == "company" and mine["on"] == "ringing"
    url = api.get("/api/v1/me/screen-pop/url", params={"number": "0721 405516", "name": "Rossi & Figli",
                                                        "call_id": "c/1"}).json()["url"]
    assert url == "https://crm.example/search?phone=%2B390721405516&name=Rossi%20%26%20Figli&id=c%2F1"
    own = api.put("/api/v1/me/screen-pop", json={"url_template": "https://mine.example/?n={number}", "on": "answered"})
    assert own.status_code == 200 and own.json()["source"] == "user", own.text
    assert api.get("/api/v1/me/screen-pop/url", params={"number": "+39 0721"}).json() == {
        "url": "https://mine.example/?n=%2B39%200721", "on": "answered"}
    # back to the company's address, but switched off for this user
    api.put("/api/v1/me/screen-pop", json={"url_template": "", "enabled": False})
    assert api.get("/api/v1/me/screen-pop/url", params={"number": "100"}).json()["url"] is None
    assert admin.put("/api/v1/admin/screen-pop", json={"url_template": ""}).status_code == 200


@pytest.mark.sip
@pytest.mark.browser
def test_web_cti_pops_the_crm_url_named_by_the_call_event_when_a_call_rings(
    web_server: ServerProcess, browser: Any, baresip_factory: BaresipFactory, tone_440: Path, tmp_path: Path
) -> None:
    """A real inbound call: a provider (sipp) sends a customer's call to the user's DID. {name} is the
    event's caller_name (the user's private contact before the shared one), as callto Link fills it: the
    browser's own look-ups (directory, customer card) answer another name here and are not what fills it."""
    admin = Api(web_server.url).login("admin", "admin-secret-1")
    user = admin.create_user(display_name="Ada", extension="711")
    api = Api(web_server.url).login(user["username"], "password-123")
    sipp_port = free_port("udp")
    did = f"+390721{secrets.randbelow(900000) + 100000}"
    customer = f"+39051{secrets.randbelow(9000000) + 1000000}"
    trunk = admin.post("/api/v1/admin/trunks", json={
        "name": f"provider-{secrets.token_hex(3)}", "host": "127.0.0.1", "port": sipp_port,
        "dids": [{"number": did, "user_id": user["id"]}]})
    assert trunk.status_code == 201, trunk.text
    shared = admin.post("/api/v1/phonebook", json={
        "name": "Rossi Costruzioni", "shared": True, "numbers": [{"type": "work", "number": customer}]})
    assert shared.status_code == 201, shared.text
    assert api.post("/api/v1/phonebook", json={
        "name": "Rossi & Figli", "numbers": [{"type": "mobile", "number": customer[3:]}]}).status_code == 201
    desk = register_phone(baresip_factory, tone_440, web_server, admin.add_device(user["id"], "deskphone"),
                          "desk", "auto")
    assert admin.put("/api/v1/admin/screen-pop", json={"url_template": TEMPLATE}).status_code == 200
    ctx = browser.new_context(base_url=web_server.url, locale="en-US")
    ctx.set_default_timeout(10_000)
    opened: list[str] = []
    # the CRM is not reachable from here: answer its address in the browser, and keep what was asked
    ctx.route("https://crm.example/**", lambda route: (opened.append(route.request.url),
                                                      route.fulfill(body="<title>crm</title>")))
    # were the browser to look the name up itself, it would get this one
    ctx.route("**/api/v1/customer-card?*", lambda route: route.fulfill(json={"name": "Looked up here"}))
    try:
        page = ctx.new_page()
        login(page, user["username"], "password-123")
        page.wait_for_selector("[data-testid=events-status][data-state=open]")
        uac = tmp_path / "uac.xml"  # sipp's own UAC (INVITE with SDP, ACK, pause, BYE), calling from the customer
        scenario = subprocess.run(["sipp", "-sd", "uac"], capture_output=True, text=True, check=False).stdout
        uac.write_text(scenario.replace("sip:sipp@", f"sip:{customer}@"))
        with ctx.expect_page(timeout=30_000) as popup_info:
            result = run_sipp(uac, f"127.0.0.1:{web_server.sip_port}", tmp_path / "sipp", local_port=sipp_port,
                              timeout=20, extra=["-s", did, "-d", "300"])
        assert result.returncode == 0, result.describe()
        popup = popup_info.value
        popup.wait_for_load_state()
        query = parse_qs(urlsplit(popup.url).query)
        encoded = f"https://crm.example/search?phone=%2B{customer[1:]}&name=Rossi%20%26%20Figli&id="
        assert popup.url.startswith(encoded), popup.url
        assert query["phone"] == [customer] and query["name"] == ["Rossi & Figli"] and query["id"][0]
        assert opened == [popup.url]
        desk.wait_closed(timeout=10)
    finally:
        ctx.close()
        api.close()
        admin.put("/api/v1/admin/screen-pop", json={"url_template": ""})
        admin.delete(f"/api/v1/admin/trunks/{trunk.json()['id']}")
        admin.delete(f"/api/v1/phonebook/{shared.json()['id']}")
