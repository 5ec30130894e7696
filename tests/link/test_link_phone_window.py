"""Link as a phone: the Qt WebEngine window hands a server ``dial`` to the page's hook.

The page here is a stand-in for the web CTI's phone page served on loopback: it implements only the
documented hook ``window.calltoPhone.dial(number, clickId)`` (returns true when it starts the call)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from callto.link.phone_window import PhoneWindow, phone_url, webengine_available
from link.conftest import qwait

pytestmark = pytest.mark.timeout(90)

WITH_HOOK = b"""<!doctype html><html><body><h1>phone</h1><script>
window.dialed = [];
window.rings = [];
window.calltoPhone = {
  dial: function (n, c) { window.dialed.push([n, c]); return true; },
  setRingDevice: function (d) { window.rings.push(d); },
};
</script></body></html>"""
WITHOUT_HOOK = b"<!doctype html><html><body><h1>sign in</h1></body></html>"


def _serve(body: bytes) -> tuple[ThreadingHTTPServer, list[str]]:
    paths: list[str] = []

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, paths


@pytest.fixture
def window_factory(qapp: Any, link_home: Any) -> Iterator[Any]:
    if not webengine_available():
        pytest.fail("PySide6-WebEngine is not installed (pip install PySide6-Addons[webengine])")
    made: list[tuple[PhoneWindow, ThreadingHTTPServer]] = []

    def make(body: bytes) -> tuple[PhoneWindow, list[str]]:
        httpd, paths = _serve(body)
        window = PhoneWindow(f"http://127.0.0.1:{httpd.server_address[1]}")
        made.append((window, httpd))
        qwait(lambda: window.loaded, 30, "the phone page to load")
        return window, paths

    yield make
    from PySide6.QtCore import QCoreApplication, QEvent

    for window, httpd in made:
        window.close()
        window.deleteLater()
        # Pages must go before the shared profile does (Qt warns otherwise at exit).
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        httpd.shutdown()
        httpd.server_close()


def _dial(window: PhoneWindow, number: str, click: str | None = None) -> tuple[bool, str | None]:
    result: list[tuple[bool, str | None]] = []
    window.dial(number, lambda ok, reason: result.append((ok, reason)), click)
    qwait(lambda: bool(result), 10, "the page's answer")
    return result[0]


def test_dial_command_reaches_the_web_phone_hook(window_factory: Any) -> None:
    window, paths = window_factory(WITH_HOOK)
    assert paths[0] == "/?embedded=link"
    assert _dial(window, "+390721405516", "c2c-0123456789abcdef") == (True, None)
    tricky = "0721'\");window.hacked=1;//"
    # a click id not in the switch's form is not handed on (the call goes untied rather than with junk)
    assert _dial(window, tricky, "c2c-x'\");window.hacked=2;//") == (True, None)
    seen: list[Any] = []
    window.page.runJavaScript("JSON.stringify([window.dialed, window.hacked === undefined])", 0, seen.append)
    qwait(lambda: bool(seen), 10, "page state")
    assert json.loads(seen[0]) == [[["+390721405516", "c2c-0123456789abcdef"], [tricky, None]], True]


def _page(window: PhoneWindow, expr: str) -> Any:
    seen: list[Any] = []
    window.page.runJavaScript(f"JSON.stringify({expr})", 0, seen.append)
    qwait(lambda: bool(seen), 10, "page state")
    return json.loads(seen[0])


def test_the_ring_tone_speaker_chosen_in_link_reaches_the_page_at_load_and_on_change(
    qapp: Any, link_home: Any
) -> None:
    httpd, _ = _serve(WITH_HOOK)
    window = PhoneWindow(f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        window.set_ring_device("USB Speakerphone")  # before the page is there: handed over once it loads
        qwait(lambda: window.loaded, 30, "the phone page to load")
        qwait(lambda: _page(window, "window.rings") == ["USB Speakerphone"], 10, "the speaker at load")
        answers: list[str] = []
        window.set_ring_device("", answers.append)  # back to the calls' speaker
        qwait(lambda: answers == ["ok"], 10, "the page's answer")
        assert _page(window, "window.rings") == ["USB Speakerphone", ""]
    finally:
        from PySide6.QtCore import QCoreApplication, QEvent

        window.close()
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        httpd.shutdown()
        httpd.server_close()


def test_page_without_the_hook_refuses_in_plain_words(window_factory: Any) -> None:
    window, _ = window_factory(WITHOUT_HOOK)
    ok, reason = _dial(window, "201")
    assert ok is False and reason is not None and "not signed in" in reason
    answers: list[str] = []
    window.set_ring_device("USB Speakerphone", answers.append)
    qwait(lambda: answers == ["no-hook"], 10, "the page's answer")


def test_phone_url_asks_the_web_cti_for_its_embedded_mode() -> None:
    assert phone_url("https://pbx.example.com/") == "https://pbx.example.com/?embedded=link"
