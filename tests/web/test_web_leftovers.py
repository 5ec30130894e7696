"""What is left when a call is over, and what a desk phone user can switch off, in Chromium against the
real server: a colleague's web phone calls a user who turned the incoming-call pop-up off (the call rings
their web phone without any panel or flashing title); the customer card of the call shows, and
collapses to one line when the caller hangs up. A plain user's diagnostics has no trunk check (only an
administrator can act on it); the administrator's has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.server import ADMIN_PASSWORD, Api, ServerProcess

from .conftest import login, shot, wait_js
from .test_web_phone import _needs_switch, webphone_user
from .test_web_ui import PASSWORD

pytestmark = pytest.mark.browser


@pytest.mark.timeout(60)
def test_popup_off_rings_without_a_panel_and_the_card_collapses_when_the_call_ends(
    web_server: ServerProcess, admin: Api, new_page: Callable[..., Any]
) -> None:
    _needs_switch(web_server)
    user, _ = webphone_user(admin)
    caller, caller_web = webphone_user(admin)
    api = Api(web_server.url).login(caller["username"], PASSWORD)
    assert api.put("/api/v1/me/main-device", json={"device_id": caller_web["id"]}).status_code in (200, 204)
    api.close()

    page = new_page(viewport={"width": 390, "height": 800})
    login(page, user["username"], PASSWORD)
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    page.goto("/settings")
    page.uncheck("[data-testid=incoming-popup]")
    page.uncheck("[data-testid=ringtone]")
    prefs = page.evaluate("JSON.parse(localStorage.getItem('callto.prefs'))")
    assert prefs["incomingPopup"] is False and prefs["ringtone"] is False
    title = page.title()

    other = new_page()
    login(other, caller["username"], PASSWORD)
    other.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    other.fill("[data-testid=phonebook-search]", user["extension"])
    other.click("[data-testid=dial-typed] button.num")
    # The call rings this web phone (its state), but nothing pops up and the title does not flash.
    wait_js(page, "window.__callto.phone.call.get()?.state === 'ringing'")
    page.wait_for_selector("[data-testid=card-panel][data-state=current]", timeout=10_000)
    page.wait_for_timeout(1000)
    assert page.query_selector("[data-testid=incoming-call]") is None
    assert page.title() == title
    shot(page, "61-card-during-call-mobile")

    other.click("[data-testid=hangup]")
    # Over: the card collapses to one line instead of covering the phone-width screen.
    page.wait_for_selector("[data-testid=card-panel][data-state=collapsed]", timeout=10_000)
    height = page.eval_on_selector("[data-testid=card-panel]", "e => e.getBoundingClientRect().height")
    assert height < 120, height
    page.click("[data-testid=card-panel-open]")
    page.wait_for_selector("[data-testid=card-panel][data-state=ended]")


def test_trunk_checks_are_for_administrators_only(admin: Api, web_server: ServerProcess) -> None:
    user, _ = webphone_user(admin)
    me = Api(web_server.url).login(user["username"], PASSWORD)
    try:
        mine = [c["code"] for c in me.get("/api/v1/me/diagnostics").json()["checks"]]
    finally:
        me.close()
    assert mine and all(mine), mine
    assert not [c for c in mine if c.startswith("trunk.")], mine
    boss = Api(web_server.url).login("admin", ADMIN_PASSWORD)
    try:
        theirs = [c["code"] for c in boss.get("/api/v1/me/diagnostics").json()["checks"]]
    finally:
        boss.close()
    assert [c for c in theirs if c.startswith("trunk.")], theirs
