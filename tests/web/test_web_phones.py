"""Devices -> Phones in Chromium against a real server and a real baresip: the administrator adds a desk
phone by MAC (the vendor comes from the MAC's OUI, the models from the catalog), assigns it, the phone
fetches its configuration from the URL the screen shows and registers with what the file says, the
screen shows it registered, and a click in the phonebook rings it.

baresip stands in for the Yealink (a real one cannot run here): the test fetches ``<mac>.cfg`` as a
Yealink does (its User-Agent, the provisioning URL read off the screen) and configures baresip with
exactly the account in that file, as tests/provisioning does.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioning.phone_formats import account
from support.baresip import Account, Baresip
from support.server import ADMIN_PASSWORD, Api, ServerProcess

from .conftest import login, shot
from .test_web_cti import add_shared_contact
from .test_web_ui import PASSWORD, make_user

pytestmark = pytest.mark.browser


def _admin_page(new_page: Callable[..., Any], **kw: Any) -> Any:
    page = new_page(**kw)
    page.on("dialog", lambda d: d.accept())
    login(page, "admin", ADMIN_PASSWORD)
    return page


@pytest.mark.timeout(90)
def test_admin_adds_a_phone_by_mac_it_registers_and_a_click_rings_it(
    web_server: ServerProcess,
    admin: Api,
    new_page: Callable[..., Any],
    baresip_factory: Callable[..., Baresip],
    tone_440: Path,
) -> None:
    if shutil.which("baresip") is None:
        print("baresip is not installed (Debian package baresip-core)")
        pytest.skip("baresip is not installed (Debian package baresip-core)")
    user = make_user(admin, display_name="Sara Fissi", outbound="international")
    mac = "805ec0" + secrets.token_hex(3)
    colon = ":".join(mac[i : i + 2] for i in range(0, 12, 2)).upper()
    page = _admin_page(new_page)
    page.click("[data-testid=nav-admin-phones]")
    page.wait_for_url("**/admin/phones")
    page.click("[data-testid=phone-new]")
    form = page.wait_for_selector("[data-testid=phone-form]")
    page.fill("[data-testid=phone-form] input[name=mac]", colon.replace(":", "-"))
    # 80:5E:C0 is Yealink's: the vendor is chosen by itself and its models come from the catalog.
    page.wait_for_selector("[data-testid=phone-oui-hint]:has-text('Yealink')")
    assert page.input_value("[data-testid=phone-form] select[name=vendor]") == "yealink"
    models = page.eval_on_selector_all(
        "[data-testid=phone-form] select[name=model] option", "os => os.map(o => o.value)"
    )
    assert "T46U" in models, models
    page.select_option("[data-testid=phone-form] select[name=model]", "T46U")
    shot(page, "29-admin-phone-add")
    page.click("[data-testid=phone-save]")
    row = f"[data-testid=phone-row][data-mac='{mac}']"
    page.wait_for_selector(row)
    assert form
    assert "not assigned" in page.inner_text(f"{row} [data-testid=phone-user]")
    assert "never" in page.inner_text(f"{row} [data-testid=phone-fetch]")

    # Assign it: the phone gets a SIP account (a desk phone device of the user).
    page.wait_for_selector(f"[data-testid=phone-details][data-mac='{mac}']")
    page.select_option("[data-testid=phone-details] select[name=assign]", str(user["id"]))
    page.wait_for_selector("[data-testid=phone-message]:has-text('Sara Fissi')")
    page.wait_for_selector(f"{row} [data-testid=phone-user]:has-text('Sara Fissi')")
    phone = next(p for p in admin.get("/api/v1/admin/phones").json() if p["mac"] == mac)
    assert phone["user_id"] == user["id"] and phone["device_id"] is not None
    # This phone only through the switch: baresip has no Yealink web server for phone_http.
    page.check("[data-testid=phone-order-custom]")
    page.uncheck("[data-testid=phone-strategy-on-phone_http]")
    page.uncheck("[data-testid=phone-strategy-on-lan_relay]")
    page.click("[data-testid=phone-order-save]")
    page.wait_for_selector("[data-testid=phone-order-saved]")
    assert admin.get(f"/api/v1/admin/phones/{phone['id']}").json()["strategies"] == ["originate"]

    # What a person would type into the phone: server, domain, a port per transport, account.
    panel = page.wait_for_selector("[data-testid=sip-account] [data-testid=sip-password]")
    assert panel
    shown_port = page.inner_text("[data-testid=sip-port-udp]")
    assert shown_port == str(web_server.sip_port)
    assert page.inner_text("[data-testid=sip-domain]") == web_server.env()["CALLTO_SIP_DOMAIN"]
    assert page.inner_text("[data-testid=sip-port-tcp]") == str(web_server.sip_port)
    url = page.inner_text("[data-testid=phone-provisioning-url]")

    # The phone fetches its file from the URL on screen, as a Yealink does, and registers with it.
    config = httpx.get(url + f"{mac}.cfg", headers={"User-Agent": f"Yealink SIP-T46U 108.86.0.20 {colon}"}, timeout=5)
    assert config.status_code == 200, config.text
    sip = account("yealink", config.text)
    assert sip["username"] == page.inner_text("[data-testid=sip-username]")
    assert sip["password"] == page.inner_text("[data-testid=sip-password]")
    desk = baresip_factory(
        "desk",
        tone_440,
        account=Account(
            aor=f"sip:{sip['username']}@{sip['server']}",
            password=sip["password"],
            auth_user=sip["auth"],
            outbound=f"sip:{sip['server']}:{sip['port']};transport=udp",
            regint=300,
            answermode="manual",
        ),
        answermode="manual",
    )
    desk.wait_registered(timeout=15)
    # The list updates by itself: registered from 127.0.0.1, the fetch and the firmware from the User-Agent.
    page.wait_for_selector(f"{row}[data-registered=true]", timeout=15_000)
    assert "127.0.0.1" in page.inner_text(f"{row} [data-testid=phone-registration]")
    assert "never" not in page.inner_text(f"{row} [data-testid=phone-fetch]")
    assert "108.86.0.20" in page.inner_text(row)
    page.locator("h1").scroll_into_view_if_needed()
    shot(page, "28-admin-phones")

    # Reachable from the user's devices too.
    page.goto(f"/admin/users/{user['id']}")
    page.click("[data-testid=device-phone-link]")
    page.wait_for_selector(f"[data-testid=phone-details][data-mac='{mac}']")

    # The user clicks a number in the phonebook: the provisioned phone (the main device) rings.
    add_shared_contact(admin, "Ufficio Protocollo", "Comune di Pesaro", ("work", "+39 0721 387111"))
    me = new_page()
    login(me, user["username"], PASSWORD)
    me.fill("[data-testid=phonebook-search]", "Ufficio Protocollo")
    me.click("[data-testid=contact]:has-text('Ufficio Protocollo') button.num")
    toast = me.wait_for_selector("[data-testid=call-progress]:not([data-state=requesting])")
    assert toast.get_attribute("data-state") != "error", toast.inner_text()
    desk.wait_incoming(timeout=10)
    desk.hangup()
