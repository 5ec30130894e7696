"""The browser extension (extension/dist/callto, built by extension/build.sh) loaded into Debian's
Chromium: sign in through its popup, numbers in a page's running text and a tel: link become
click-to-call without moving the page's boxes, a click rings the user's desk phone (baresip) first and
then the destination (a provider trunk), the notice shows the states, an excluded site gets no links."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from e2e.test_click_to_call_desk_phone import register_phone
from e2e.test_clicked_forms_reach_the_trunk import FakeProvider
from support.fixtures import BaresipFactory
from support.ports import free_port
from support.server import Api, ServerProcess
from web.conftest import BASE_FLAGS, CHROMIUM

pytestmark = [pytest.mark.sip, pytest.mark.browser, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "extension"
BUILT = EXTENSION / "dist" / "callto"
PAGE = """<!doctype html><meta charset=utf-8><title>supplier</title>
<style>body { font: 16px/20px sans-serif; margin: 20px; } #fixed { width: 420px; }</style>
<div id=fixed>Call our office at +39 0721 405516 or the shop on 0721 405517, or (0721) 40.55.18 any day;
fax 0721-405520. Order 12345 shipped 2026-11-30.</div>
<p>Or write to <a id=tel href="tel:+390721405519">our helpdesk</a>.</p>"""


@pytest.fixture(scope="module")
def extension_dir() -> Path:
    sources = [p for p in EXTENSION.rglob("*") if p.is_file() and "node_modules" not in p.parts
               and "dist" not in p.parts]
    manifest = BUILT / "manifest.json"
    if not manifest.is_file() or any(p.stat().st_mtime > manifest.stat().st_mtime for p in sources):
        if shutil.which("npm") is None:
            pytest.skip("the extension test needs Node.js and npm to build extension/ (apt-get install nodejs npm)")
        proc = subprocess.run(["sh", str(EXTENSION / "build.sh")], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            pytest.fail(f"extension/build.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    assert (EXTENSION / "dist" / "callto-extension.zip").is_file()
    return BUILT


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def pages() -> Iterator[dict[str, str]]:
    """The same supplier page on two sites: 127.0.0.1 (kept) and 127.0.0.2 (to be excluded)."""
    servers, urls = [], {}
    for host in ("127.0.0.1", "127.0.0.2"):
        port = free_port(host=host)
        server = ThreadingHTTPServer((host, port), _Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls[host] = f"http://{host}:{port}/supplier.html"
    yield urls
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
    yield proc
    proc.stop()


@pytest.fixture
def chromium_with_extension(extension_dir: Path, tmp_path: Path) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"the extension test needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    args = [*BASE_FLAGS, f"--disable-extensions-except={extension_dir}", f"--load-extension={extension_dir}",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE 127.0.0.2"]
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=False, args=args,
            ignore_default_args=["--disable-extensions"], locale="en-US", timeout=30_000,
        )
        ctx.set_default_timeout(10_000)
        try:
            yield ctx
        finally:
            ctx.close()


def _box(page: Any) -> dict[str, float]:
    return dict(page.locator("#fixed").bounding_box())


def test_extension_turns_page_numbers_into_calls_that_ring_the_desk_phone_first(
    sqlite_server: ServerProcess, chromium_with_extension: Any, pages: dict[str, str],
    baresip_factory: BaresipFactory, tone_440: Path,
) -> None:
    server, ctx = sqlite_server, chromium_with_extension
    provider = FakeProvider()
    try:
        admin = Api(server.url).login("admin", "admin-secret-1")
        r = admin.post("/api/v1/admin/trunks", json={"name": "provider", "host": "127.0.0.1", "port": provider.port})
        assert r.status_code == 201, r.text
        user = admin.create_user("dora", display_name="Dora Rossi", extension="701", outbound="international")
        desk = register_phone(baresip_factory, tone_440, server, admin.add_device(user["id"], "deskphone"), "dora")

        worker = ctx.service_workers[0] if ctx.service_workers else ctx.wait_for_event("serviceworker")
        extension_id = worker.url.split("/")[2]
        popup = ctx.new_page()
        popup.goto(f"chrome-extension://{extension_id}/popup.html")
        assert popup.inner_text("#signin-button") == "Sign in"
        popup.fill("input[name=server]", server.url)
        popup.fill("input[name=username]", "dora")
        popup.fill("input[name=password]", "password-123")
        popup.click("#signin-button")
        popup.wait_for_selector("#account:not([hidden])")
        assert popup.inner_text("#who") == "Signed in as Dora Rossi"
        popup.wait_for_selector("#device option", state="attached")
        assert "Desk phone" in popup.inner_text("#device option:checked")
        popup.fill("#excluded", "127.0.0.2")
        popup.click("#save")
        popup.wait_for_selector("#saved:not([hidden])")

        excluded = ctx.new_page()
        excluded.goto(pages["127.0.0.2"])
        excluded.wait_for_selector("html[data-callto-extension=excluded]", state="attached")
        assert excluded.locator(".callto-number").count() == 0
        plain_box = _box(excluded)

        page = ctx.new_page()
        page.goto(pages["127.0.0.1"])
        page.wait_for_selector("html[data-callto-extension=active]", state="attached")
        numbers = page.locator(".callto-number")
        assert numbers.all_inner_texts() == ["+39 0721 405516", "0721 405517", "(0721) 40.55.18", "0721-405520"]
        assert _box(page) == plain_box, "the page's own box moved or changed size"

        numbers.nth(1).click()
        desk.wait_incoming(timeout=10)
        page.wait_for_selector("#callto-notice[data-state=ringing]", state="attached")
        assert page.locator("#callto-notice .text").inner_text() == "Ringing…"
        assert provider.invites == [], "the destination is called only once the desk phone answers"
        desk.answer()
        deadline_calls = 100
        while not provider.invites and deadline_calls:
            page.wait_for_timeout(100)
            deadline_calls -= 1
        assert provider.users() == ["0721405517"]
        page.wait_for_selector("#callto-notice[data-state=ended]", state="attached")
        print("notice at the end:", page.locator("#callto-notice .text").inner_text())
        desk.wait_closed(timeout=10)

        page.click("#tel")
        desk.wait_incoming(timeout=10)
        page.wait_for_selector("#callto-notice[data-state=ringing]", state="attached")
        page.click("#callto-notice .hangup")
        desk.wait_closed(timeout=10)
        page.wait_for_selector("#callto-notice[data-state=ended]", state="attached")
        assert provider.users() == ["0721405517"], "the tel: call was hung up before its destination"
    finally:
        provider.close()
