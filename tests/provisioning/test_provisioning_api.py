"""Desk phone provisioning end to end against a real server (SQLite and PostgreSQL): the admin API,
the files phones fetch with and without their token, the fetch log, the directory feed, bootstrap
tokens, reload without a switch, and click-to-call reaching the provisioned phone's web server."""

from __future__ import annotations

import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from phone_formats import account

from support.fake_phones import FakeYealinkPhone
from support.server import Api, ServerProcess


@dataclass(frozen=True)
class Kind:
    vendor: str
    model: str
    oui: str
    firmware: str

    def mac(self) -> str:
        return (self.oui + secrets.token_hex(6))[:12]

    def file(self, mac: str) -> str:
        return {
            "yealink": f"{mac}.cfg",
            "snom": f"snom{self.model}-{mac.upper()}.htm",
            "fanvil": f"{mac}.cfg",
            "gigaset": f"{mac}.xml",
            "grandstream": f"cfg{mac}.xml",
        }[self.vendor]

    def user_agent(self, mac: str) -> str:
        colon = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
        return {
            "yealink": f"Yealink SIP-{self.model} {self.firmware} {colon}",
            "snom": f"Mozilla/4.0 (compatible; snom{self.model}-SIP {self.firmware})",
            "fanvil": f"Fanvil {self.model} {self.firmware}",
            "gigaset": f"Gigaset {self.model}/{self.firmware}",
            "grandstream": f"Grandstream Model HW {self.model} SW {self.firmware} DevId {mac}",
        }[self.vendor]


KINDS = [
    Kind("yealink", "T54W", "805ec0", "96.85.0.5"),
    Kind("snom", "D785", "00041301", "10.1.33.33"),
    Kind("fanvil", "X4U", "0c383e", "2.12.1"),
    Kind("gigaset", "Maxwell3", "7c2f80", "2.20.1"),
    Kind("grandstream", "GRP2614", "c074ad", "1.0.5.33"),
]
YEALINK = KINDS[0]


def _error(r: httpx.Response) -> str:
    body = r.json()
    assert set(body) == {"error", "message", "details"}, body
    return str(body["error"])


def _add(admin_api: Api, kind: Kind, user_id: int | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"mac": kind.mac(), "model": kind.model, "vendor": kind.vendor, **extra}
    if user_id is not None:
        body["user_id"] = user_id
    r = admin_api.post("/api/v1/admin/phones", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _sip(admin_api: Api, device_id: int) -> dict[str, str]:
    r = admin_api.get(f"/api/v1/admin/devices/{device_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["sip"])


def _fetch(url: str, user_agent: str, **kw: Any) -> httpx.Response:
    return httpx.get(url, headers={"User-Agent": user_agent}, timeout=10, **kw)


def test_admin_adds_phone_by_mac_in_every_accepted_spelling_and_vendor_is_suggested(admin_api: Api) -> None:
    suffix = secrets.token_hex(3)
    pairs = [suffix[i : i + 2] for i in range(0, 6, 2)]
    spellings = [
        ("80:5E:C0:" + ":".join(pairs).upper(), "T54W", "yealink"),
        ("1c-71-26-" + "-".join(pairs), "D385", "snom"),
        ("c074ad" + suffix, "GRP2612", "grandstream"),
    ]
    for mac, model, vendor in spellings:
        r = admin_api.post("/api/v1/admin/phones", json={"mac": mac, "model": model})
        assert r.status_code == 201, r.text
        phone = r.json()
        assert phone["vendor"] == vendor
        assert phone["mac"] == mac.replace(":", "").replace("-", "").lower()
        assert phone["user_id"] is None and phone["device_id"] is None
        assert phone["provisioning_url"].startswith("http://127.0.0.1:")
        assert phone["provisioning_url"].endswith("/") and "/provisioning/" in phone["provisioning_url"]
        assert phone["registration"] == {"registered": False, "address": None, "user_agent": None, "since": None}
    r = admin_api.get("/api/v1/admin/phone-models/suggest", params={"mac": "00-15-65-12-34-56"})
    assert r.json() == {"mac": "001565123456", "vendor": "yealink", "candidates": ["yealink"]}
    r = admin_api.get("/api/v1/admin/phone-models/suggest", params={"mac": "00:04:13:E2:00:01"})
    assert r.json()["vendor"] == "gigaset", "Gigaset's sub-block of Snom's OUI must win"


def test_bad_mac_is_refused_clearly(admin_api: Api) -> None:
    for bad in ("00:15:65:AA:BB", "0015.65aa.bbcc", "00:15-65:aa:bb:cc", "zz1565aabbcc", "01:00:5e:00:00:01"):
        r = admin_api.post("/api/v1/admin/phones", json={"mac": bad, "model": "T54W", "vendor": "yealink"})
        assert r.status_code == 422, (bad, r.text)
        assert _error(r) == "invalid-mac"
        assert "00:15:65:AA:BB:CC" in r.json()["message"] or "multicast" in r.json()["message"]
    r = admin_api.get("/api/v1/admin/phone-models/suggest", params={"mac": "nonsense"})
    assert r.status_code == 422 and _error(r) == "invalid-mac"


def test_duplicate_mac_is_refused_in_any_spelling(admin_api: Api) -> None:
    phone = _add(admin_api, YEALINK)
    mac = phone["mac"]
    dashed = "-".join(mac[i : i + 2] for i in range(0, 12, 2)).upper()
    r = admin_api.post("/api/v1/admin/phones", json={"mac": dashed, "model": "T33G"})
    assert r.status_code == 409 and _error(r) == "mac-taken"
    other = _add(admin_api, YEALINK)
    r = admin_api.patch(f"/api/v1/admin/phones/{other['id']}", json={"mac": dashed})
    assert r.status_code == 409 and _error(r) == "mac-taken"


def test_unknown_oui_or_model_asks_for_a_better_choice(admin_api: Api) -> None:
    mac = "02" + secrets.token_hex(5)
    r = admin_api.post("/api/v1/admin/phones", json={"mac": mac, "model": "T54W"})
    assert r.status_code == 422 and _error(r) == "vendor-unknown"
    r = admin_api.post("/api/v1/admin/phones", json={"mac": mac, "model": "T99X", "vendor": "yealink"})
    assert r.status_code == 422 and _error(r) == "unknown-model"
    r = admin_api.post("/api/v1/admin/phones", json={"mac": mac, "model": "t54w", "vendor": "Yealink"})
    assert r.status_code == 201 and r.json()["model"] == "T54W" and r.json()["vendor"] == "yealink"


def test_phone_models_serve_the_catalog_to_admins_only(admin_api: Api, anon_api: Api) -> None:
    r = admin_api.get("/api/v1/admin/phone-models")
    assert r.status_code == 200
    vendors = {v["id"]: v for v in r.json()}
    assert {"yealink", "snom", "fanvil", "gigaset", "grandstream"} <= set(vendors)
    assert any(m["id"] == "T54W" and m["line_keys"] > 0 for m in vendors["yealink"]["models"])
    assert "call" in vendors["yealink"]["actions"]
    assert anon_api.get("/api/v1/admin/phone-models").status_code == 401
    assert anon_api.get("/api/v1/admin/phones").status_code == 401
    user = admin_api.create_user()
    me = anon_api.login(user["username"], "password-123")
    try:
        assert me.get("/api/v1/admin/phones").status_code == 403
    finally:
        me.close()


@pytest.mark.parametrize("kind", KINDS, ids=[k.vendor for k in KINDS])
def test_each_vendor_gets_its_account_and_secrets_only_behind_the_token(admin_api: Api, kind: Kind) -> None:
    user = admin_api.create_user(display_name="Anna Rossi")
    phone = _add(admin_api, kind, user["id"])
    assert phone["user_id"] == user["id"] and phone["device_id"]
    sip = _sip(admin_api, phone["device_id"])
    mac = phone["mac"]
    r = _fetch(phone["provisioning_url"] + kind.file(mac), kind.user_agent(mac))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    found = account(kind.vendor, r.text)
    assert (found["username"], found["auth"], found["password"]) == (sip["username"], sip["username"], sip["password"])
    assert found["server"] == "127.0.0.1"
    token = phone["provisioning_url"].rstrip("/").rsplit("/", 1)[1]
    if "provisioning_url" in found:
        assert found["provisioning_url"] == phone["provisioning_url"]
    if "admin_password" in found:
        assert len(found["admin_password"]) >= 16

    # The same phone without its token (e.g. DHCP option 66 pointing at callto): no secret at all.
    base = phone["provisioning_url"].split("/provisioning/")[0]
    r = _fetch(f"{base}/provisioning/{kind.file(mac)}", kind.user_agent(mac))
    assert r.status_code == 200, r.text
    bare = account(kind.vendor, r.text)
    assert bare["username"] == sip["username"]
    assert bare["password"] == "" and bare.get("admin_password", "") == ""
    assert sip["password"] not in r.text and token not in r.text

    # Over HTTPS too (the server's self-signed certificate).
    r = _fetch(phone["provisioning_url_https"] + kind.file(mac), kind.user_agent(mac), verify=False)
    assert r.status_code == 200 and sip["password"] in r.text

    listed = admin_api.get(f"/api/v1/admin/phones/{phone['id']}").json()
    assert listed["last_fetch_ip"] == "127.0.0.1"
    assert listed["last_user_agent"] == kind.user_agent(mac)
    assert listed["firmware"] == kind.firmware
    assert listed["last_file"] == kind.file(mac)
    fetches = admin_api.get(f"/api/v1/admin/phones/{phone['id']}/fetches").json()
    assert [f["via"] for f in fetches] == ["token", "tokenless", "token"]
    assert all(f["ip"] == "127.0.0.1" and f["status"] == 200 for f in fetches)


def test_yealink_common_file_and_model_file_carry_no_secret(admin_api: Api) -> None:
    user = admin_api.create_user()
    phone = _add(admin_api, YEALINK, user["id"])
    sip = _sip(admin_api, phone["device_id"])
    mac = phone["mac"]
    r = _fetch(phone["provisioning_url"] + "y000000000089.cfg", YEALINK.user_agent(mac))
    assert r.status_code == 200 and sip["password"] not in r.text and "lang.gui" in r.text
    snom = _add(admin_api, KINDS[1], user_id=None)
    r = _fetch(snom["provisioning_url"] + "snomD785.htm", KINDS[1].user_agent(snom["mac"]))
    assert r.status_code == 404, "an unassigned phone has no account, so nothing is served"


def test_one_phones_token_never_serves_another_phones_file(admin_api: Api) -> None:
    user = admin_api.create_user()
    mine = _add(admin_api, YEALINK, user["id"])
    other_user = admin_api.create_user()
    theirs = _add(admin_api, YEALINK, other_user["id"])
    r = _fetch(mine["provisioning_url"] + f"{theirs['mac']}.cfg", YEALINK.user_agent(mine["mac"]))
    assert r.status_code == 404
    r = _fetch(mine["provisioning_url"] + f"cfg{theirs['mac']}.xml", YEALINK.user_agent(mine["mac"]))
    assert r.status_code == 404, "a file of another vendor's naming is not this phone's either"


def test_assigning_creates_a_deskphone_device_and_unassigning_revokes_it(admin_api: Api) -> None:
    user = admin_api.create_user(extension=str(2000 + secrets.randbelow(7000)))
    phone = _add(admin_api, YEALINK)
    r = admin_api.patch(f"/api/v1/admin/phones/{phone['id']}", json={"user_id": user["id"]})
    assert r.status_code == 200, r.text
    device_id = r.json()["device_id"]
    devices = admin_api.get(f"/api/v1/admin/users/{user['id']}/devices").json()
    assert [(d["id"], d["kind"]) for d in devices] == [(device_id, "deskphone")]
    assert devices[0]["label"] == "Yealink T54W"
    config = _fetch(phone["provisioning_url"] + f"{phone['mac']}.cfg", YEALINK.user_agent(phone["mac"]))
    assert config.status_code == 200
    old = _sip(admin_api, device_id)

    r = admin_api.patch(f"/api/v1/admin/phones/{phone['id']}", json={"user_id": None})
    assert r.status_code == 200 and r.json()["user_id"] is None and r.json()["device_id"] is None
    assert admin_api.get(f"/api/v1/admin/devices/{device_id}").status_code == 404
    assert admin_api.get(f"/api/v1/admin/users/{user['id']}/devices").json() == []
    r = _fetch(phone["provisioning_url"] + f"{phone['mac']}.cfg", YEALINK.user_agent(phone["mac"]))
    assert r.status_code == 404 and old["password"] not in r.text

    # Reassigning gives a fresh SIP account: the old credentials never come back.
    r = admin_api.patch(f"/api/v1/admin/phones/{phone['id']}", json={"user_id": user["id"]})
    fresh = _sip(admin_api, r.json()["device_id"])
    assert fresh["username"] != old["username"] and fresh["password"] != old["password"]


def test_existing_deskphone_device_can_be_linked(admin_api: Api) -> None:
    user = admin_api.create_user()
    device = admin_api.add_device(user["id"], "deskphone")
    web = admin_api.add_device(user["id"], "webphone")
    r = admin_api.post(
        "/api/v1/admin/phones",
        json={"mac": YEALINK.mac(), "model": "T46U", "user_id": user["id"], "device_id": web["id"]},
    )
    assert r.status_code == 409 and _error(r) == "device-not-usable"
    phone = _add(admin_api, YEALINK, user["id"], device_id=device["id"])
    assert phone["device_id"] == device["id"]
    r = admin_api.post("/api/v1/admin/phones", json={"mac": YEALINK.mac(), "model": "T46U", "device_id": device["id"]})
    assert r.status_code == 409 and _error(r) == "device-not-usable"
    text = _fetch(phone["provisioning_url"] + f"{phone['mac']}.cfg", YEALINK.user_agent(phone["mac"])).text
    assert account("yealink", text)["username"] == device["sip"]["username"]


def test_removing_a_phone_deletes_its_device_and_removing_a_user_unassigns_the_phone(admin_api: Api) -> None:
    user = admin_api.create_user()
    phone = _add(admin_api, YEALINK, user["id"])
    assert admin_api.delete(f"/api/v1/admin/phones/{phone['id']}").status_code == 204
    assert admin_api.get(f"/api/v1/admin/devices/{phone['device_id']}").status_code == 404
    assert admin_api.get(f"/api/v1/admin/phones/{phone['id']}").status_code == 404
    other = admin_api.create_user()
    kept = _add(admin_api, YEALINK, other["id"])
    assert admin_api.delete(f"/api/v1/admin/users/{other['id']}").status_code == 204
    after = admin_api.get(f"/api/v1/admin/phones/{kept['id']}").json()
    assert after["user_id"] is None and after["device_id"] is None


def test_bootstrap_url_works_until_the_phone_uses_its_own_token(admin_api: Api) -> None:
    user = admin_api.create_user()
    phone = _add(admin_api, YEALINK, user["id"], bootstrap=True)
    assert phone["bootstrap_url"] and phone["bootstrap_url"] != phone["provisioning_url"]
    ua = YEALINK.user_agent(phone["mac"])
    name = f"{phone['mac']}.cfg"
    first = _fetch(phone["bootstrap_url"] + name, ua)
    assert first.status_code == 200
    assert account("yealink", first.text)["provisioning_url"] == phone["provisioning_url"], (
        "the bootstrap config moves the phone to its own token"
    )
    assert _fetch(phone["bootstrap_url"] + "y000000000089.cfg", ua).status_code == 200, "one boot, several files"
    assert _fetch(phone["provisioning_url"] + name, ua).status_code == 200
    assert _fetch(phone["bootstrap_url"] + name, ua).status_code == 404
    assert admin_api.get(f"/api/v1/admin/phones/{phone['id']}").json()["bootstrap_url"] is None
    r = admin_api.post(f"/api/v1/admin/phones/{phone['id']}/bootstrap", json={"hours": 2})
    assert r.status_code == 200 and r.json()["bootstrap_url"] != phone["bootstrap_url"]
    assert _fetch(r.json()["bootstrap_url"] + name, ua).status_code == 200


def test_rotating_the_token_stops_the_old_url(admin_api: Api) -> None:
    user = admin_api.create_user()
    phone = _add(admin_api, YEALINK, user["id"])
    r = admin_api.patch(f"/api/v1/admin/phones/{phone['id']}", json={"rotate_token": True})
    assert r.status_code == 200 and r.json()["provisioning_url"] != phone["provisioning_url"]
    name, ua = f"{phone['mac']}.cfg", YEALINK.user_agent(phone["mac"])
    assert _fetch(phone["provisioning_url"] + name, ua).status_code == 404
    assert _fetch(r.json()["provisioning_url"] + name, ua).status_code == 200


def test_directory_feed_lists_colleagues_in_the_vendors_format(admin_api: Api) -> None:
    ext = str(3000 + secrets.randbelow(6000))
    colleague = admin_api.create_user(display_name="Bruno <Bianchi> & Co", extension=ext)
    user = admin_api.create_user()
    company = f"Acme {secrets.token_hex(3)}"
    shared = {"name": company, "numbers": [{"type": "work", "number": "+39 0721 405516"}], "shared": True}
    r = admin_api.post("/api/v1/phonebook", json=shared)
    if r.status_code == 404:
        print("the phonebook is not installed in this server: the feed has company users only")
        company = ""
    else:
        assert r.status_code == 201, r.text
    yealink = _add(admin_api, YEALINK, user["id"])
    r = _fetch(yealink["provisioning_url"] + "phonebook.xml", YEALINK.user_agent(yealink["mac"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "YealinkIPPhoneDirectory"
    entries = {(e.findtext("Name"), e.findtext("Telephone")) for e in root.iter("DirectoryEntry")}
    assert (colleague["display_name"], ext) in entries
    if company:
        assert any(name == company and number for name, number in entries), "shared phonebook contacts too"
    config = _fetch(yealink["provisioning_url"] + f"{yealink['mac']}.cfg", YEALINK.user_agent(yealink["mac"])).text
    assert account("yealink", config)["phonebook_url"] == yealink["provisioning_url"] + "phonebook.xml"
    grandstream = _add(admin_api, KINDS[4], user["id"])
    root = ET.fromstring(_fetch(grandstream["provisioning_url"] + "phonebook.xml", "x").content)
    assert root.tag == "AddressBook"
    numbers = [c.findtext("Phone/phonenumber") for c in root.iter("Contact")]
    assert ext in numbers
    base = yealink["provisioning_url"].split("/provisioning/")[0]
    assert _fetch(f"{base}/provisioning/phonebook.xml", "x").status_code == 404, "no feed without a token"


def test_reload_of_a_phone_that_is_not_registered_is_recorded(admin_api: Api) -> None:
    user = admin_api.create_user()
    phone = _add(admin_api, YEALINK, user["id"])
    r = admin_api.post(f"/api/v1/admin/phones/{phone['id']}/reload")
    assert r.status_code == 200, r.text
    assert r.json()["sent"] is False and r.json()["outcome"] in ("not-available", "sent", "not-registered")
    after = admin_api.get(f"/api/v1/admin/phones/{phone['id']}").json()
    assert after["last_reload_outcome"] == r.json()["outcome"] and after["last_reload_at"]
    bare = _add(admin_api, YEALINK)
    r = admin_api.post(f"/api/v1/admin/phones/{bare['id']}/reload")
    assert r.json() == {"sent": False, "outcome": "not-assigned", "message": r.json()["message"]}
    assert admin_api.post("/api/v1/admin/phones/999999/reload").status_code == 404


def test_click_to_call_reaches_the_provisioned_phone_with_its_web_password(
    admin_api: Api, anon_api: Api, shared_server: ServerProcess
) -> None:
    ext = str(2000 + secrets.randbelow(7000))
    user = admin_api.create_user(extension=ext, outbound="international")
    phone = _add(admin_api, YEALINK, user["id"])
    # Boot: the phone fetches its file as a Yealink would; from it we learn what the phone now knows.
    config = _fetch(phone["provisioning_url"] + f"{phone['mac']}.cfg", YEALINK.user_agent(phone["mac"]))
    seen = account("yealink", config.text)
    assert seen["allow"].split(",") == ["127.0.0.1"], "callto's own address may send action URIs"
    with FakeYealinkPhone(password=seen["admin_password"], allowed_ips=tuple(seen["allow"].split(","))) as fake:
        r = admin_api.patch(f"/api/v1/admin/phones/{phone['id']}", json={"http_port": fake.port})
        assert r.status_code == 200
        me = anon_api.login(user["username"], "password-123")
        try:
            r = me.post("/api/v1/calls", json={"to": "+39 0721 405516"})
            assert r.status_code == 202, r.text
            call = r.json()
            deadline = time.monotonic() + 10
            while not fake.actions and time.monotonic() < deadline:
                time.sleep(0.05)
            # The default dial plan is Italian: +39 0721 ... is dialled as a national number.
            assert fake.actions == [("call", "0721405516")], fake.requests
            assert all(req.status == 200 for req in fake.requests), "the web password was accepted"
            assert call["attempts"][0]["strategy"] == "phone_http"
            assert call["attempts"][0]["outcome"] == "ok", call
        finally:
            me.close()
