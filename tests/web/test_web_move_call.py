"""Moving a live call between the user's own devices, in Chromium against the real server, switch and
rtpengine: a baresip caller talks to the user's web phone; the user moves the call to their baresip desk
phone from the phone panel (once declined there: the call stays on the page), then pulls it back onto the
page. Tones checked at each step (the page hears the caller; the desk phone hears the caller; the caller
hears the page, then the desk phone, then the page again), someone else's call and device are refused,
and the history has one row for the call.

WebRTC media: runs itself again inside a loopback-only network namespace (see test_web_phone.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from support import netns
from support.baresip import Account
from support.server import Api, ServerProcess
from support.tone import describe, has_tone, read_wav, write_tone_wav

from .conftest import login, shot, wait_js
from .test_web_phone import (
    TALK_SECONDS,
    _browser_hears,
    _media_page,
    _needs_switch,
    desk_phone,
    media_admin,
    media_server,
    sip_domain,
    webphone_user,
)
from .test_web_ui import PASSWORD, make_user

__all__ = ["media_admin", "media_server"]

# three moves, each with its ringing and a few seconds of tone: longer than the other browser tests
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
INNER_TIMEOUT = 240


def _inside_netns(request: pytest.FixtureRequest) -> bool:
    """True when this run is the one inside the loopback-only namespace; else re-run there and check it
    passed (as test_web_phone.py does, with room for this longer story)."""
    if os.environ.get(netns.MARKER) == "1":
        assert netns.interfaces() == ["lo"], "expected a namespace with only loopback"
        return True
    reason = netns.netns_unavailable_reason()
    if reason is not None:
        pytest.fail(f"WebRTC browser tests must run in a loopback-only namespace, which cannot be made: {reason}")
    result = netns.rerun_in_netns(request.node.nodeid, Path(str(request.config.rootpath)), timeout=INNER_TIMEOUT)
    out = result.stdout[-4000:] + result.stderr[-2000:]
    if "1 skipped" in result.stdout:
        pytest.skip(f"skipped inside the namespace: {out[-600:]}")
    assert result.returncode == 0, out
    assert "1 passed" in result.stdout, out
    print(out)
    return False

PAGE_HZ, CALLER_HZ, DESK_HZ = 600.0, 440.0, 1000.0


def _tone_runs(path: Path, block: float = 0.25) -> list[float]:
    """The tones one after another in a recording: the dominant frequency of each block (rounded to 10 Hz),
    quiet blocks dropped, repeats folded; a run needs 4 blocks (1 s) to count."""
    data, rate = read_wav(path)
    size = int(rate * block)
    freqs: list[float] = []
    for start in range(0, len(data) - size, size):
        chunk = data[start : start + size]
        if float(np.sqrt(np.mean(chunk**2))) < 300:
            continue
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk))))
        freqs.append(round(float(np.argmax(spectrum)) * rate / size / 10) * 10)
    runs: list[tuple[float, int]] = []
    for f in freqs:
        if runs and abs(runs[-1][0] - f) <= 20:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((f, 1))
    out: list[float] = []
    for f, n in runs:
        if n >= 4 and (not out or abs(out[-1] - f) > 20):
            out.append(f)
    return out


def _near(runs: list[float], *wanted: float) -> bool:
    """``wanted`` appear in this order among ``runs`` (other runs may sit between)."""
    i = 0
    for f in runs:
        if i < len(wanted) and abs(f - wanted[i]) <= 20:
            i += 1
    return i == len(wanted)


def test_a_call_moves_from_the_web_phone_to_the_desk_phone_and_back(request: pytest.FixtureRequest) -> None:
    server: ServerProcess = request.getfixturevalue("web_server")
    _needs_switch(server)
    if not _inside_netns(request):
        return
    server = request.getfixturevalue("media_server")
    admin: Api = request.getfixturevalue("media_admin")
    tmp: Path = request.getfixturevalue("tmp_path")
    make_phone = request.getfixturevalue("baresip_factory")
    page_tone = write_tone_wav(tmp / "page.wav", PAGE_HZ, seconds=90.0, rate=48000)
    caller_tone = write_tone_wav(tmp / "caller.wav", CALLER_HZ, seconds=90.0)
    desk_tone = write_tone_wav(tmp / "desk.wav", DESK_HZ, seconds=90.0)
    user, web = webphone_user(admin)
    domain = sip_domain(server, user["username"], web["id"])
    # the user's own desk phone, next to their web phone
    desk_dev = admin.add_device(user["id"], "deskphone")
    sip = desk_dev["sip"]
    desk = make_phone(
        "own-desk", desk_tone,
        account=Account(aor=f"sip:{sip['username']}@{domain}", password=sip["password"], auth_user=sip["username"],
                        outbound=f"sip:127.0.0.1:{server.sip_port};transport=udp", answermode="manual", regint=300),
        answermode="manual",
    )
    desk.wait_registered()
    other_owner, caller = desk_phone(admin, server, make_phone, caller_tone, domain)
    other_device = next(d for d in admin.get(f"/api/v1/admin/users/{other_owner['id']}").json()["devices"])
    page = _media_page(request, page_tone)
    login(page, user["username"], PASSWORD)
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    api = Api(server.url).login(user["username"], PASSWORD)
    # a user with no part in the call: the call is not theirs to move
    outsider = make_user(admin)
    stranger_device = admin.add_device(outsider["id"], "webphone")
    stranger = Api(server.url).login(outsider["username"], PASSWORD)
    request.addfinalizer(api.close)
    request.addfinalizer(stranger.close)

    # 1. the caller reaches the page; the page hears the caller
    caller.dial(f"sip:{user['extension']}@{domain}")
    page.wait_for_selector("[data-testid=incoming-call]")
    page.click("[data-testid=answer]")
    caller.wait_established(timeout=10)
    page.wait_for_selector("[data-testid=web-call][data-state=established]")
    desk.wait_incoming(timeout=5)  # the call rang every device of the user; the page took it
    desk.wait_closed(timeout=5)
    time.sleep(TALK_SECONDS)
    assert _browser_hears(page, CALLER_HZ), "the page did not hear the caller"

    # refusals while the call is live: someone else's device (403), someone else's call (404), bad input (422)
    mine = api.post("/api/v1/calls/move", json={"device_id": other_device["id"]})
    assert mine.status_code == 403 and mine.json()["error"] == "device-not-owned", mine.text
    stray = stranger.post("/api/v1/calls/move", json={"device_id": stranger_device["id"]})
    assert stray.status_code == 404 and stray.json()["error"] == "no-live-call", stray.text
    bad = api.post("/api/v1/calls/move", json={"device_id": "desk"})
    assert bad.status_code == 422 and set(bad.json()) >= {"error", "message", "details"}, bad.text
    same = api.post("/api/v1/calls/move", json={"device_id": web["id"]})
    assert same.status_code == 409 and same.json()["error"] == "same-device", same.text

    # 2. move to the desk phone, declined there: the call stays on the page, the user sees why
    page.click("[data-testid=move]")
    shot(page, "80-move-list")
    page.click(f"[data-testid=move-to][data-device-id='{desk_dev['id']}']")
    page.wait_for_selector("[data-testid=move-state][data-state=ringing]")
    desk.wait_incoming(timeout=10)
    desk.hangup()
    desk.wait_closed(timeout=5)
    page.wait_for_selector("[data-testid=move-state][data-state=failed][data-error=move-failed]")
    shot(page, "81-move-declined")
    assert page.get_attribute("[data-testid=move-state]", "data-reason") in ("declined", "busy")
    page.wait_for_selector("[data-testid=web-call][data-state=established]")
    assert _browser_hears(page, CALLER_HZ), "the call did not stay on the page"
    assert not [e for e in caller.events if e.get("type") == "CALL_CLOSED"], "the caller was dropped"

    # 3. move to the desk phone, answered there: the page's call ends, the desk phone talks to the caller
    page.click("[data-testid=move-to]" f"[data-device-id='{desk_dev['id']}']")
    desk.wait_incoming(timeout=10)
    desk.answer()
    desk.wait_established(timeout=10)
    wait_js(page, "!window.__callto.phone.call.get() || window.__callto.phone.call.get().state === 'ended'",
            timeout=10)
    time.sleep(TALK_SECONDS)

    # 4. pull it back onto the page: the page answers by itself, the desk phone is hung up
    try:
        page.wait_for_selector("[data-testid=call-elsewhere]", timeout=10_000)
    except Exception:
        print(server.log())
        raise
    shot(page, "82-call-elsewhere")
    page.click("[data-testid=pull-call]")
    desk.wait_closed(timeout=15)
    page.wait_for_selector("[data-testid=web-call][data-state=established]")
    time.sleep(TALK_SECONDS)
    assert _browser_hears(page, CALLER_HZ), "the page did not hear the caller after pulling the call back"
    assert not [e for e in caller.events if e.get("type") == "CALL_CLOSED"], "the caller was dropped"

    page.click("[data-testid=hangup]")
    caller.wait_closed(timeout=10)
    at_desk = desk.received_wav()
    assert has_tone(at_desk, CALLER_HZ, min_seconds=1.0), describe(at_desk)
    at_caller = caller.received_wav()
    runs = _tone_runs(at_caller)
    assert _near(runs, PAGE_HZ, DESK_HZ, PAGE_HZ), f"the caller heard {runs}: {describe(at_caller)}"

    # history: one row for the user (a new user: this is their only call), for the whole call
    def rows() -> list[dict[str, object]]:
        return list(api.get("/api/v1/history").json()["items"])

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (rows() and rows()[0].get("ended_at")):
        time.sleep(0.2)
    found = rows()
    assert len(found) == 1, found
    assert found[0]["disposition"] == "answered" and found[0]["direction"] == "incoming", found
