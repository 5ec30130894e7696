"""``lan_address`` on the owner's ``GET /me`` devices: where a desk phone's web server answers on its LAN
(the address it registered from, the web port provisioning knows), which Link's ``lan_relay`` and Test
connection use. Only the owner sees it."""

from __future__ import annotations

import secrets

from link.conftest import PASSWORD, InprocServer, make_user
from support.server import Api


def _mac() -> str:
    return "00:15:65:" + ":".join(secrets.token_hex(3)[i : i + 2] for i in (0, 2, 4))


def test_registered_desk_phone_has_its_lan_address_only_for_its_owner(
    inproc_server: InprocServer, inproc_admin: Api
) -> None:
    user = make_user(inproc_admin)
    desk = user.devices["deskphone"]
    api = Api(inproc_server.url).login(user.username, PASSWORD)
    try:
        mine = {d["id"]: d for d in api.get("/api/v1/me").json()["devices"]}
        # Not registered, not provisioned: nothing is known.
        assert mine[desk["id"]]["lan_address"] is None
        # Registered (what the SIP switch reports for a REGISTER from 192.168.1.77), not provisioned:
        # the host is known, the web port is not.
        inproc_server.services.status.set(
            user.id, desk["id"], "sip", True,
            {"address": "192.168.1.77", "source": "udp:192.168.1.77:5062", "transport": "udp"},
        )
        mine = {d["id"]: d for d in api.get("/api/v1/me").json()["devices"]}
        assert mine[desk["id"]]["lan_address"] == {"host": "192.168.1.77", "port": None, "scheme": "http"}
        assert mine[user.devices["link"]["id"]]["lan_address"] is None
        # Provisioned with its web port: the same answer provisioning gives the dialer for lan_relay.
        r = inproc_admin.post(
            "/api/v1/admin/phones",
            json={"mac": _mac(), "model": "T31G", "vendor": "yealink", "user_id": user.id,
                  "device_id": desk["id"], "http_port": 8081},
        )
        assert r.status_code == 201, r.text
        listed = {d["id"]: d for d in api.get("/api/v1/me/devices").json()}
        assert listed[desk["id"]]["lan_address"] == {"host": "192.168.1.77", "port": 8081, "scheme": "http"}
        me = api.get("/api/v1/me").json()
        assert {d["id"]: d for d in me["devices"]}[desk["id"]]["lan_address"]["port"] == 8081
    finally:
        api.close()
    # Administrators manage devices; the LAN address is the owner's, for the owner's Link.
    admin_view = inproc_admin.get(f"/api/v1/admin/users/{user.id}").json()
    assert all("lan_address" not in d for d in admin_view["devices"])
    other = make_user(inproc_admin, kinds=("link",))
    api = Api(inproc_server.url).login(other.username, PASSWORD)
    try:
        assert all(d["id"] != desk["id"] for d in api.get("/api/v1/me").json()["devices"])
    finally:
        api.close()
    inproc_server.services.status.set(user.id, desk["id"], "sip", False)


def test_link_reads_lan_address_and_keeps_older_servers_working() -> None:
    from callto.link.client import Device

    new = Device.from_json(
        {"id": 7, "kind": "deskphone", "label": "Desk", "online": True,
         "lan_address": {"host": "192.168.1.77", "port": 8081, "scheme": "http"}}
    )
    assert new.lan_address == ("192.168.1.77", 8081) and new.address == "192.168.1.77"
    unknown_port = Device.from_json(
        {"id": 7, "kind": "deskphone", "label": "Desk", "online": True,
         "lan_address": {"host": "fd00::7", "port": None}}
    )
    assert unknown_port.lan_address == ("fd00::7", None)
    old = Device.from_json({"id": 7, "kind": "deskphone", "label": "Desk", "online": True})
    assert old.lan_address is None and old.address is None
