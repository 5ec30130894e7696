"""Browser-side defences, in Debian's Chromium: a hostile page on another origin (another loopback port)
cannot frame the CTI, and clicking there places no call; the CTI itself runs under its strict
Content-Security-Policy with no violation, and a click on a number there does place the call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from support.server import Api, ServerProcess

from .conftest import login
from .test_web_cti import add_shared_contact
from .test_web_ui import PASSWORD, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def hostile_origin(web_server: ServerProcess) -> Iterator[str]:
    """A page on another origin that frames the CTI full size under a bait button, the classic
    clickjacking set-up: the user thinks they click the bait and click the framed number instead."""
    page = f"""<!doctype html><html><body style="margin:0">
<button id="bait" style="position:absolute;top:300px;left:400px;z-index:2;opacity:0.5">Win a prize</button>
<iframe id="cti" src="{web_server.url}/phonebook" style="width:1200px;height:760px;border:0;opacity:0.1">
</iframe></body></html>""".encode()

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _watch(page: Any) -> tuple[list[str], list[str]]:
    """(calls placed: POST /api/v1/calls seen leaving the browser, console messages)."""
    calls: list[str] = []
    console: list[str] = []
    page.context.on(
        "request", lambda r: calls.append(r.url) if r.method == "POST" and "/api/v1/calls" in r.url else None
    )
    page.on("console", lambda m: console.append(m.text))
    return calls, console


def test_a_hostile_page_cannot_frame_the_cti_and_a_click_there_places_no_call(
    web_server: ServerProcess, admin: Api, new_page: Callable[..., Any], hostile_origin: str
) -> None:
    user = make_user(admin, outbound="international")
    desk = admin.add_device(user["id"], "deskphone")
    api = Api(web_server.url).login(user["username"], PASSWORD)
    assert api.put("/api/v1/me/main-device", json={"device_id": desk["id"]}).status_code in (200, 204)
    api.close()
    add_shared_contact(admin, "Numero Estero", "Bait", ("work", "+44 20 7946 0000"))
    page = new_page()
    calls, console = _watch(page)
    login(page, user["username"], PASSWORD)  # signed in: the token is in this browser, as for a real user

    page.goto(hostile_origin)
    page.wait_for_timeout(1500)
    # The clickjacker's steering, done as precisely as it could ever be: type into the framed search and
    # click the number. With the CTI framed this places the call; with frame-ancestors it finds nothing.
    page.mouse.click(450, 310)
    cti = page.frame_locator("#cti")
    try:
        cti.locator("[data-testid=phonebook-search]").fill("Numero Estero", timeout=2000)
        cti.locator("[data-testid=contact]:has-text('Numero Estero') button.num").click(timeout=3000)
        page.wait_for_timeout(1000)
    except PlaywrightTimeout:
        pass  # nothing of the CTI is in the frame to click
    assert calls == [], f"a call was placed from the hostile page: {calls}"
    framed = next(f for f in page.frames if f != page.main_frame)
    assert not framed.url.startswith(web_server.url), f"the CTI loaded inside the hostile page: {framed.url}"
    assert any("frame-ancestors" in m for m in console), console


def test_the_cti_runs_under_its_policy_and_a_click_on_a_number_places_the_call(
    web_server: ServerProcess, admin: Api, new_page: Callable[..., Any]
) -> None:
    user = make_user(admin, outbound="international")
    desk = admin.add_device(user["id"], "deskphone")
    api = Api(web_server.url).login(user["username"], PASSWORD)
    assert api.put("/api/v1/me/main-device", json={"device_id": desk["id"]}).status_code in (200, 204)
    api.close()
    add_shared_contact(admin, "Numero Vero", "Real", ("work", "+39 0721 405517"))
    page = new_page()
    calls, console = _watch(page)
    login(page, user["username"], PASSWORD)
    page.fill("[data-testid=phonebook-search]", "Numero Vero")
    page.click("[data-testid=contact]:has-text('Numero Vero') button.num")
    page.wait_for_selector("[data-testid=call-progress]:not([data-state=requesting])")
    assert len(calls) == 1, calls
    violations = [m for m in console if "Content Security Policy" in m]
    assert not violations, violations


def test_every_answer_carries_the_headers_and_api_answers_are_not_stored(
    web_server: ServerProcess, admin: Api
) -> None:
    page = httpx.get(f"{web_server.url}/phonebook", timeout=10)
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert f"ws://{web_server.url.split('//')[1]}" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in page.headers, "no HSTS over plain HTTP"
    me = admin.get("/api/v1/admin/users")
    assert me.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in me.headers[
        "content-security-policy"]
    missing = admin.get("/api/v1/phonebook/0")
    assert missing.headers["cache-control"] == "no-store", "error answers too"
    https = httpx.get(f"https://127.0.0.1:{web_server.env()['CALLTO_HTTPS_PORT']}/api/v1/health",
                      verify=False, timeout=10)
    assert https.headers["strict-transport-security"].startswith("max-age=")
