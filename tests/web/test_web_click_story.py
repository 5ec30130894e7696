"""A click is one story: the web phone's INVITE carries the click's id (``X-Callto-Click``), the switch
ties its call to the click, and the toast follows the real call's events to its end.

- Failing: the server has no media relay, so the browser's WebRTC call to a plain RTP desk phone is
  refused (488, ``media-unavailable``; JsSIP says "Incompatible SDP"). The toast says why in plain
  words with the fix, then goes away; the click's state on the server is ``ended`` with that cause,
  and the history keeps the cause.
- Succeeding (inside a loopback-only namespace, with rtpengine): ringing -> answered -> ended, each
  from a ``call.*`` event the server sent for the click's id.

And what is left when a call is over, and what a desk phone user can switch off: a colleague's web phone
calls a user who turned the incoming-call pop-up off (the call rings their web phone without any panel or
flashing title); the customer card of the call shows, and collapses to one line when the caller hangs
up. A plain user's diagnostics has no trunk check (only an administrator can act on it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.baresip import Baresip
from support.server import ADMIN_PASSWORD, Api, ServerProcess
from support.tone import write_tone_wav

from .conftest import login, shot, wait_js
from .test_web_phone import (  # noqa: F401  (media_server, media_admin: fixtures used by name)
    _inside_netns,
    _media_page,
    _needs_switch,
    desk_phone,
    media_admin,
    media_server,
    sip_domain,
    webphone_user,
)
from .test_web_ui import PASSWORD

pytestmark = pytest.mark.browser

# Records every call.* event the page receives and every state of the click's progress, in order.
RECORD = """() => {
  const c = window.__callto;
  window.__story = { events: [], states: [] };
  for (const t of ['call.dialing', 'call.ringing', 'call.answered', 'call.ended'])
    c.events.on(t, (ev) => window.__story.events.push([t, ev.data.call_id, ev.data.reason || null]));
  c.progress.subscribe((p) => {
    const s = window.__story.states;
    const now = p ? p.state : 'none';
    if (s[s.length - 1] !== now) s.push(now);
  });
}"""


def _main_webphone(server: ServerProcess, user: dict[str, Any], web: dict[str, Any]) -> None:
    api = Api(server.url).login(user["username"], PASSWORD)
    assert api.put("/api/v1/me/main-device", json={"device_id": web["id"]}).status_code in (200, 204)
    api.close()


@pytest.mark.timeout(60)
def test_web_phone_click_without_media_relay_says_why_and_ends(
    web_server: ServerProcess,
    admin: Api,
    new_page: Callable[..., Any],
    baresip_factory: Callable[..., Baresip],
    tmp_path: Path,
) -> None:
    _needs_switch(web_server)
    user, web = webphone_user(admin)
    _main_webphone(web_server, user, web)
    domain = sip_domain(web_server, user["username"], web["id"])
    tone = write_tone_wav(tmp_path / "desk.wav", 1000.0, seconds=10.0)
    owner, desk = desk_phone(admin, web_server, baresip_factory, tone, domain)
    page = new_page()
    login(page, user["username"], PASSWORD)
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    page.evaluate(RECORD)
    page.fill("[data-testid=phonebook-search]", owner["extension"])
    page.click("[data-testid=dial-typed] button.num")
    toast = page.wait_for_selector("[data-testid=call-progress][data-failed=true]", timeout=10_000)
    assert toast.get_attribute("data-cause") == "media-unavailable"
    text = toast.inner_text()
    assert "audio" in text and "media relay" in text, text
    assert "administrator" in text, "the fix says who can start the media relay"
    shot(page, "75-click-failed-reason")
    story = page.evaluate("window.__story")
    click_id = next(e[1] for e in story["events"] if e[0] == "call.dialing")
    assert click_id.startswith("c2c-")
    # The switch's end of the web phone's call came as the click's own event, with the cause.
    assert ["call.ended", click_id, "media-unavailable"] in story["events"], story
    me = Api(web_server.url).login(user["username"], PASSWORD)
    try:
        click = me.get(f"/api/v1/calls/{click_id}").json()
        assert click["state"] == "ended" and click["reason"] == "media-unavailable", click
        # ...and then the toast ends: nothing left on "Starting the call..." on any screen.
        page.wait_for_selector("[data-testid=call-progress]", state="detached", timeout=15_000)
        assert page.evaluate("window.__story.states").count("dialing") <= 1
        deadline = time.monotonic() + 10
        while True:
            items = me.get("/api/v1/history").json()["items"]
            mine = [e for e in items if e.get("number") == owner["extension"]]
            if mine or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert mine and mine[0]["hangup_cause"] == "media-unavailable", items
        assert mine[0]["disposition"] == "failed"
    finally:
        me.close()
    desk.stop()


def test_web_phone_click_follows_the_real_call_ringing_answered_ended(request: pytest.FixtureRequest) -> None:
    if not _inside_netns(request):
        return
    server: ServerProcess = request.getfixturevalue("media_server")
    _needs_switch(server)
    admin: Api = request.getfixturevalue("media_admin")
    tmp: Path = request.getfixturevalue("tmp_path")
    make_phone = request.getfixturevalue("baresip_factory")
    browser_tone = write_tone_wav(tmp / "browser-440.wav", 440.0, seconds=20.0, rate=48000)
    peer_tone = write_tone_wav(tmp / "peer-1000.wav", 1000.0, seconds=20.0)
    user, web = webphone_user(admin)
    _main_webphone(server, user, web)
    domain = sip_domain(server, user["username"], web["id"])
    owner, peer = desk_phone(admin, server, make_phone, peer_tone, domain)
    page = _media_page(request, browser_tone)
    login(page, user["username"], PASSWORD)
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    page.evaluate(RECORD)
    page.fill("[data-testid=phonebook-search]", owner["extension"])
    page.click("[data-testid=dial-typed] button.num")
    peer.wait_incoming(timeout=10)
    wait_js(page, "window.__story.states.includes('ringing')")
    peer.answer()
    wait_js(page, "window.__story.states.includes('answered')")
    page.click("[data-testid=hangup]")
    peer.wait_closed(timeout=10)
    wait_js(page, "window.__story.states.includes('ended')")
    story = page.evaluate("window.__story")
    states = [s for s in story["states"] if s in ("ringing", "answered", "ended")]
    assert states == ["ringing", "answered", "ended"], story
    click_id = next(e[1] for e in story["events"] if e[0] == "call.dialing")
    kinds = [e[0] for e in story["events"] if e[1] == click_id]
    assert kinds[-3:] == ["call.ringing", "call.answered", "call.ended"], story
    # A normal end is not a failure: no reason shown as an error.
    assert page.query_selector("[data-testid=call-progress][data-failed=true]") is None


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


def test_a_call_naming_someone_elses_click_does_not_move_it() -> None:
    """The switch passes on whatever click id a device's INVITE names: only the device the click went to
    can speak for it, so another device cannot end or answer somebody's click (no browser needed)."""
    from callto.dialer.calls import CallBook, ClickCall
    from callto.dialer.dialplan import DialPlan
    from callto.dialer.numbers import normalize
    from callto.events.bus import EventBus
    from callto.switchboard.telephony import Telephony

    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append)
    book = CallBook(bus)
    click = ClickCall(user_id=7, to="201", number=normalize("201", DialPlan()), device_id=70, device_kind="webphone")
    book.add(click)
    switch = Telephony(bus, calls=book)
    base = {"call_id": "sip-1", "click_id": click.id, "caller_user_id": "8", "from": "202", "to": "201"}
    switch.on_call_event("ended", {**base, "caller_device_id": "80", "cause": "media-unavailable"})
    assert book.get(click.id).state == "dialing"  # type: ignore[union-attr]
    switch.on_call_event("ringing", {**base, "caller_user_id": "7", "caller_device_id": "70"})
    switch.on_call_event("ended", {**base, "caller_user_id": "7", "caller_device_id": "70", "cause": "no-route"})
    got = book.get(click.id)
    assert got is not None and got.state == "ended" and got.reason == "no-route"
