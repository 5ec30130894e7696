"""The Link app (offscreen Qt) against a real server: sign-in, keyring, refusal, second factor, main
device picker, Test connection, and screenshots of the windows for the docs."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from callto.link.app import LinkController
from callto.link.connection_test import Status, check_phone_reachable
from callto.link.secrets import Settings, TokenStore
from callto.link.settings_window import ConnectionTestWindow, SettingsWindow
from link.conftest import PASSWORD, SCREENSHOTS, make_user, qwait, tcp_port_closed
from support.server import Api, ServerProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def controller(qapp: Any, link_home: Path) -> Any:
    c = LinkController(Settings.load(), TokenStore())
    yield c
    c.shutdown()


def _sign_in_via_window(window: SettingsWindow, server: str, username: str, password: str) -> None:
    window.server.setText(server)
    window.username.setText(username)
    window.password.setText(password)
    window.sign_in_button.click()


def _files_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_sign_in_keeps_the_token_in_the_keyring_and_nothing_secret_on_disk(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api, link_home: Path, tmp_path: Path
) -> None:
    user = make_user(admin_api)
    window = SettingsWindow(controller)
    _sign_in_via_window(window, shared_server.url.replace("http://", "http://"), user.username, PASSWORD)
    qwait(lambda: controller.signed_in_ok, 15, "sign-in")
    token = controller.token
    assert token
    keyring_file = json.loads((tmp_path / "keyring.json").read_text())
    assert list(keyring_file.values()) == [token]
    assert window.password.text() == ""
    config_text = _files_text(link_home)
    assert "settings.json" in {p.name for p in link_home.rglob("*")}
    assert PASSWORD not in config_text
    assert token not in config_text
    assert token.split(".")[2] not in config_text
    saved = Settings.load()
    assert saved.server_url == shared_server.url
    assert saved.username == user.username
    assert saved.link_device_id == user.devices["link"]["id"]
    qwait(lambda: controller.events_state.value == "connected", 10, "event stream")

    # A new Link (next start) resumes from the keyring, with no password.
    again = LinkController(Settings.load(), TokenStore())
    try:
        again.start()
        qwait(lambda: again.signed_in_ok, 15, "resume from keyring")
        assert again.me is not None and again.me.username == user.username
    finally:
        again.shutdown()


def test_user_without_link_is_refused_and_nothing_is_stored(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api, tmp_path: Path
) -> None:
    user = make_user(admin_api, kinds=("webphone", "deskphone"))
    window = SettingsWindow(controller)
    _sign_in_via_window(window, shared_server.url, user.username, PASSWORD)
    qwait(lambda: "administrator" in window.status.text(), 15, "refusal message")
    assert window.status.text() == (
        "Phone Link is not enabled for your user. Ask your administrator to enable Phone Link for your user."
    )
    assert not controller.signed_in_ok
    assert not (tmp_path / "keyring.json").exists() or json.loads((tmp_path / "keyring.json").read_text()) == {}
    window.resize(560, window.sizeHint().height())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "link-settings-refused.png"))


def test_second_factor_is_asked_for_and_accepted(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    api = Api(shared_server.url).login(user.username, PASSWORD)
    secret = api.post("/api/v1/me/totp").json()["secret"]
    assert api.post("/api/v1/me/totp/confirm", json={"otp": pyotp.TOTP(secret).now()}).status_code == 204
    api.close()
    window = SettingsWindow(controller)
    _sign_in_via_window(window, shared_server.url, user.username, PASSWORD)
    qwait(lambda: not window.otp.isHidden(), 15, "the code field")
    assert "6-digit code" in window.status.text()
    window.password.setText(PASSWORD)
    window.otp.setText(pyotp.TOTP(secret).now())
    window.sign_in_button.click()
    qwait(lambda: controller.signed_in_ok, 15, "sign-in with code")
    assert window.otp.isHidden()


def test_main_device_picker_saves_the_choice_on_the_server(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    window = SettingsWindow(controller)
    window.show()
    _sign_in_via_window(window, shared_server.url, user.username, PASSWORD)
    qwait(lambda: window.device_picker.count() == 3, 15, "device list")
    qwait(lambda: "online" in window.device_picker.itemText(0), 10, "Link shown online")
    labels = [window.device_picker.itemText(i) for i in range(3)]
    assert labels[0] == "Link (callto Link, online)"
    assert "Desk phone (Desk phone, offline)" in labels
    desk_index = labels.index("Desk phone (Desk phone, offline)")
    window.device_picker.setCurrentIndex(desk_index)
    window.device_picker.activated.emit(desk_index)
    desk = user.devices["deskphone"]["id"]
    qwait(lambda: controller.me is not None and controller.me.main_device_id == desk, 10, "main device saved")
    assert admin_api.get(f"/api/v1/admin/users/{user.id}").json()["main_device_id"] == desk
    assert controller.settings.main_device_id == desk
    assert any(t == "Main device" for t, _ in controller.notifications)
    # Choose Link again for the screenshot: the usual set-up.
    window.device_picker.setCurrentIndex(0)
    window.device_picker.activated.emit(0)
    qwait(lambda: controller.me is not None and controller.me.main_device_id == user.devices["link"]["id"], 10)
    qwait(lambda: "connected" in window.status.text(), 10, "connected status")
    window.resize(560, window.sizeHint().height())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "link-settings.png"))


def test_connection_test_reports_each_check_with_a_fix(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    window = SettingsWindow(controller)
    _sign_in_via_window(window, shared_server.url, user.username, PASSWORD)
    qwait(lambda: controller.events_state.value == "connected", 15, "event stream")
    controller.set_main_device(user.devices["deskphone"]["id"])
    qwait(lambda: controller.me is not None and controller.me.main_device_id == user.devices["deskphone"]["id"])
    results: list[Any] = []
    controller.checks_done.connect(results.append)
    controller.test_connection()
    qwait(lambda: bool(results), 20, "checks")
    checks = {c.id: c for c in results[0]}
    assert [c.id for c in results[0]] == [
        "server", "tls", "credentials", "link_enabled", "events", "main_device", "phone_lan",
        "server_diagnostics",
    ]
    assert checks["server"].status is Status.OK
    assert checks["tls"].status is Status.WARN  # plain http to the test server
    assert checks["credentials"].status is Status.OK and user.username in checks["credentials"].message
    assert checks["link_enabled"].status is Status.OK
    assert checks["events"].status is Status.OK
    assert checks["main_device"].status is Status.FAIL and "powered on" in checks["main_device"].fix
    assert checks["phone_lan"].status is not Status.OK
    # The server's own view: the desk phone is offline, so it has something to fix too.
    assert checks["server_diagnostics"].status in (Status.WARN, Status.FAIL)
    assert "need attention" in checks["server_diagnostics"].message
    for c in results[0]:
        assert c.status is Status.OK or c.fix or c.status is Status.SKIP, c
    view = ConnectionTestWindow()
    view.show_checks(results[0])
    view.resize(720, view.sizeHint().height())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert view.grab().save(str(SCREENSHOTS / "link-test-connection.png"))


def test_connection_test_without_link_device_names_the_fix(shared_server: ServerProcess, admin_api: Api) -> None:
    from callto.link.connection_test import run_checks

    user = make_user(admin_api, kinds=("webphone",))
    token = httpx.post(
        f"{shared_server.url}/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}
    ).json()["token"]
    checks = {c.id: c for c in asyncio.run(run_checks(shared_server.url, token))}
    assert checks["link_enabled"].status is Status.FAIL
    assert checks["link_enabled"].fix == "Ask your administrator to enable Phone Link for your user."


def test_connection_test_with_server_down_says_what_to_do(link_home: Path) -> None:
    from callto.link.connection_test import run_checks

    checks = asyncio.run(run_checks(f"http://127.0.0.1:{tcp_port_closed()}", "x"))
    assert checks[0].status is Status.FAIL and "Check the server address" in checks[0].fix
    assert all(c.status is Status.SKIP for c in checks[1:])


def test_desk_phone_reachability_is_checked_from_this_computer() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        ok = asyncio.run(check_phone_reachable("127.0.0.1", listener.getsockname()[1]))
    finally:
        listener.close()
    assert ok.status is Status.OK and "Link can relay" in ok.message
    bad = asyncio.run(check_phone_reachable("127.0.0.1", tcp_port_closed()))
    assert bad.status is Status.WARN and "same LAN" not in bad.message and "LAN or VPN" in bad.fix


def test_untrusted_certificate_is_offered_for_explicit_trust(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    window = SettingsWindow(controller)
    window.show()
    _sign_in_via_window(window, f"127.0.0.1:{shared_server.https_port}", user.username, PASSWORD)
    qwait(lambda: not window.cert_box.isHidden(), 15, "certificate prompt")
    assert "fingerprint" in window.cert_text.text()
    window.resize(560, window.sizeHint().height())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "link-settings-certificate.png"))
    window.password.setText(PASSWORD)
    window.trust_button.click()
    qwait(lambda: controller.signed_in_ok, 15, "sign-in after trusting")
    assert controller.settings.trusted_cert_sha256
    assert controller.settings.server_url == f"https://127.0.0.1:{shared_server.https_port}"
    qwait(lambda: controller.events_state.value == "connected", 15, "event stream over wss")


def test_clicked_link_before_sign_in_is_called_after_sign_in(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    """Click -> POST /api/v1/calls -> the server pushes ``dial`` to Link (the main device) -> Link's phone
    dials and acknowledges -> 202. The phone page itself (web CTI in Qt WebEngine) is stood in for by a
    function with the same contract as its ``window.calltoPhone.dial(number, clickId)`` hook."""
    user = make_user(admin_api)
    failed: list[Any] = []
    placed: list[Any] = []
    dialed: list[str] = []
    clicks: list[str | None] = []
    controller.call_failed.connect(failed.append)
    controller.call_placed.connect(placed.append)

    def phone(number: str, done: Any, click: str | None) -> None:
        dialed.append(number)
        clicks.append(click)
        done(True, None)

    controller.phone_dialer = phone
    controller.handle_url("tel:+39 0721 405516")
    assert controller.pending == ["+390721405516"]
    assert controller.notifications[-1][0] == "Sign in to call"
    window = SettingsWindow(controller)
    _sign_in_via_window(window, shared_server.url, user.username, PASSWORD)
    qwait(lambda: bool(failed or placed), 20, "the pending call to be placed")
    assert controller.pending == []
    assert not failed, getattr(failed[0], "message", failed)
    assert placed[0]["call_id"]
    assert placed[0]["device_id"] == user.devices["link"]["id"]
    assert len(dialed) == 1 and dialed[0].endswith("0721405516")
    # the page gets the click's id for its INVITE (X-Callto-Click): the call's events are the click's
    assert clicks == [placed[0]["call_id"]] and str(clicks[0]).startswith("c2c-")
    assert controller.notifications[-1][0] == "Calling +390721405516"


def test_call_fails_in_plain_words_when_links_phone_is_closed(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    failed: list[Any] = []
    controller.call_failed.connect(failed.append)
    window = SettingsWindow(controller)
    _sign_in_via_window(window, shared_server.url, user.username, PASSWORD)
    qwait(lambda: controller.events_state.value == "connected", 15, "event stream")
    controller.handle_url("callto://%2B390721405516/")
    qwait(lambda: bool(failed), 20, "the failure")
    assert "phone window is not open" in failed[0].message
    assert ("Call to +390721405516 failed", failed[0].message) in controller.notifications


def test_garbage_link_is_refused_without_calling(controller: LinkController) -> None:
    failed: list[Any] = []
    controller.call_failed.connect(failed.append)
    controller.handle_url("tel:call-me-maybe")
    assert failed and failed[0].error == "invalid-number"
    assert controller.notifications[-1][0] == "Cannot call"
    assert controller.pending == []


@pytest.mark.sip
def test_connection_test_reaches_the_registered_desk_phone_from_this_computer(
    link_home: Path,
    shared_server: ServerProcess,
    admin_api: Api,
    baresip_factory: Any,
    tone_440: Path,
) -> None:
    """The desk phone's address comes from where it registered and its web port from provisioning, both in
    ``lan_address`` on ``GET /me``; Link then opens a TCP connection to exactly that from this computer."""
    from callto.link.connection_test import run_checks
    from support.baresip import Account

    user = make_user(admin_api)
    desk = user.devices["deskphone"]
    phone = baresip_factory(
        "desk",
        tone_440,
        Account(
            aor=f"sip:{desk['sip']['username']}@callto.test",
            password=desk["sip"]["password"],
            outbound=f"sip:127.0.0.1:{shared_server.sip_port}",
            regint=600,
        ),
    )
    assert phone.wait_registered().startswith("200")
    api = Api(shared_server.url).login(user.username, PASSWORD)
    assert api.put("/api/v1/me/main-device", json={"device_id": desk["id"]}).status_code in (200, 204)
    web = socket.socket()  # the phone's web server port, as seen from this computer
    web.bind(("127.0.0.1", 0))
    web.listen(1)
    port = web.getsockname()[1]
    mac = "00:15:65:" + ":".join(secrets.token_hex(3)[i : i + 2] for i in (0, 2, 4))
    r = admin_api.post(
        "/api/v1/admin/phones",
        json={"mac": mac, "model": "T31G", "vendor": "yealink", "user_id": user.id, "device_id": desk["id"],
              "http_port": port},
    )
    assert r.status_code == 201, r.text
    try:
        devices = {d["id"]: d for d in api.get("/api/v1/me").json()["devices"]}
        assert devices[desk["id"]]["lan_address"] == {"host": "127.0.0.1", "port": port, "scheme": "http"}
        # The port comes from the server: Link's default (80) is not what it tries.
        checks = {c.id: c for c in asyncio.run(run_checks(shared_server.url, api.token))}
    finally:
        web.close()
        api.close()
    assert checks["main_device"].status is Status.OK
    assert checks["phone_lan"].status is Status.OK
    assert f"reaches the desk phone at 127.0.0.1:{port}" in checks["phone_lan"].message


def test_moving_a_call_without_one_says_so_in_plain_words(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    window = SettingsWindow(controller)
    _sign_in_via_window(window, shared_server.url, user.username, PASSWORD)
    qwait(lambda: controller.me is not None, 15, "signed in")
    # the main device is Link's own: moving "to the main device" would move nowhere
    api = Api(shared_server.url).login(user.username, PASSWORD)
    try:
        api.put("/api/v1/me/main-device", json={"device_id": user.devices["link"]["id"]}).raise_for_status()
    finally:
        api.close()
    controller.refresh_me()
    qwait(lambda: controller.me is not None and controller.me.main_device is not None
          and controller.me.main_device.kind == "link", 10, "main device")
    assert controller.move_to_main() is None
    assert controller.notifications[-1] == (
        "The call was not moved",
        "Your main device is this computer: choose your desk phone as main device in Settings.",
    )
    # no answered call: the server's no-live-call, in Link's words
    future = controller.move_call(user.devices["deskphone"]["id"])
    qwait(lambda: future.done() and controller.notifications[-1][0] == "The call was not moved", 15, "refusal")
    assert controller.notifications[-1] == ("The call was not moved", "You have no answered call to move.")
    # someone else's device: refused before the switch is asked
    other = make_user(admin_api)
    future = controller.move_call(other.devices["deskphone"]["id"])
    qwait(lambda: future.done() and controller.notifications[-1][1] == "That device is not yours.", 15, "403")
