"""The web CTI in a real browser against a real server: login (password, second factor, wrong
password), logout and session expiry, every screen reachable, language switch, admin pages,
graceful empty states for server features that are not there, microphone denied, responsive layout.
Screenshots of the main screens go to test-output/screenshots/.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
import pytest

from support.server import ADMIN_PASSWORD, Api, ServerProcess, start_server

from .conftest import launch, login, shot, wait_js

pytestmark = pytest.mark.browser

PASSWORD = "password-123"

SCREENS = [
    ("nav-phonebook", "/phonebook", "phonebook"),
    ("nav-history", "/history", "history"),
    ("nav-directory", "/directory", "directory"),
    ("nav-card", "/card", "customer-card"),
    ("nav-settings", "/settings", "settings"),
    ("nav-diagnostics", "/diagnostics", "diagnostics"),
    ("nav-admin-users", "/admin/users", "admin-users"),
    ("nav-admin-trunks", "/admin/trunks", "admin-trunks"),
    ("nav-admin-dialplan", "/admin/dialplan", "admin-dialplan"),
    ("nav-admin-c2c", "/admin/click-to-call", "admin-click-to-call"),
    ("nav-admin-sources", "/admin/card-sources", "admin-card-sources"),
    ("nav-admin-calls", "/admin/calls", "admin-all-calls"),
    ("nav-admin-phones", "/admin/phones", "admin-phones-list"),
]


_extensions = itertools.count(1000 + secrets.randbelow(8000))


def next_extension() -> str:
    return str(next(_extensions))


_NAMES = itertools.cycle(
    ["Anna Ferri", "Marco Gallo", "Sara Conti", "Luca Marino", "Elena Greco", "Paolo Rizzi", "Chiara Costa"]
)


def make_user(admin: Api, **fields: Any) -> dict[str, Any]:
    fields.setdefault("extension", next_extension())
    fields.setdefault("display_name", next(_NAMES))
    return admin.create_user(password=PASSWORD, **fields)


def test_login_shows_phonebook_with_user_name(admin: Api, new_page: Callable[..., Any]) -> None:
    user = make_user(admin, display_name="Anna Rossi")
    page = new_page()
    page.goto("/")
    page.wait_for_url("**/login")
    shot(page, "01-login")
    login(page, user["username"], PASSWORD)
    page.wait_for_url("**/phonebook")
    assert "Anna Rossi" in page.inner_text("[data-testid=who]")
    # The event stream comes up by itself once logged in.
    page.wait_for_selector("[data-testid=events-status][data-state=open]")


def test_wrong_password_says_so_and_stays_on_login(admin: Api, new_page: Callable[..., Any]) -> None:
    user = make_user(admin)
    page = new_page()
    page.goto("/login")
    page.fill("input[name=username]", user["username"])
    page.fill("input[name=password]", "not-the-password")
    page.click("[data-testid=login-submit]")
    alert = page.wait_for_selector("[role=alert][data-error=invalid-credentials]")
    assert "Wrong username or password" in alert.inner_text()
    shot(page, "02-login-wrong-password")
    assert page.url.endswith("/login")
    assert page.evaluate("localStorage.getItem('callto.token')") is None


def test_second_factor_field_appears_when_server_asks_for_it(
    web_server: ServerProcess, admin: Api, new_page: Callable[..., Any]
) -> None:
    user = make_user(admin)
    api = Api(web_server.url).login(user["username"], PASSWORD)
    setup = api.post("/api/v1/me/totp").json()
    totp = pyotp.TOTP(setup["secret"])
    assert api.post("/api/v1/me/totp/confirm", json={"otp": totp.now()}).status_code == 204
    api.close()

    page = new_page()
    page.goto("/login")
    page.fill("input[name=username]", user["username"])
    page.fill("input[name=password]", PASSWORD)
    assert page.query_selector("input[name=otp]") is None
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("input[name=otp]")
    shot(page, "03-login-second-factor")
    page.fill("input[name=otp]", totp.now())
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=nav]")


def test_link_to_a_screen_opens_it_after_login(admin: Api, new_page: Callable[..., Any]) -> None:
    user = make_user(admin)
    page = new_page()
    page.goto("/directory")
    page.wait_for_url("**/login")
    page.fill("input[name=username]", user["username"])
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_url("**/directory")
    assert page.get_attribute("[data-testid=nav-directory]", "aria-current") == "page"


def test_logout_returns_to_login_and_forgets_token(admin: Api, new_page: Callable[..., Any]) -> None:
    user = make_user(admin)
    page = new_page()
    login(page, user["username"], PASSWORD)
    page.click("[data-testid=logout]")
    page.wait_for_url("**/login")
    assert "signed out" in page.inner_text("[data-testid=login-notice]")
    assert page.evaluate("localStorage.getItem('callto.token')") is None
    page.reload()
    page.wait_for_selector("[data-testid=login-form]")


def test_revoked_session_sends_user_back_to_login_with_message(
    web_server: ServerProcess, admin: Api, new_page: Callable[..., Any]
) -> None:
    user = make_user(admin)
    page = new_page()
    login(page, user["username"], PASSWORD)
    token = page.evaluate("localStorage.getItem('callto.token')")
    # The server forgets this session (as after a logout elsewhere): it closes the page's event stream
    # with 4401 at once (revocation reaches open sessions), and the page goes back to login by itself.
    revoke = Api(web_server.url, token)
    assert revoke.post("/api/v1/auth/logout").status_code in (200, 204)
    revoke.close()
    page.wait_for_url("**/login", timeout=3000)
    notice = page.inner_text("[data-testid=login-notice]")
    assert "session has expired" in notice
    shot(page, "04-session-expired")


def test_session_expiry_time_reached_returns_to_login(tmp_path: Path, web_dist: Path, browser: Any) -> None:
    srv = start_server(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        CALLTO_WEB_DIR=str(web_dist),
        CALLTO_TOKEN_TTL_SECONDS="3",
    )
    ctx = browser.new_context(base_url=srv.url)
    try:
        page = ctx.new_page()
        login(page, "admin", ADMIN_PASSWORD)
        started = time.monotonic()
        page.wait_for_selector("[data-testid=login-notice]", timeout=8000)
        assert time.monotonic() - started < 6
        assert "session has expired" in page.inner_text("[data-testid=login-notice]")
    finally:
        ctx.close()
        srv.stop()


def test_admin_reaches_every_screen_from_navigation(admin: Api, new_page: Callable[..., Any]) -> None:
    page = new_page()
    login(page, "admin", ADMIN_PASSWORD)
    for i, (testid, path, name) in enumerate(SCREENS):
        page.click(f"[data-testid={testid}]")
        page.wait_for_url(f"**{path}")
        page.wait_for_selector("main.content h1")
        # Let the screen's request settle: content, an empty state or "not available" is shown.
        wait_js(page, "!document.querySelector('main.content')?.innerText.includes('Loading')")
        assert page.get_attribute(f"[data-testid={testid}]", "aria-current") == "page"
        shot(page, f"{10 + i:02d}-{name}")
        # A screen whose server feature is missing says so instead of failing.
        assert not page.query_selector("main.content [role=alert]"), page.inner_text("main.content")


def test_user_without_admin_role_sees_no_admin_pages(admin: Api, new_page: Callable[..., Any]) -> None:
    user = make_user(admin)
    page = new_page()
    login(page, user["username"], PASSWORD)
    assert page.query_selector("[data-testid=nav-admin-users]") is None
    page.goto("/admin/users")
    page.wait_for_selector("main.content")
    assert page.query_selector("[data-testid=users-table]") is None


def test_missing_server_feature_shows_not_available(admin: Api, new_page: Callable[..., Any]) -> None:
    page = new_page()
    login(page, "admin", ADMIN_PASSWORD)
    # An older server without call history: its 404 must read as "not available", not as an error.
    page.route(
        re.compile(r"/api/v1/history\b"),
        lambda route: route.fulfill(
            status=404,
            content_type="application/json",
            body='{"error":"not-found","message":"there is nothing at this address","details":{}}',
        ),
    )
    page.click("[data-testid=nav-history]")
    box = page.wait_for_selector("[data-testid=unavailable]")
    assert "Not available on this server" in box.inner_text()


def test_language_follows_browser_and_can_be_switched(admin: Api, new_page: Callable[..., Any]) -> None:
    page = new_page(locale="it-IT")
    page.goto("/login")
    assert "Accedi a callto" in page.inner_text("h1")
    login(page, "admin", ADMIN_PASSWORD)
    assert page.inner_text("[data-testid=nav-phonebook]") == "Rubrica"
    shot(page, "20-phonebook-italian")
    page.select_option("[data-testid=lang]", "en")
    wait_js(page, "document.querySelector('[data-testid=nav-phonebook]').innerText === 'Phonebook'")
    assert page.evaluate("document.documentElement.lang") == "en"
    page.reload()
    page.wait_for_selector("[data-testid=nav]")
    assert page.inner_text("[data-testid=nav-history]").startswith("History")


def test_admin_creates_user_and_gives_them_a_web_phone(admin: Api, new_page: Callable[..., Any]) -> None:
    username = f"web{secrets.token_hex(3)}"
    extension = next_extension()
    page = new_page()
    login(page, "admin", ADMIN_PASSWORD)
    page.click("[data-testid=nav-admin-users]")
    page.click("[data-testid=user-new]")
    form = page.wait_for_selector("[data-testid=user-form]")
    form.query_selector("input[name=username]").fill(username)  # type: ignore[union-attr]
    form.query_selector("input[name=display_name]").fill("Marco Bianchi")  # type: ignore[union-attr]
    form.query_selector("input[name=extension]").fill(extension)  # type: ignore[union-attr]
    form.query_selector("input[name=password]").fill(PASSWORD)  # type: ignore[union-attr]
    page.select_option("select[name=outbound]", "international")
    shot(page, "30-admin-new-user")
    page.click("[data-testid=user-save]")
    page.wait_for_selector(f"[data-testid=user-row][data-username={username}]")
    assert username in page.inner_text("[data-testid=admin-notice]")

    page.click(f"[data-testid=user-row][data-username={username}] a")
    page.wait_for_selector("[data-testid=device-list]", state="attached")
    page.select_option("[data-testid=device-kind]", "webphone")
    page.click("[data-testid=device-add]")
    page.wait_for_selector("[data-testid=device-row][data-kind=webphone]")
    # A desk phone configured by hand needs its SIP account: shown once, right after it is added.
    page.select_option("[data-testid=device-kind]", "deskphone")
    page.click("[data-testid=device-add]")
    page.wait_for_selector("[data-testid=device-row][data-kind=deskphone]")
    creds = page.inner_text("[data-testid=device-credentials]")
    shot(page, "31-admin-user-devices")

    users = admin.get("/api/v1/admin/users").json()
    created = next(u for u in users if u["username"] == username)
    assert created["display_name"] == "Marco Bianchi"
    assert created["extension"] == extension
    assert created["outbound"] == "international"
    devices = admin.get(f"/api/v1/admin/users/{created['id']}/devices").json()
    assert [d["kind"] for d in devices] == ["webphone", "deskphone"]
    assert devices[1]["sip"]["username"] in creds and devices[1]["sip"]["password"] in creds
    # ...and the new user can log in with what the admin typed.
    Api(admin.base_url).login(username, PASSWORD).close()


def test_admin_sees_duplicate_username_error_in_plain_words(admin: Api, new_page: Callable[..., Any]) -> None:
    existing = make_user(admin)
    page = new_page()
    login(page, "admin", ADMIN_PASSWORD)
    page.click("[data-testid=nav-admin-users]")
    page.click("[data-testid=user-new]")
    page.fill("[data-testid=user-form] input[name=username]", existing["username"])
    page.fill("[data-testid=user-form] input[name=password]", PASSWORD)
    page.click("[data-testid=user-save]")
    alert = page.wait_for_selector("[data-testid=user-form] [role=alert]")
    assert alert.inner_text().strip()
    assert page.query_selector("[data-testid=admin-notice]") is None


def test_admin_saves_the_dial_plan(admin: Api, new_page: Callable[..., Any]) -> None:
    before = admin.get("/api/v1/admin/settings/dialplan").json()
    page = new_page()
    login(page, "admin", ADMIN_PASSWORD)
    page.click("[data-testid=nav-admin-dialplan]")
    page.wait_for_selector("[data-testid=dialplan-form]")
    page.fill("input[name=outbound_prefix]", "0")
    page.fill("input[name=emergency]", "112, 113")
    shot(page, "32-admin-dialplan")
    page.click("[data-testid=dialplan-save]")
    page.wait_for_selector("[data-testid=dialplan-form] .ok-text")
    after = admin.get("/api/v1/admin/settings/dialplan").json()
    assert after["outbound_prefix"] == "0"
    assert after["emergency"] == ["112", "113"]
    assert after["country"] == before["country"]
    # Put it back: other tests in this module dial with the default plan.
    restore = {k: before[k] for k in ("country", "outbound_prefix", "international_prefix", "extension_pattern")}
    assert admin.put("/api/v1/admin/settings/dialplan", json={**restore, "emergency": before["emergency"]}).is_success


def test_main_device_and_dnd_are_saved_from_settings(admin: Api, new_page: Callable[..., Any]) -> None:
    user = make_user(admin)
    admin.add_device(user["id"], "deskphone")
    web = admin.add_device(user["id"], "webphone")
    page = new_page()
    login(page, user["username"], PASSWORD)
    page.click("[data-testid=nav-settings]")
    page.check(f"[data-testid=main-device] input[value='{web['id']}']")
    page.wait_for_selector("text=Saved")
    page.check("[data-testid=dnd]")
    wait_js(page, "document.querySelectorAll('.ok-text').length > 0")
    shot(page, "40-settings")
    api = Api(admin.base_url).login(user["username"], PASSWORD)
    me = api.get("/api/v1/me").json()
    api.close()
    assert me["main_device_id"] == web["id"]
    assert me["dnd"] is True


def test_event_stream_reconnects_after_a_blip_and_says_so(admin: Api, new_page: Callable[..., Any]) -> None:
    page = new_page()
    login(page, "admin", ADMIN_PASSWORD)
    page.wait_for_selector("[data-testid=events-status][data-state=open]")
    page.evaluate("window.__callto.events.simulateBlip()")
    page.wait_for_selector("[data-testid=reconnected]")
    page.wait_for_selector("[data-testid=events-status][data-state=open]")


def test_microphone_denied_shows_fix_and_places_no_call(
    web_server: ServerProcess, admin: Api, playwright_driver: Any, chromium_path: str
) -> None:
    user = make_user(admin)
    web = admin.add_device(user["id"], "webphone")
    api = Api(web_server.url).login(user["username"], PASSWORD)
    assert api.put("/api/v1/me/main-device", json={"device_id": web["id"]}).status_code in (200, 204)
    api.close()
    # A microphone exists, but the permission prompt is denied, as when a user clicks "Block".
    browser = launch(
        playwright_driver, extra=["--use-fake-device-for-media-stream", "--deny-permission-prompts"], fake_media=False
    )
    try:
        ctx = browser.new_context(base_url=web_server.url)
        page = ctx.new_page()
        call_requests: list[str] = []
        page.on("request", lambda r: call_requests.append(r.url) if "/api/v1/calls" in r.url else None)
        login(page, user["username"], PASSWORD)
        # The user types a number in the phonebook search and clicks "Call".
        page.fill("[data-testid=phonebook-search]", "0721405516")
        page.click("[data-testid=dial-typed] button.num")
        toast = page.wait_for_selector("[data-testid=call-progress][data-error=microphone-blocked]")
        text = toast.inner_text()
        assert "blocks the microphone" in text
        assert "allow the microphone" in text
        shot(page, "50-microphone-blocked")
        assert call_requests == []
        ctx.close()
    finally:
        browser.close()


def test_layout_fits_a_phone_screen(admin: Api, new_page: Callable[..., Any]) -> None:
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    login(page, "admin", ADMIN_PASSWORD)
    assert not page.is_visible("[data-testid=nav-history]")
    page.click(".menu-btn")
    page.wait_for_selector("[data-testid=nav-history]", state="visible")
    page.wait_for_timeout(350)  # the menu slides in
    shot(page, "60-mobile-menu")
    page.click("[data-testid=nav-settings]")
    page.wait_for_url("**/settings")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page is {width}px wide on a 390px screen"
    shot(page, "61-mobile-settings")


def test_an_invalid_number_is_explained_in_italian_with_the_field_value_and_reason(
    admin: Api, new_page: Callable[..., Any]
) -> None:
    """The server sends ids (``invalid-number``, the parser's ``reason``, the field, the value); the
    Italian screen words all of it (phonebook form, a click, the customer card), with no English left from
    the server's message."""
    user = make_user(admin)
    page = new_page(locale="it-IT")
    login(page, user["username"], PASSWORD)
    page.click("[data-testid=contact-add]")
    page.fill("[data-testid=contact-form] input[name=name]", "Mario Verdi")
    page.fill("[data-testid=contact-form] input[name=number-0]", "0721 4O5516")
    page.click("[data-testid=contact-save]")
    alert = page.wait_for_selector("[data-testid=contact-form] [role=alert][data-error=invalid-number]")
    assert alert
    text = alert.inner_text()
    assert "Questo non è un numero di telefono chiamabile." in text, text
    assert page.inner_text("[data-testid=contact-form] [data-testid=error-problem]") == (
        "Numero 1: «0721 4O5516»: contiene lettere; sono ammessi solo cifre, «+» e separatori."
    )
    assert not re.search(r"Value error|numbers\.0|not a phone|contains|letters", text), text
    shot(page, "21-invalid-number-italian")

    # A click on a typed number the server refuses: the box at the bottom says which and why.
    page.fill("[data-testid=phonebook-search]", "+999 1234")
    page.click("[data-testid=dial-typed] button.num")
    toast = page.wait_for_selector("[data-testid=call-progress][data-error=invalid-number] [data-testid=error-detail]")
    assert toast
    assert toast.inner_text() == "«+999 1234»: non esiste un paese con questo prefisso."

    # The customer card's look-up says the same, from the same reason id.
    page.click("[data-testid=nav-card]")
    page.fill("[data-testid=card-number]", "mario@example.com")
    page.press("[data-testid=card-number]", "Enter")
    detail = page.wait_for_selector("main.content [role=alert][data-error=invalid-number] [data-testid=error-detail]")
    assert detail
    assert detail.inner_text() == "«mario@example.com»: contiene «@»: qui si può chiamare solo un numero."


def test_alerts_and_language_follow_the_user_to_another_browser_and_change_live(
    admin: Api, new_page: Callable[..., Any]
) -> None:
    """The incoming-call pop-up and ring tone switches and the language are saved in the profile: a second
    browser opens with them, and a change there reaches the first one at once. A choice this browser had
    kept locally before moves into the profile on the first load."""
    user = make_user(admin)
    first = new_page()
    first.goto("/login")
    # Before profiles held it, the choice lived in this browser only.
    first.evaluate("localStorage.setItem('callto.prefs', JSON.stringify({incomingPopup: false}))")
    login(first, user["username"], PASSWORD)
    api = Api(admin.base_url).login(user["username"], PASSWORD)
    try:
        def saved_when(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
            deadline = time.monotonic() + 10
            while not check(prefs := api.get("/api/v1/me/preferences").json()):
                assert time.monotonic() < deadline, prefs
                first.wait_for_timeout(100)
            return prefs

        saved_when(lambda p: p["incoming_popup"] is False)
        first.click("[data-testid=nav-settings]")
        first.uncheck("[data-testid=ringtone]")
        first.wait_for_selector("[data-testid=alerts-saved]")
        first.select_option("[data-testid=lang]", "it")
        wait_js(first, "document.querySelector('[data-testid=nav-phonebook]').innerText === 'Rubrica'")
        saved = saved_when(lambda p: p["language"] == "it")
        assert (saved["incoming_popup"], saved["ringtone"]) == (False, False), saved

        # Another browser (English by its locale, nothing stored) opens in the profile's language and switches.
        second = new_page(locale="en-US")
        login(second, user["username"], PASSWORD)
        assert second.inner_text("[data-testid=nav-phonebook]") == "Rubrica"
        second.click("[data-testid=nav-settings]")
        assert not second.is_checked("[data-testid=incoming-popup]")
        assert not second.is_checked("[data-testid=ringtone]")
        shot(second, "41-settings-incoming-alerts")
        second.check("[data-testid=ringtone]")
        second.wait_for_selector("[data-testid=alerts-saved]")
        # ...and the first browser follows without a reload.
        wait_js(first, "document.querySelector('[data-testid=ringtone]').checked === true")
    finally:
        api.close()
