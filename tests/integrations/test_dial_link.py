"""The dial link ``/dial?to=`` in Debian's Chromium against a real server and a real desk phone (baresip):
a signed-out user signs in on the page, sees the number as it will be dialed, and only the click places
the call; a cross-site form post, fetch, image or frame places nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.test_click_to_call_desk_phone import register_phone
from support.fixtures import BaresipFactory
from support.ports import free_port
from support.server import Api, ServerProcess
from web.conftest import launch

pytestmark = [pytest.mark.sip, pytest.mark.browser, pytest.mark.timeout(90)]


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
    yield proc
    proc.stop()


def _attacker_page(target: str) -> str:
    return f"""<!doctype html><meta charset=utf-8><title>another site</title>
<iframe name=sink1></iframe><iframe name=sink2></iframe>
<form id=f method=POST action="{target}/api/v1/calls" enctype="text/plain" target=sink1>
<input name='{{"to":"502","pad":"' value='"}}'></form>
<form id=g method=POST action="{target}/dial?to=502" target=sink2><input name=to value=502></form>
<img src="{target}/dial?to=502"><img src="{target}/api/v1/calls?to=502">
<iframe src="{target}/dial?to=502"></iframe>
<script>
document.getElementById('f').submit();
document.getElementById('g').submit();
fetch("{target}/api/v1/calls", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{to: "502"}})}});
document.title = "sent";
</script>"""


@pytest.fixture
def attacker(sqlite_server: ServerProcess) -> Iterator[str]:
    """A page on another origin (another port) that tries every way to make the server call."""
    page = _attacker_page(sqlite_server.url).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_: Any) -> None:
            pass

    port = free_port(host="127.0.0.2")
    # another host, not only another port: a different site for the browser, as a real attacker's would be
    server = ThreadingHTTPServer(("127.0.0.2", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.2:{port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser_two_hosts(playwright_driver: Any, chromium_path: str) -> Iterator[Any]:
    """Chromium as the web tests start it, resolving 127.0.0.2 too (the other site); the last
    --host-resolver-rules on the command line is the one Chromium uses."""
    b = launch(playwright_driver, ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE 127.0.0.2"],
               fake_media=False)
    try:
        yield b
    finally:
        b.close()


def test_only_the_confirmed_click_places_the_call(
    sqlite_server: ServerProcess, attacker: str, browser_two_hosts: Any, baresip_factory: BaresipFactory,
    tone_440: Path,
) -> None:
    browser = browser_two_hosts
    server = sqlite_server
    admin = Api(server.url).login("admin", "admin-secret-1")
    alice = admin.create_user("alice", extension="501", outbound="national")
    admin.create_user("bob", extension="502")
    desk = register_phone(baresip_factory, tone_440, server, admin.add_device(alice["id"], "deskphone"), "alice")
    headers = httpx.get(f"{server.url}/dial?to=502").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"

    ctx = browser.new_context(base_url=server.url, locale="it-IT")
    ctx.set_default_timeout(10_000)
    errors: list[str] = []
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/dial?to=502")
        page.wait_for_selector("[data-testid=dial-signin]")
        assert page.inner_text("[data-testid=dial-signin]") == "Accedi"
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "password-123")
        page.click("[data-testid=dial-signin]")
        page.wait_for_selector("[data-testid=dial-call]")
        assert page.inner_text("[data-testid=dial-number]") == "502"
        assert page.inner_text("[data-testid=dial-kind]") == "interno"
        with pytest.raises(Exception, match="CALL_INCOMING"):
            desk.wait_incoming(timeout=1.0)  # signing in and showing the number placed nothing

        other = ctx.new_page()
        other.goto(attacker)
        other.wait_for_function("document.title === 'sent'")
        with pytest.raises(Exception, match="CALL_INCOMING"):
            desk.wait_incoming(timeout=3.0)
        other.close()

        page.click("[data-testid=dial-call]")
        desk.wait_incoming(timeout=5)
        page.wait_for_selector("[data-testid=dial-progress-number]")
        assert page.inner_text("[data-testid=dial-progress-number]") == "502"
        # (a selector, not a function: the page's CSP forbids evaluating strings, Playwright's included)
        page.wait_for_selector("#progress[data-state=dialing], #progress[data-state=ringing]")
        page.click("[data-testid=dial-hangup]")
        desk.wait_closed(timeout=5)
        page.wait_for_selector("#progress[data-state=ended]")
        assert page.inner_text("[data-testid=dial-state]").startswith("Chiamata terminata")
    finally:
        ctx.close()
    assert not errors, errors
