"""Screen pop: the company-wide and per-user URL templates (checked, filled in and URL-encoded by the
server), and the web CTI in Debian's Chromium opening the expected URL when a real call rings."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from e2e.test_click_to_call_desk_phone import register_phone
from support.fixtures import BaresipFactory
from support.server import Api, ServerProcess
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
def test_web_cti_opens_the_crm_url_when_a_call_rings(
    web_server: ServerProcess, browser: Any, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    admin = Api(web_server.url).login("admin", "admin-secret-1")
    user = admin.create_user(display_name="Ada", extension="711")
    caller = admin.create_user(display_name="Rossi & Figli", extension="712")
    mine = register_phone(baresip_factory, tone_440, web_server, admin.add_device(user["id"], "deskphone"), "mine")
    theirs = register_phone(baresip_factory, tone_440, web_server, admin.add_device(caller["id"], "deskphone"),
                            "theirs")
    assert admin.put("/api/v1/admin/screen-pop", json={"url_template": TEMPLATE}).status_code == 200
    ctx = browser.new_context(base_url=web_server.url, locale="en-US")
    ctx.set_default_timeout(10_000)
    opened: list[str] = []
    # the CRM is not reachable from here: answer its address in the browser, and keep what was asked
    ctx.route("https://crm.example/**", lambda route: (opened.append(route.request.url),
                                                      route.fulfill(body="<title>crm</title>")))
    try:
        page = ctx.new_page()
        login(page, user["username"], "password-123")
        page.wait_for_selector("[data-testid=events-status][data-state=open]")
        with ctx.expect_page(timeout=30_000) as popup_info:
            theirs.dial(f"sip:{user['extension']}@{web_server.env()['CALLTO_SIP_DOMAIN']}")
            mine.wait_incoming(timeout=10)
        popup = popup_info.value
        popup.wait_for_load_state()
        query = parse_qs(urlsplit(popup.url).query)
        assert popup.url.startswith("https://crm.example/search?phone=712&name=Rossi%20%26%20Figli&id="), popup.url
        assert query["phone"] == ["712"] and query["name"] == ["Rossi & Figli"] and query["id"][0]
        assert opened == [popup.url]
        theirs.hangup()
        mine.wait_closed(timeout=10)
    finally:
        ctx.close()
        admin.put("/api/v1/admin/screen-pop", json={"url_template": ""})
