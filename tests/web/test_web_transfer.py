"""The web phone's blind transfer in Chromium against the real server and switch: a baresip desk phone
calls the web phone, the page transfers it (JsSIP sends REFER) to another desk phone's extension, that
phone rings and answers, the page's call ends, and the caller's tone reaches the target.

WebRTC media: runs itself again inside a loopback-only network namespace (see test_web_phone.py)."""

from __future__ import annotations

import time

import pytest

from support.server import ServerProcess
from support.tone import describe, has_tone, write_tone_wav

from .conftest import login, shot, wait_js
from .test_web_phone import (
    TALK_SECONDS,
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

__all__ = ["media_admin", "media_server"]

pytestmark = pytest.mark.browser


def test_web_phone_blind_transfers_a_desk_caller_to_another_extension(request: pytest.FixtureRequest) -> None:
    server: ServerProcess = request.getfixturevalue("web_server")
    _needs_switch(server)
    if not _inside_netns(request):
        return
    server = request.getfixturevalue("media_server")
    admin = request.getfixturevalue("media_admin")
    tmp = request.getfixturevalue("tmp_path")
    make_phone = request.getfixturevalue("baresip_factory")
    browser_tone = write_tone_wav(tmp / "browser-600.wav", 600.0, seconds=40.0, rate=48000)
    caller_tone = write_tone_wav(tmp / "caller-440.wav", 440.0, seconds=40.0)
    target_tone = write_tone_wav(tmp / "target-1000.wav", 1000.0, seconds=40.0)
    user, web = webphone_user(admin)
    domain = sip_domain(server, user["username"], web["id"])
    _caller_owner, caller = desk_phone(admin, server, make_phone, caller_tone, domain)
    target_owner, target = desk_phone(admin, server, make_phone, target_tone, domain)
    page = _media_page(request, browser_tone)
    login(page, user["username"], PASSWORD)
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")

    caller.dial(f"sip:{user['extension']}@{domain}")
    page.wait_for_selector("[data-testid=incoming-call]")
    page.click("[data-testid=answer]")
    caller.wait_established(timeout=10)
    page.wait_for_selector("[data-testid=web-call][data-state=established]")

    page.click("[data-testid=transfer]")
    page.fill("[data-testid=transfer-target]", target_owner["extension"])
    shot(page, "75-transfer")
    page.press("[data-testid=transfer-target]", "Enter")
    try:
        incoming = target.wait_incoming(timeout=10)
    except Exception:
        print(server.log())
        raise
    assert "@" in str(incoming)
    target.answer()
    target.wait_established(timeout=10)
    # the switch hangs up the page's leg once the target talks to the caller
    wait_js(
        page, "!window.__callto.phone.call.get() || window.__callto.phone.call.get().state === 'ended'", timeout=10
    )
    time.sleep(TALK_SECONDS)
    assert not [e for e in caller.events if e.get("type") == "CALL_CLOSED"], "the caller was dropped"
    target.hangup()
    caller.wait_closed(timeout=10)
    received = target.received_wav()
    assert has_tone(received, 440.0, min_seconds=1.5), describe(received)
