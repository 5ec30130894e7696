"""The extension's popup and notice in Debian's Chromium against a real server: a user with a second
factor signs in with its code, the popup's device list switches the user's main device on the server,
a click whose call the server refuses says why in the page's notice (in the browser's language, from the
server's stable error id, not its English message), and the extension's texts exist in Italian and
English (the same keys) and the popup speaks Italian in an Italian browser."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyotp
import pytest

from support.ports import free_port
from support.server import Api, ServerProcess
from web.conftest import BASE_FLAGS, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

LOCALES = Path(__file__).resolve().parents[2] / "extension" / "static" / "_locales"
PAGE = b"""<!doctype html><meta charset=utf-8><title>supplier</title>
<p>Call our office at <span id=n>0721 405516</span> any day.</p>"""


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
    yield f"http://127.0.0.1:{port}/supplier.html"
    server.shutdown()
    server.server_close()


def _open_popup(ctx: Any) -> Any:
    worker = ctx.service_workers[0] if ctx.service_workers else ctx.wait_for_event("serviceworker")
    popup = ctx.new_page()
    popup.goto(f"chrome-extension://{worker.url.split('/')[2]}/popup.html")
    popup.wait_for_selector("#signin:not([hidden])")
    return popup


def _sign_in(popup: Any, server: ServerProcess, username: str, otp: str = "") -> None:
    popup.fill("input[name=server]", server.url)
    popup.fill("input[name=username]", username)
    popup.fill("input[name=password]", "password-123")
    popup.fill("input[name=otp]", otp)
    popup.click("#signin-button")


def test_popup_sign_in_asks_for_the_second_factor_and_accepts_it(
    sqlite_server: ServerProcess, chromium_with_extension: Any,
) -> None:
    server, ctx = sqlite_server, chromium_with_extension
    admin = Api(server.url).login("admin", "admin-secret-1")
    admin.create_user("gino", display_name="Gino Verdi")
    gino = Api(server.url).login("gino", "password-123")
    totp = pyotp.TOTP(gino.post("/api/v1/me/totp").json()["secret"])
    assert gino.post("/api/v1/me/totp/confirm", json={"otp": totp.now()}).status_code == 204

    popup = _open_popup(ctx)
    _sign_in(popup, server, "gino")
    popup.wait_for_selector("#error:not([hidden])")
    asked = popup.inner_text("#error")
    assert asked.strip(), "the popup says why the sign-in stopped"
    assert popup.is_hidden("#account") and popup.is_visible("input[name=otp]")

    _sign_in(popup, server, "gino", otp=totp.now())
    popup.wait_for_selector("#account:not([hidden])")
    assert popup.inner_text("#who") == "Signed in as Gino Verdi"
    assert popup.is_hidden("#error")
    print("asked with:", asked)


def test_popup_switches_the_main_device(sqlite_server: ServerProcess, chromium_with_extension: Any) -> None:
    server, ctx = sqlite_server, chromium_with_extension
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = admin.create_user("lia", display_name="Lia Neri")
    web = admin.add_device(user["id"], "webphone")
    desk = admin.add_device(user["id"], "deskphone")
    lia = Api(server.url).login("lia", "password-123")
    main = lia.get("/api/v1/me").json()["main_device_id"]
    assert main in (web["id"], desk["id"])
    other = desk["id"] if main == web["id"] else web["id"]

    popup = _open_popup(ctx)
    _sign_in(popup, server, "lia")
    popup.wait_for_selector("#account:not([hidden])")
    popup.wait_for_selector("#device option", state="attached")
    assert popup.locator("#device option").count() == 2
    assert popup.eval_on_selector("#device", "s => s.value") == str(main), "the popup shows the main device"

    popup.select_option("#device", str(other))
    deadline = 50
    while lia.get("/api/v1/me").json()["main_device_id"] != other and deadline:
        popup.wait_for_timeout(100)
        deadline -= 1
    assert lia.get("/api/v1/me").json()["main_device_id"] == other
    assert popup.is_hidden("#error")

    popup.reload()  # a popup opened again shows the new main device
    popup.wait_for_selector("#device option", state="attached")
    assert popup.eval_on_selector("#device", "s => s.value") == str(other)


def test_a_failed_click_shows_why_in_the_notice(
    sqlite_server: ServerProcess, chromium_with_extension: Any, page_url: str,
) -> None:
    server, ctx = sqlite_server, chromium_with_extension
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = admin.create_user("ugo", display_name="Ugo Sala", outbound="national")
    admin.add_device(user["id"], "webphone")  # its main device, with no web phone session: offline
    refused = Api(server.url).login("ugo", "password-123").post(
        "/api/v1/calls", json={"to": "0721405516"}, headers={"Idempotency-Key": "probe-1"})
    assert refused.status_code == 409 and refused.json()["error"] == "device-offline", refused.text

    popup = _open_popup(ctx)
    _sign_in(popup, server, "ugo")
    popup.wait_for_selector("#account:not([hidden])")
    popup.close()

    page = ctx.new_page()
    page.goto(page_url)
    page.wait_for_selector("html[data-callto-extension=active]", state="attached")
    page.locator(".callto-number").first.click()
    page.wait_for_selector("#callto-notice[data-state=failed]", state="attached")
    text = page.locator("#callto-notice .text").inner_text()
    assert text == "The call failed: Your phone is offline."
    assert "{" not in text and "device-offline" not in text, "plain words, not the server's id or JSON"
    assert page.locator("#callto-notice .hangup").is_hidden()


def test_a_refusal_is_worded_in_italian_in_an_italian_browser(
    extension_dir: Path, sqlite_server: ServerProcess, page_url: str, tmp_path: Path,
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    it = json.loads((LOCALES / "it" / "messages.json").read_text(encoding="utf-8"))
    server = sqlite_server
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = admin.create_user("ada", display_name="Ada Riva")
    admin.add_device(user["id"], "webphone")  # its main device, with no web phone session: offline
    args = [*BASE_FLAGS, f"--disable-extensions-except={extension_dir}", f"--load-extension={extension_dir}",
            "--lang=it"]
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile-it"), executable_path=CHROMIUM, headless=False, args=args,
            ignore_default_args=["--disable-extensions"], locale="it-IT", timeout=30_000,
            env={"LANGUAGE": "it", "LANG": "it_IT.UTF-8"},
        )
        ctx.set_default_timeout(10_000)
        try:
            popup = _open_popup(ctx)
            popup.fill("input[name=server]", server.url)
            popup.fill("input[name=username]", "ada")
            popup.fill("input[name=password]", "wrong-password")
            popup.click("#signin-button")
            popup.wait_for_selector("#error:not([hidden])")
            assert popup.inner_text("#error") == "Nome utente o password errati."
            _sign_in(popup, server, "ada")
            popup.wait_for_selector("#account:not([hidden])")
            popup.close()

            page = ctx.new_page()
            page.goto(page_url)
            page.wait_for_selector("html[data-callto-extension=active]", state="attached")
            page.locator(".callto-number").first.click()
            page.wait_for_selector("#callto-notice[data-state=failed]", state="attached")
            text = page.locator("#callto-notice .text").inner_text()
            assert text == "La chiamata non è riuscita: Il tuo telefono non è connesso."
            assert text == it["stateFailed"]["message"].replace("$REASON$", it["err_device_offline"]["message"])
        finally:
            ctx.close()


def test_the_extension_speaks_italian_and_english_with_the_same_keys(
    extension_dir: Path, sqlite_server: ServerProcess, tmp_path: Path,
) -> None:
    en = json.loads((LOCALES / "en" / "messages.json").read_text(encoding="utf-8"))
    it = json.loads((LOCALES / "it" / "messages.json").read_text(encoding="utf-8"))
    assert sorted(it) == sorted(en)
    for key in en:
        assert sorted(it[key].get("placeholders", {})) == sorted(en[key].get("placeholders", {})), key
        assert it[key]["message"].strip(), key
    built = json.loads((extension_dir / "_locales" / "it" / "messages.json").read_text(encoding="utf-8"))
    assert built == it, "the built extension carries the Italian texts"

    if not Path(CHROMIUM).exists():
        pytest.skip(f"the popup half needs Debian's Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    args = [*BASE_FLAGS, f"--disable-extensions-except={extension_dir}", f"--load-extension={extension_dir}",
            "--lang=it"]
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile-it"), executable_path=CHROMIUM, headless=False, args=args,
            ignore_default_args=["--disable-extensions"], locale="it-IT", timeout=30_000,
            env={"LANGUAGE": "it", "LANG": "it_IT.UTF-8"},
        )
        ctx.set_default_timeout(10_000)
        try:
            popup = _open_popup(ctx)
            assert popup.eval_on_selector("html", "h => h.lang") == "it"
            assert popup.inner_text("#signin-button") == it["signIn"]["message"]
            labels = popup.locator("#signin label span").all_inner_texts()
            assert labels == [it[k]["message"] for k in ("server", "username", "password", "otp")]
            assert labels != [en[k]["message"] for k in ("server", "username", "password", "otp")]
            Api(server_url := sqlite_server.url).login("admin", "admin-secret-1").create_user(
                "rita", display_name="Rita Blu")
            popup.fill("input[name=server]", server_url)
            popup.fill("input[name=username]", "rita")
            popup.fill("input[name=password]", "password-123")
            popup.click("#signin-button")
            popup.wait_for_selector("#account:not([hidden])")
            who = it["signedInAs"]["message"].replace("$NAME$", "Rita Blu")
            assert popup.inner_text("#who") == who
            assert popup.inner_text("#save") == it["save"]["message"]
        finally:
            ctx.close()
