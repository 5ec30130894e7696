"""The web phone with more than one call, and ringing in a background tab, in Chromium against the real
server, switch and rtpengine, with baresip desk phones calling the web phone's user.

- Call waiting: during a call a second call shows on the page with the call-waiting beeps; turning it
  down leaves the first call alone; answering it puts the first on hold; the user switches between the
  two, and hanging up one brings the other to the front. The audio of each call is checked by frequency
  (each desk phone plays its own tone) at every step.
- A call arriving while the tab is in the background (hidden, not focused) creates a desktop
  notification and starts the ring tone; back in front the notification goes away.

Headless Chromium reports every tab as visible and focused, whatever is in front, so the background is
emulated in the page: ``document.visibilityState``/``hidden``/``hasFocus()`` answer "hidden" and the
``visibilitychange`` and ``blur`` events fire, as a real browser does when another tab comes to the front.
``window.Notification`` is replaced by a recorder (headless Chromium has no notification centre), and
every oscillator the ringer starts is recorded.

Media tests run inside a private network namespace with only loopback (docs/testing.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import netns
from support.baresip import Baresip
from support.server import Api, ServerProcess
from support.tone import describe, has_tone, write_tone_wav

from .conftest import launch, login, shot, wait_js
from .test_web_phone import (  # noqa: F401  (media_server, media_admin: fixtures used by name)
    _browser_hears,
    _needs_switch,
    desk_phone,
    media_admin,
    media_server,
    sip_domain,
    webphone_user,
)
from .test_web_ui import PASSWORD

pytestmark = pytest.mark.browser

A_HZ = 700.0
B_HZ = 1300.0

# Records notifications and ring tones, and lets the test send the tab to the background.
RECORDERS = """
(() => {
  let hidden = false;
  const shown = () => (hidden ? 'hidden' : 'visible');
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: shown });
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });
  const hasFocus = Document.prototype.hasFocus;
  Document.prototype.hasFocus = function () { return hidden ? false : hasFocus.call(this); };
  window.__setHidden = (h) => {
    hidden = h;
    document.dispatchEvent(new Event('visibilitychange'));
    window.dispatchEvent(new Event(h ? 'blur' : 'focus'));
  };
  window.__notes = [];
  class RecordedNotification {
    constructor(title, options) {
      this.title = title;
      this.body = (options && options.body) || '';
      this.tag = (options && options.tag) || '';
      this.hiddenWhenShown = hidden;
      this.closed = false;
      this.onclick = null;
      window.__notes.push(this);
    }
    close() { this.closed = true; }
  }
  RecordedNotification.permission = 'granted';
  RecordedNotification.requestPermission = () => Promise.resolve('granted');
  window.Notification = RecordedNotification;
  window.__tones = [];
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (when) {
    const ctx = this.context;
    window.__tones.push({ hz: this.frequency.value, at: when || 0, now: ctx.currentTime, state: ctx.state });
    return start.apply(this, arguments);
  };
})();
"""


def _inside_netns(request: pytest.FixtureRequest, timeout: float = 170) -> bool:
    """True when this run is the one inside the namespace; else re-run there and check it passed."""
    if os.environ.get(netns.MARKER) == "1":
        assert netns.interfaces() == ["lo"], "expected a namespace with only loopback"
        return True
    reason = netns.netns_unavailable_reason()
    if reason is not None:
        pytest.fail(f"WebRTC browser tests must run in a loopback-only namespace, which cannot be made: {reason}")
    result = netns.rerun_in_netns(request.node.nodeid, Path(str(request.config.rootpath)), timeout=timeout)
    out = result.stdout[-6000:] + result.stderr[-2000:]
    if "1 skipped" in result.stdout:
        pytest.skip(f"skipped inside the namespace: {out[-600:]}")
    assert result.returncode == 0, out
    assert "1 passed" in result.stdout, out
    print(out)
    return False


def _page(request: pytest.FixtureRequest, tone: Path) -> Any:
    """A browser whose fake microphone plays ``tone``, ring tone on, recorders installed."""
    pw = request.getfixturevalue("playwright_driver")
    browser = launch(pw, extra=[f"--use-file-for-fake-audio-capture={tone}"])
    request.addfinalizer(browser.close)
    server: ServerProcess = request.getfixturevalue("media_server")
    ctx = browser.new_context(base_url=server.url)
    ctx.set_default_timeout(15_000)
    ctx.add_init_script(
        "localStorage.setItem('callto.prefs', JSON.stringify({echoCancellation:false,"
        "noiseSuppression:false,autoGainControl:false,ringtone:true}))"
    )
    ctx.add_init_script(RECORDERS)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    request.addfinalizer(lambda: _no_errors(errors))
    page.on("console", lambda m: print(f"console {m.type}: {m.text[:500]}") if m.type in ("error", "warning") else None)
    return page


def _no_errors(errors: list[str]) -> None:
    assert not errors, f"JavaScript errors on the page: {errors}"


def _state(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => { const p = window.__callto.phone; const c = p.call.get(), o = p.other.get();
  return { alert: p.alert.get(), front: c && { number: c.number, state: c.state, held: c.held },
           back: o && { number: o.number, state: o.state, held: o.held } }; }"""
        )
    )


def _tones_since(page: Any, index: int) -> list[dict[str, Any]]:
    return list(page.evaluate("(i) => window.__tones.slice(i)", index))


def _wait_hears(page: Any, hz: float, tries: int = 3) -> bool:
    """Media needs a moment after answer, hold or resume: a few one-second listens."""
    return any(_browser_hears(page, hz) for _ in range(tries))


def test_second_call_waits_then_is_answered_with_the_first_on_hold_and_calls_switch(
    request: pytest.FixtureRequest,
) -> None:
    _needs_switch(request.getfixturevalue("web_server"))
    if not _inside_netns(request):
        return
    server: ServerProcess = request.getfixturevalue("media_server")
    admin: Api = request.getfixturevalue("media_admin")
    tmp: Path = request.getfixturevalue("tmp_path")
    make_phone: Callable[..., Baresip] = request.getfixturevalue("baresip_factory")
    browser_tone = write_tone_wav(tmp / "browser-440.wav", 440.0, seconds=60.0, rate=48000)
    user, web = webphone_user(admin)
    domain = sip_domain(server, user["username"], web["id"])
    a_owner, a = desk_phone(admin, server, make_phone, write_tone_wav(tmp / "a.wav", A_HZ, seconds=60.0), domain)
    b_owner, b = desk_phone(admin, server, make_phone, write_tone_wav(tmp / "b.wav", B_HZ, seconds=60.0), domain)
    page = _page(request, browser_tone)
    login(page, user["username"], PASSWORD)
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    target = f"sip:{user['extension']}@{domain}"

    # First call: rings, answered, A heard.
    a.dial(target)
    page.wait_for_selector("[data-testid=incoming-call]")
    page.click("[data-testid=answer]")
    a.wait_established(timeout=10)
    page.wait_for_selector("[data-testid=web-call][data-state=established]")
    assert _wait_hears(page, A_HZ), "the page does not hear A"

    # A second call during the first: shown and beeping, not refused with 486 any more.
    tones = len(page.evaluate("window.__tones"))
    b.dial(target)
    waiting = page.wait_for_selector("[data-testid=call-waiting]")
    page.wait_for_selector(f"[data-testid=waiting-who]:has-text('{b_owner['display_name']}')")
    assert "Hold and answer" in waiting.inner_text()
    b.wait_ringing(timeout=5)
    state = _state(page)
    assert state["alert"] == "waiting" and state["front"]["state"] == "established", state
    beeps = _tones_since(page, tones)
    assert beeps and all(t["hz"] == 440 for t in beeps), beeps
    wait_js(page, "document.title.startsWith('☎ +1')")
    shot(page, "73-call-waiting")

    # Turned down: B hears busy, A's call goes on untouched.
    page.click("[data-testid=reject-waiting]")
    closed = b.wait_closed(timeout=10)
    assert "486" in str(closed.get("param", "")), closed
    page.wait_for_selector("[data-testid=call-waiting]", state="detached")
    state = _state(page)
    assert state["alert"] == "off" and state["back"] is None and state["front"]["state"] == "established", state
    assert _wait_hears(page, A_HZ), "A's call did not go on after the waiting call was turned down"

    # B again, answered this time: A goes on hold, B comes to the front.
    b.dial(target)
    page.wait_for_selector("[data-testid=call-waiting]")
    page.click("[data-testid=answer-waiting]")
    b.wait_established(timeout=10)
    page.wait_for_selector(f"[data-testid=held-call] [data-testid=held-who]:has-text('{a_owner['display_name']}')")
    front = "[data-testid=web-call][data-state=established] [data-testid=call-who]"
    page.wait_for_selector(f"{front}:has-text('{b_owner['display_name']}')")
    state = _state(page)
    assert state["alert"] == "off", state
    assert state["back"]["held"] is True and state["front"]["held"] is False, state
    assert _wait_hears(page, B_HZ), "the page does not hear B after answering it"
    shot(page, "74-call-on-hold")

    # Switch: B on hold, A back.
    page.click("[data-testid=swap]")
    page.wait_for_selector(f"[data-testid=held-call] [data-testid=held-who]:has-text('{b_owner['display_name']}')")
    state = _state(page)
    assert state["front"]["held"] is False and state["back"]["held"] is True, state
    assert _wait_hears(page, A_HZ), "the page does not hear A after switching back"

    # Hanging up A brings B to the front, still on hold until resumed.
    page.click("[data-testid=hangup]")
    a.wait_closed(timeout=10)
    page.wait_for_selector("[data-testid=held-call]", state="detached")
    page.wait_for_selector(f"[data-testid=call-who]:has-text('{b_owner['display_name']}')")
    page.wait_for_selector("[data-testid=call-state]:has-text('On hold')")
    page.click("[data-testid=hold]")
    page.wait_for_selector("[data-testid=call-state]:has-text('In call')")
    assert _wait_hears(page, B_HZ), "the page does not hear B after resuming it"
    page.click("[data-testid=hangup]")
    b.wait_closed(timeout=10)
    page.wait_for_selector("[data-testid=web-call]", state="detached", timeout=10_000)

    for name, phone in (("A", a), ("B", b)):
        received = phone.received_wav()
        assert has_tone(received, 440.0, min_seconds=1.0), f"{name} did not hear the browser: {describe(received)}"


def test_call_in_a_background_tab_notifies_and_rings(request: pytest.FixtureRequest) -> None:
    _needs_switch(request.getfixturevalue("web_server"))
    if not _inside_netns(request, timeout=110):
        return
    server: ServerProcess = request.getfixturevalue("media_server")
    admin: Api = request.getfixturevalue("media_admin")
    tmp: Path = request.getfixturevalue("tmp_path")
    make_phone: Callable[..., Baresip] = request.getfixturevalue("baresip_factory")
    user, web = webphone_user(admin)
    domain = sip_domain(server, user["username"], web["id"])
    caller, desk = desk_phone(admin, server, make_phone, write_tone_wav(tmp / "desk.wav", 1000.0, seconds=30.0), domain)
    page = _page(request, write_tone_wav(tmp / "browser.wav", 440.0, seconds=30.0, rate=48000))
    login(page, user["username"], PASSWORD)
    page.wait_for_selector("[data-testid=sip-status][data-state=registered]")
    # Another tab comes to the front: this one is hidden and loses the focus.
    other = page.context.new_page()
    other.goto("about:blank")
    other.bring_to_front()
    page.evaluate("window.__setHidden(true)")
    assert page.evaluate("document.visibilityState") == "hidden"

    desk.dial(f"sip:{user['extension']}@{domain}")
    wait_js(page, "window.__notes.length > 0", timeout=10)
    note = page.evaluate("window.__notes[0]")
    assert note["title"] == "callto: incoming call" and note["hiddenWhenShown"] is True, note
    # Shown again once the caller's name is known (a colleague: from the directory).
    last = "window.__notes[window.__notes.length - 1]"
    wait_js(page, f"{last}.body === {caller['display_name']!r} && !{last}.closed", timeout=5)
    assert page.evaluate("window.__notes.filter((n) => !n.closed).length") == 1
    # The ring tone is playing: 440 + 480 Hz oscillators on a running audio context, the first one now.
    rings = page.evaluate("window.__tones")
    assert {t["hz"] for t in rings} == {440, 480}, rings
    assert rings[0]["state"] == "running" and rings[0]["at"] <= rings[0]["now"] + 0.1, rings[0]
    # Scheduled ahead on the audio clock, so throttled background timers do not break the cadence.
    assert max(t["at"] for t in rings) - rings[0]["at"] >= 30, rings[-1]
    assert page.evaluate("window.__callto.phone.alert.get()") == "ring"
    wait_js(page, "document.title.startsWith('☎')")

    # Back in front: the page's own alert is enough, the notification goes away.
    page.bring_to_front()
    page.evaluate("window.__setHidden(false)")
    wait_js(page, "window.__notes.every((n) => n.closed)")
    page.wait_for_selector("[data-testid=incoming-call]")
    shot(page, "76-incoming-background-tab-back-in-front")
    # To the background again while it still rings: a new notification.
    shown = page.evaluate("window.__notes.length")
    page.evaluate("window.__setHidden(true)")
    wait_js(page, f"window.__notes.length === {shown + 1} && !{last}.closed")
    page.evaluate("window.__setHidden(false)")
    page.click("[data-testid=reject]")
    closed = desk.wait_closed(timeout=10)
    assert "486" in str(closed.get("param", "")), closed
    wait_js(page, "window.__callto.phone.alert.get() === 'off'")
    assert page.evaluate("window.__notes.every((n) => n.closed)")
    time.sleep(0.2)
    assert not page.evaluate("document.title").startswith("☎")
