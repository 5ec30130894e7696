"""Devices -> Phones, the per-phone actions in Chromium against a real server (issue 14): reload (its
outcome in plain words), a one-time bootstrap URL (shown with its expiry), unassign and delete. Each
step is checked through the API as well as on the screen. No real phone is needed: a phone added by MAC
that never registered is enough, and the reload's outcome for it is "not registered".

Settings: the speaker a call rings on is chosen apart from the one the call itself plays on (and the
microphone), from the devices the browser lists (Chromium's fake ones here); the choice holds after a
reload.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.server import ADMIN_PASSWORD, Api

from .conftest import login, wait_js
from .test_web_ui import PASSWORD, make_user

pytestmark = pytest.mark.browser


def _phone(admin: Api, mac: str) -> dict[str, Any] | None:
    return next((p for p in admin.get("/api/v1/admin/phones").json() if p["mac"] == mac), None)


def test_admin_reloads_a_phone_gets_a_bootstrap_url_with_its_expiry_unassigns_and_deletes_it_in_the_phones_screen(
    admin: Api, new_page: Callable[..., Any]
) -> None:
    user = make_user(admin, display_name="Piero Banchi")
    mac = "805ec0" + secrets.token_hex(3)
    page = new_page()
    page.on("dialog", lambda d: d.accept())  # the delete asks for confirmation
    login(page, "admin", ADMIN_PASSWORD)
    page.click("[data-testid=nav-admin-phones]")
    page.wait_for_url("**/admin/phones")
    page.click("[data-testid=phone-new]")
    page.wait_for_selector("[data-testid=phone-form]")
    page.fill("[data-testid=phone-form] input[name=mac]", mac)
    page.wait_for_selector("[data-testid=phone-oui-hint]:has-text('Yealink')")
    page.select_option("[data-testid=phone-form] select[name=user]", str(user["id"]))
    page.click("[data-testid=phone-save]")
    row = f"[data-testid=phone-row][data-mac='{mac}']"
    page.wait_for_selector(f"{row} [data-testid=phone-user]:has-text('Piero Banchi')")
    details = f"[data-testid=phone-details][data-mac='{mac}']"
    page.wait_for_selector(details)
    phone = _phone(admin, mac)
    assert phone is not None and phone["user_id"] == user["id"] and phone["device_id"] is not None

    # Reload: the phone never registered, so the screen says so and what to do instead.
    page.click(f"{details} [data-testid=phone-reload]")
    message = page.wait_for_selector(f"{details} [data-testid=phone-message]").inner_text()
    assert "not registered" in message and "restart it by hand" in message, message
    assert admin.get(f"/api/v1/admin/phones/{phone['id']}").json()["last_reload_outcome"] == "not-registered"

    # A bootstrap URL valid for 2 hours: shown with when it stops working, the same the server says.
    page.fill(f"{details} input[name=hours]", "2")
    asked = datetime.now(UTC)
    page.click(f"{details} [data-testid=phone-bootstrap]")
    shown = page.wait_for_selector(f"{details} [data-testid=phone-bootstrap-url]")
    url = page.inner_text(f"{details} [data-testid=phone-bootstrap-url] code")
    out = admin.get(f"/api/v1/admin/phones/{phone['id']}").json()
    assert out["bootstrap_url"] == url and "/provisioning/" in url, (out, url)
    expires = datetime.fromisoformat(out["bootstrap_expires_at"].replace("Z", "+00:00"))
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    assert abs(expires - (asked + timedelta(hours=2))) < timedelta(minutes=1), (asked, expires)
    when = page.evaluate(
        "iso => new Intl.DateTimeFormat('en-GB', {dateStyle: 'short', timeStyle: 'medium'}).format(new Date(iso))",
        out["bootstrap_expires_at"],
    )
    assert f"works until {when}" in shown.inner_text(), (when, shown.inner_text())

    # Unassign: the screen shows it unassigned and the API agrees (no user, no SIP account).
    page.click(f"{details} [data-testid=phone-unassign]")
    page.wait_for_selector(f"{details} [data-testid=phone-message]:has-text('Unassigned')")
    page.wait_for_selector(f"{row} [data-testid=phone-user]:has-text('not assigned')")
    out = admin.get(f"/api/v1/admin/phones/{phone['id']}").json()
    assert out["user_id"] is None and out["device_id"] is None, out
    assert page.is_disabled(f"{details} [data-testid=phone-reload]")

    # Delete: gone from the list and from the API.
    page.click(f"{details} [data-testid=phone-delete]")
    page.wait_for_selector("[role=status]:has-text('deleted')")
    page.wait_for_selector(row, state="detached")
    assert _phone(admin, mac) is None
    assert admin.get(f"/api/v1/admin/phones/{phone['id']}").status_code == 404


def _options(page: Any, testid: str) -> list[str]:
    values: list[str] = page.eval_on_selector_all(
        f"[data-testid={testid}] option", "os => os.map(o => o.value).filter(v => v)"
    )
    return values


def test_settings_lets_the_user_choose_the_audio_devices_for_ringing_and_for_calls(
    admin: Api, new_page: Callable[..., Any]
) -> None:
    # conftest starts Chromium with --use-fake-device-for-media-stream and --use-fake-ui-for-media-stream:
    # the fake microphones and speakers are listed as a real computer's would be.
    user = make_user(admin)
    page = new_page()
    login(page, user["username"], PASSWORD)
    page.click("[data-testid=nav-settings]")
    page.wait_for_url("**/settings")
    # Chromium's fake speakers: "default" and two named ones (the same list for the ring and the call).
    wait_js(page, "document.querySelectorAll('[data-testid=audio-output] option').length > 3")
    outputs = [d for d in _options(page, "audio-output") if d != "default"]
    assert _options(page, "ring-output") == _options(page, "audio-output")
    inputs = [d for d in _options(page, "audio-input") if d != "default"]
    assert len(outputs) >= 2 and inputs, (outputs, inputs)
    # The ring goes to one speaker and the call to another: two separate choices.
    call, ring = outputs[0], outputs[1]
    page.select_option("[data-testid=audio-output]", call)
    page.select_option("[data-testid=ring-output]", ring)
    page.select_option("[data-testid=audio-input]", inputs[-1])

    page.reload()
    page.wait_for_selector("[data-testid=ring-output]")
    wait_js(page, "document.querySelectorAll('[data-testid=ring-output] option').length > 3")
    assert page.input_value("[data-testid=audio-output]") == call
    assert page.input_value("[data-testid=ring-output]") == ring
    assert page.input_value("[data-testid=audio-input]") == inputs[-1]
