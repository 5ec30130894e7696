"""The extension's context menu ("Call <selection> with callto") in Debian's Chromium: the menu item is
registered for selections, and its click handler, given a number selected on a page (here one the
page scan leaves alone, inside <pre>), places the call on the real server: the user's web phone
session receives the dial with that number, and the page's notice shows the call's progress.

Chromium's own context menu is native UI that headless Chromium never draws and Playwright cannot
click, so the test calls the service worker's handler (the function the menu's onClicked listener
runs, exposed as ``calltoMenuClicked``) with what Chromium would pass it: the selected text and the tab."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dialer.test_click_to_call import PhoneSession
from support.ports import free_port
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

PAGE = b"""<!doctype html><meta charset=utf-8><title>order</title>
<p>Delivery note</p><pre id=note>Courier: ring 0721 405517 before 6 pm</pre>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    port = free_port(host="127.0.0.1")
    server = ThreadingHTTPServer(("127.0.0.1", port), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/order.html"
    server.shutdown()
    server.server_close()


def test_context_menu_calls_the_selected_number_through_the_server(
    sqlite_server: ServerProcess, chromium_with_extension: Any, page_url: str,
) -> None:
    server, ctx = sqlite_server, chromium_with_extension
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = admin.create_user("ezio", display_name="Ezio Bianchi", outbound="national")
    web = admin.add_device(user["id"], "webphone")
    ezio = Api(server.url).login("ezio", "password-123")
    phone = PhoneSession(server, str(ezio.token), web["id"])
    try:
        worker = ctx.service_workers[0] if ctx.service_workers else ctx.wait_for_event("serviceworker")
        extension_id = worker.url.split("/")[2]
        assert worker.evaluate("chrome.i18n.getMessage('menuCall')") == "Call %s with callto"
        # update() fails for an item that was never created: the menu is registered at install
        registered = "chrome.contextMenus.update('callto-call', {}).then(() => 'ok', (e) => String(e))"
        assert worker.evaluate(registered) == "ok"

        popup = ctx.new_page()
        popup.goto(f"chrome-extension://{extension_id}/popup.html")
        popup.fill("input[name=server]", server.url)
        popup.fill("input[name=username]", "ezio")
        popup.fill("input[name=password]", "password-123")
        popup.click("#signin-button")
        popup.wait_for_selector("#account:not([hidden])")
        popup.close()

        page = ctx.new_page()
        page.goto(page_url)
        page.wait_for_selector("html[data-callto-extension=active]", state="attached")
        assert page.locator(".callto-number").count() == 0, "numbers in <pre> are left to the menu"
        selected = page.evaluate("""() => {
            const text = document.getElementById('note').firstChild;
            const at = text.data.indexOf('0721');
            const range = document.createRange();
            range.setStart(text, at);
            range.setEnd(text, at + '0721 405517'.length);
            getSelection().removeAllRanges();
            getSelection().addRange(range);
            return getSelection().toString();
        }""")
        assert selected == "0721 405517"

        worker.evaluate("""async ([url, selection]) => {
            const [tab] = await chrome.tabs.query({ url });
            await self.calltoMenuClicked({ menuItemId: 'callto-call', selectionText: selection, editable: false,
                                           pageUrl: url }, tab);
        }""", [page_url, selected])
        page.wait_for_selector("#callto-notice[data-state=dialing]", state="attached")
        assert page.locator("#callto-notice .text").inner_text() == "Calling your phone…"
        assert len(phone.dials) == 1, phone.dials
        dial = phone.dials[0]
        assert dial["to"] == "0721 405517" and dial["number"]["e164"] == "+390721405517"
        assert dial["device_id"] == web["id"]
        call = ezio.get(f"/api/v1/calls/{dial['call_id']}").json()
        assert call["state"] == "dialing" and call["strategy"] == "session"

        other = worker.evaluate("""async (url) => {
            const [tab] = await chrome.tabs.query({ url });
            return await self.calltoMenuClicked({ menuItemId: 'something-else', selectionText: '0721 405518',
                                                  editable: false, pageUrl: url }, tab);
        }""", page_url)
        assert other is None, "another menu item's click sends the tab nothing"
        assert len(phone.dials) == 1
    finally:
        phone.close()
        ezio.close()
        admin.close()
