"""Link's phone window under the web CTI's Content-Security-Policy: the page is a top-level Qt WebEngine
page, not a frame, so ``frame-ancestors 'none'`` does not stop it, and Link's ``runJavaScript`` dial (run
by the embedder) is not blocked by ``script-src 'self'`` either. The page here serves the server's own
policy (``callto.api.headers``) and its hook from a file, as the built web app does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from callto.api.headers import content_security_policy
from callto.link.phone_window import PhoneWindow, webengine_available
from link.conftest import qwait

pytestmark = pytest.mark.timeout(90)

PAGE = b"""<!doctype html><html><body><h1>phone</h1><script src="/hook.js"></script>
<script>window.inlineRan = true;</script></body></html>"""
HOOK = b"""window.dialed = [];
window.calltoPhone = { dial: function (n) { window.dialed.push(n); return true; } };"""


@pytest.fixture
def csp_window(qapp: Any, link_home: Any) -> Iterator[PhoneWindow]:
    if not webengine_available():
        pytest.fail("PySide6-WebEngine is not installed (pip install PySide6-Addons[webengine])")

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = (HOOK, "text/javascript") if self.path == "/hook.js" else (PAGE, "text/html")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Security-Policy", content_security_policy("/", None).decode())
            self.send_header("X-Frame-Options", "DENY")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    window = PhoneWindow(f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        qwait(lambda: window.loaded, 30, "the phone page to load")
        yield window
    finally:
        from PySide6.QtCore import QCoreApplication, QEvent

        window.close()
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        httpd.shutdown()
        httpd.server_close()


def test_link_dials_through_the_page_under_the_strict_policy(csp_window: PhoneWindow) -> None:
    result: list[tuple[bool, str | None]] = []
    csp_window.dial("+390721405516", lambda ok, reason: result.append((ok, reason)))
    qwait(lambda: bool(result), 10, "the page's answer")
    assert result[0] == (True, None)
    seen: list[Any] = []
    csp_window.page.runJavaScript("JSON.stringify([window.dialed, window.inlineRan === true])", 0, seen.append)
    qwait(lambda: bool(seen), 10, "page state")
    # the policy holds (the inline script did not run) and Link's dial still reached the hook
    assert seen[0] == '[["+390721405516"],false]'
