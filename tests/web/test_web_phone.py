"""The web phone in Chromium against the real server and switch: SIP over WebSocket registration and
re-registration after a blip, an incoming call from a baresip desk phone rung and answered on the
page, click-to-call dialed by exactly one of two tabs, and audio both ways (tones detected by
frequency on each side).

Everything that carries WebRTC media runs inside a private network namespace with only ``lo``
(docs/testing.md): each such test re-runs itself there with ``support.netns``. Tests
skip, saying why, while the switch has no SIP WebSocket endpoint (/sip) or the server no click-to-call
endpoint: both are built by other issues (3 and 4).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import netns
from support.baresip import Account, Baresip
from support.server import ADMIN_PASSWORD, Api, ServerProcess, start_server
from support.tone import describe, has_tone, write_tone_wav

from .conftest import ROOT, calls_endpoint_reason, launch, login, shot, sip_endpoint_reason, wait_js
from .test_web_ui import PASSWORD, make_user

pytestmark = pytest.mark.browser

TALK_SECONDS = 3.0


def _needs_switch(server: ServerProcess) -> None:
    reason = sip_endpoint_reason(server)
    if reason:
        pytest.skip(reason)


def _inside_netns(request: pytest.FixtureRequest) -> bool:
    """True when this run is the one inside the namespace; else re-run there and check it passed."""
    if os.environ.get(netns.MARKER) == "1":
        assert netns.interfaces() == ["lo"], "expected a namespace with only loopback"
        return True
    reason = netns.netns_unavailable_reason()
    if reason is not None:
        pytest.fail(f"WebRTC browser tests must run in a loopback-only namespace, which cannot be made: {reason}")
    result = netns.rerun_in_netns(request.node.nodeid, Path(str(request.config.rootpath)), timeout=110)
    out = result.stdout[-4000:] + result.stderr[-2000:]
    if "1 skipped" in result.stdout:
        pytest.skip(f"skipped inside the namespace: {out[-600:]}")
    assert result.returncode == 0, out
    assert "1 passed" in result.stdout, out
    print(out)
    return False


def webphone_user(admin: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    user = make_user(admin)
    web = admin.add_device(user["id"], "webphone")
    return user, web


def sip_domain(server: ServerProcess, username: str, device_id: int) -> str:
    """The switch's SIP domain, as the web phone learns it (its own credentials endpoint)."""
    api = Api(server.url).login(username, PASSWORD)
    try:
        return str(api.get(f"/api/v1/me/devices/{device_id}/sip").json()["domain"])
    finally:
        api.close()


@pytest.fixture
def media_server(tmp_path: Path, web_dist: Path, rtpengine: Any) -> Iterator[ServerProcess]:
    """A server of its own that relays WebRTC <-> RTP media through this test's rtpengine."""
    proc = start_server(
        tmp_path / "media-data",
        f"sqlite:///{tmp_path / 'media.db'}",
        CALLTO_WEB_DIR=str(web_dist),
        CALLTO_MEDIA_RTPENGINE=f"{rtpengine.host}:{rtpengine.port}",
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def media_admin(media_server: ServerProcess) -> Iterator[Api]:
    anon = Api(media_server.url)
    api = anon.login("admin", ADMIN_PASSWORD)
    anon.close()
    try:
        yield api
    finally:
        api.close()


def desk_phone(
    admin: Api,
    server: ServerProcess,
    make_phone: Callable[..., Baresip],
    tone: Path,
    domain: str,
    answermode: str = "manual",
) -> tuple[dict[str, Any], Baresip]:
    owner = make_user(admin)
    desk = admin.add_device(owner["id"], "deskphone")
    sip = desk["sip"]
    account = Account(
        aor=f"sip:{sip['username']}@{domain}",
        password=sip["password"],
        auth_user=sip["username"],
        outbound=f"sip:127.0.0.1:{server.sip_port};transport=udp",
        answermode=answermode,
        regint=300,
    )
    phone = make_phone(f"desk-{owner['username']}", tone, account=account, answermode=answermode)
    phone.wait_registered()
    return owner, phone


def _media_page(request: pytest.FixtureRequest, tone: Path) -> Any:
    """A browser whose fake microphone plays ``tone``; echo cancellation etc. off (they cut a tone)."""
    pw = request.getfixturevalue("playwright_driver")
    browser = launch(pw, extra=[f"--use-file-for-fake-audio-capture={tone}"])
    request.addfinalizer(browser.close)
    server: ServerProcess = request.getfixturevalue("media_server")
    ctx = browser.new_context(base_url=server.url)
    ctx.set_default_timeout(15_000)
    ctx.add_init_script(
        "localStorage.setItem('callto.prefs', JSON.stringify({echoCancellation:false,"
        "noiseSuppression:false,autoGainControl:false,ringtone:false}))"
    )
    page = ctx.new_page()
    # Shown by pytest when the test fails: what the page and JsSIP complained about.
    page.on("console", lambda m: print(f"console {m.type}: {m.text[:500]}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: print(f"pageerror: {e}"))
    return page


def test_web_phone_registers_at_login_and_again_after_a_blip(
    web_server: ServerProcess, admin: Api, new_page: Callable[..., Any]
) -> None:
    _needs_switch(web_server)
    user, _ = webphone_user(admin)
    page = new_page()
    login(page, user["username"], PASSWORD)
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    page.evaluate("window.__callto.phone.simulateBlip()")
    page.wait_for_selector("[data-testid=reconnected]")
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")


def test_user_without_web_phone_is_never_asked_for_the_microphone(
    web_server: ServerProcess, admin: Api, new_page: Callable[..., Any]
) -> None:
    user = make_user(admin)
    admin.add_device(user["id"], "deskphone")
    page = new_page()
    page.add_init_script(
        "window.__gum = 0; const o = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);"
        "navigator.mediaDevices.getUserMedia = (c) => { window.__gum += 1; return o(c); };"
    )
    login(page, user["username"], PASSWORD)
    for screen in ("nav-settings", "nav-history", "nav-directory", "nav-diagnostics", "nav-phonebook"):
        page.click(f"[data-testid={screen}]")
    page.fill("[data-testid=phonebook-search]", "0721405516")
    page.click("[data-testid=dial-typed] button.num")
    page.wait_for_selector("[data-testid=call-progress]")
    assert page.evaluate("window.__gum") == 0
    assert page.query_selector("[data-testid=sip-status]") is None


def test_incoming_call_rings_on_the_page_and_is_answered_with_audio_both_ways(
    request: pytest.FixtureRequest,
) -> None:
    server: ServerProcess = request.getfixturevalue("web_server")
    _needs_switch(server)
    if not _inside_netns(request):
        return
    server = request.getfixturevalue("media_server")
    admin: Api = request.getfixturevalue("media_admin")
    tmp: Path = request.getfixturevalue("tmp_path")
    make_phone = request.getfixturevalue("baresip_factory")
    browser_tone = write_tone_wav(tmp / "browser-440.wav", 440.0, seconds=30.0, rate=48000)
    desk_tone = write_tone_wav(tmp / "desk-1000.wav", 1000.0, seconds=30.0)
    user, web = webphone_user(admin)
    domain = sip_domain(server, user["username"], web["id"])
    caller, desk = desk_phone(admin, server, make_phone, desk_tone, domain)
    page = _media_page(request, browser_tone)
    login(page, user["username"], PASSWORD)
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")

    desk.dial(f"sip:{user['extension']}@{domain}")
    try:
        page.wait_for_selector("[data-testid=incoming-call]")
    except Exception:
        print(server.log())
        raise
    wait_js(page, "document.title.startsWith('☎')")
    # The caller is a colleague: the page shows their name, not only the extension.
    page.wait_for_selector(f"[data-testid=call-who]:has-text('{caller['display_name']}')")
    shot(page, "70-incoming-call")
    page.click("[data-testid=answer]")
    desk.wait_established(timeout=10)
    page.wait_for_selector("[data-testid=web-call][data-state=established]")
    page.wait_for_selector("[data-testid=call-timer]")
    time.sleep(TALK_SECONDS)
    shot(page, "71-in-call")
    heard = _browser_hears(page, 1000.0)

    # In-call controls: mute, hold/resume, a keypad tone in the media (RFC 4733) that the desk phone reads.
    page.click("[data-testid=mute]")
    page.wait_for_selector("[data-testid=call-state]:has-text('Muted')")
    assert page.evaluate("window.__callto.phone.peerConnection.getSenders()[0].track.enabled") is False
    page.click("[data-testid=mute]")
    page.click("[data-testid=hold]")
    page.wait_for_selector("[data-testid=call-state]:has-text('On hold')")
    page.click("[data-testid=hold]")
    page.wait_for_selector("[data-testid=call-state]:has-text('In call')")
    page.click("[data-testid=keypad]")
    page.click("[data-testid=dtmf-pad] button:has-text('5')")
    dtmf = desk.wait_event("CALL_DTMF_START", timeout=5)
    assert dtmf.get("param") == "5", dtmf

    page.click("[data-testid=hangup]")
    desk.wait_closed(timeout=10)
    assert heard, "the page did not hear the desk phone's 1000 Hz tone"
    received = desk.received_wav()
    assert has_tone(received, 440.0, min_seconds=1.0), describe(received)


def test_click_dials_from_the_browser_in_one_tab_of_two_and_peer_hears_it(
    request: pytest.FixtureRequest,
) -> None:
    server: ServerProcess = request.getfixturevalue("web_server")
    _needs_switch(server)
    reason = calls_endpoint_reason(server)
    if reason:
        pytest.skip(reason)
    if not _inside_netns(request):
        return
    server = request.getfixturevalue("media_server")
    admin: Api = request.getfixturevalue("media_admin")
    tmp: Path = request.getfixturevalue("tmp_path")
    make_phone = request.getfixturevalue("baresip_factory")
    browser_tone = write_tone_wav(tmp / "browser-440.wav", 440.0, seconds=30.0, rate=48000)
    peer_tone = write_tone_wav(tmp / "peer-1000.wav", 1000.0, seconds=30.0)
    user, web = webphone_user(admin)
    domain = sip_domain(server, user["username"], web["id"])
    api = Api(server.url).login(user["username"], PASSWORD)
    assert api.put("/api/v1/me/main-device", json={"device_id": web["id"]}).status_code in (200, 204)
    api.close()
    peer_owner, peer = desk_phone(admin, server, make_phone, peer_tone, domain, answermode="auto")

    first = _media_page(request, browser_tone)
    login(first, user["username"], PASSWORD)
    first.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    # A second tab of the same browser shares the session (local storage): no second login.
    second = first.context.new_page()
    second.goto("/phonebook")
    second.wait_for_selector("[data-testid=sip-status][data-state=registered]")

    second.fill("[data-testid=phonebook-search]", peer_owner["extension"])
    clicked = time.monotonic()
    clicked_at_ms = second.evaluate("Date.now()")
    second.click("[data-testid=dial-typed] button.num")
    peer.wait_established(timeout=10)
    setup_seconds = time.monotonic() - clicked
    time.sleep(TALK_SECONDS)
    calls = [p.evaluate("window.__callto.phone.call.get() !== null") for p in (first, second)]
    assert calls.count(True) == 1, f"exactly one tab must dial, got {calls}"
    dialer = first if calls[0] else second
    shot(dialer, "72-outgoing-call")
    heard = _browser_hears(dialer, 1000.0)
    dialer.click("[data-testid=hangup]")
    peer.wait_closed(timeout=10)
    invite_ms = dialer.evaluate("window.__callto.phone.lastInviteAt") - clicked_at_ms
    print(f"click -> INVITE sent by the browser: {invite_ms} ms; click -> answered by the peer: {setup_seconds:.2f} s")
    out = ROOT / "test-output" / "web-click-latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"click_to_invite_ms": invite_ms, "click_to_answered_s": round(setup_seconds, 3)}))
    assert 0 < invite_ms < 1000, f"click -> INVITE took {invite_ms} ms"
    assert heard, "the page did not hear the peer's 1000 Hz tone"
    received = peer.received_wav()
    assert has_tone(received, 440.0, min_seconds=1.0), describe(received)


def _browser_hears(page: Any, frequency: float) -> bool:
    """Goertzel on the remote track for ~1 s: is ``frequency`` clearly above its neighbours?"""
    return bool(
        page.evaluate(
            """async (f) => {
  const pc = window.__callto.phone.peerConnection;
  const tr = pc && pc.getReceivers().map((r) => r.track).find((t) => t && t.kind === 'audio');
  if (!tr) return false;
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(new MediaStream([tr]));
  const an = ctx.createAnalyser();
  an.fftSize = 8192;
  src.connect(an);
  const bins = new Float32Array(an.frequencyBinCount);
  let hits = 0;
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 100));
    an.getFloatFrequencyData(bins);
    const k = Math.round(f / (ctx.sampleRate / an.fftSize));
    const peak = Math.max(bins[k - 1], bins[k], bins[k + 1]);
    const far = (bins[Math.round(k * 0.5)] + bins[Math.round(k * 1.5)]) / 2;
    if (peak > -70 && peak - far > 20) hits += 1;
  }
  await ctx.close();
  return hits >= 5;
}""",
            frequency,
        )
    )


def test_inside_link_the_page_is_the_link_device_phone_and_takes_numbers_from_link(
    web_server: ServerProcess, admin: Api, new_page: Callable[..., Any]
) -> None:
    """Link's phone window loads ``/?embedded=link``: the page registers the user's Link device (not the
    web phone), never claims the device on the event stream, and exposes ``window.calltoPhone``."""
    _needs_switch(web_server)
    user = make_user(admin)
    link = admin.add_device(user["id"], "link")
    page = new_page()
    login(page, user["username"], PASSWORD)
    page.goto("/?embedded=link")  # Link's window: the session is the one just opened
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    assert page.evaluate("typeof window.calltoPhone.dial") == "function"
    # Link's side of the hook (src/callto/link/phone_window.py): the ring speaker by its name; no output
    # is named so here (no audio server), so the ring tone goes back to the calls' speaker.
    assert page.evaluate("typeof window.calltoPhone.setRingDevice") == "function"
    page.evaluate("window.calltoPhone.setRingDevice('No Such Speaker')")
    me = Api(web_server.url).login(user["username"], PASSWORD)
    deadline = time.monotonic() + 5
    while not {d["id"]: d for d in me.get("/api/v1/me/devices").json()}[link["id"]]["online"]:
        assert time.monotonic() < deadline, "the Link device registered over SIP shows online"
        time.sleep(0.1)
    checks = {c["id"]: c for c in me.get("/api/v1/me/diagnostics").json()["checks"]}
    assert "sip" in checks[f"device-{link['id']}"]["message"]
    assert checks["link"]["status"] == "warn", "the page did not take Link's event-session role"
