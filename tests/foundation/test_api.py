"""The foundation's HTTP API, end to end against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import pyotp

from support.server import ADMIN_PASSWORD, Api, ServerProcess


def _error(r: object) -> dict[str, object]:
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "message", "details"}, body
    return dict(body)


def test_admin_creates_user_with_devices_each_with_own_sip_credentials(admin_api: Api) -> None:
    user = admin_api.create_user(extension=None, outbound="international", mobile="+39 333 1234567")
    web = admin_api.add_device(user["id"], "webphone")
    desk = admin_api.add_device(user["id"], "deskphone")
    link = admin_api.add_device(user["id"], "link")
    creds = {d["sip"]["username"] for d in (web, desk, link)}
    assert len(creds) == 3
    assert all(len(d["sip"]["password"]) >= 16 for d in (web, desk, link))
    listed = admin_api.get(f"/api/v1/admin/users/{user['id']}").json()
    assert [d["kind"] for d in listed["devices"]] == ["webphone", "deskphone", "link"]
    assert listed["main_device_id"] == web["id"], "the first device becomes the main device"
    assert listed["outbound"] == "international"


def test_user_sees_own_profile_and_devices_without_secrets(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user(extension="2301")
    admin_api.add_device(user["id"], "webphone")
    me = anon_api.login(user["username"], "password-123")
    profile = me.get("/api/v1/me").json()
    assert profile["extension"] == "2301"
    assert profile["devices"] and all("sip" not in d for d in profile["devices"])
    assert "password" not in str(profile).lower().replace("password_hash", "")
    me.close()


def test_user_chooses_main_device_but_not_someone_elses(admin_api: Api, anon_api: Api) -> None:
    alice = admin_api.create_user()
    bob = admin_api.create_user()
    admin_api.add_device(alice["id"], "webphone")
    alice_desk = admin_api.add_device(alice["id"], "deskphone")
    bob_web = admin_api.add_device(bob["id"], "webphone")
    me = anon_api.login(alice["username"], "password-123")
    r = me.put("/api/v1/me/main-device", json={"device_id": alice_desk["id"]})
    assert r.status_code == 200 and r.json()["main_device_id"] == alice_desk["id"]
    r = me.put("/api/v1/me/main-device", json={"device_id": bob_web["id"]})
    assert r.status_code == 403 and _error(r)["error"] == "device-not-owned"
    assert admin_api.get(f"/api/v1/admin/users/{bob['id']}").json()["main_device_id"] == bob_web["id"]
    r = me.get(f"/api/v1/me/devices/{bob_web['id']}/sip")
    assert r.status_code == 403
    me.close()


def test_softphone_credentials_go_only_to_their_owner(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user()
    web = admin_api.add_device(user["id"], "webphone")
    desk = admin_api.add_device(user["id"], "deskphone")
    me = anon_api.login(user["username"], "password-123")
    sip = me.get(f"/api/v1/me/devices/{web['id']}/sip").json()
    assert sip["username"] == web["sip"]["username"] and sip["password"] == web["sip"]["password"]
    assert sip["ws_url"].endswith("/sip")
    r = me.get(f"/api/v1/me/devices/{desk['id']}/sip")
    assert r.status_code == 403 and _error(r)["error"] == "not-a-softphone"
    me.close()


def test_non_admin_cannot_reach_admin_endpoints(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user()
    me = anon_api.login(user["username"], "password-123")
    for method, path in [
        ("get", "/api/v1/admin/users"),
        ("post", "/api/v1/admin/users"),
        ("delete", f"/api/v1/admin/users/{user['id']}"),
        ("post", f"/api/v1/admin/users/{user['id']}/devices"),
    ]:
        r = getattr(me, method)(path, json={}) if method == "post" else getattr(me, method)(path)
        assert r.status_code == 403, (method, path, r.text)
        assert _error(r)["error"] == "admin-only"
    assert admin_api.get(f"/api/v1/admin/users/{user['id']}").status_code == 200
    me.close()


def test_requests_without_or_with_a_bad_token_are_401(anon_api: Api) -> None:
    r = anon_api.get("/api/v1/me")
    assert r.status_code == 401 and _error(r)["error"] == "invalid-token"
    r = anon_api.get("/api/v1/me", headers={"Authorization": "Bearer not.a.token"})
    assert r.status_code == 401 and _error(r)["error"] == "invalid-token"


def test_wrong_password_is_refused_and_changes_nothing(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user()
    r = anon_api.post("/api/v1/auth/login", json={"username": user["username"], "password": "nope-nope"})
    assert r.status_code == 401 and _error(r)["error"] == "invalid-credentials"
    r = anon_api.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope-nope"})
    assert r.status_code == 401 and _error(r)["error"] == "invalid-credentials"
    anon_api.login(user["username"], "password-123").close()


def test_repeated_failed_logins_are_throttled(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user()
    codes = [
        anon_api.post("/api/v1/auth/login", json={"username": user["username"], "password": f"bad-{i}"}).status_code
        for i in range(6)
    ]
    assert codes[:5] == [401] * 5
    assert codes[5] == 429
    r = anon_api.post("/api/v1/auth/login", json={"username": user["username"], "password": "password-123"})
    assert r.status_code == 429, "even the right password waits out the lock"
    assert int(r.headers["Retry-After"]) > 0
    assert _error(r)["error"] == "too-many-attempts"


def test_malformed_json_wrong_types_and_unknown_fields_get_json_errors(admin_api: Api) -> None:
    before = admin_api.get("/api/v1/admin/users").json()
    r = admin_api.post("/api/v1/admin/users", content=b'{"username": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and _error(r)["error"] == "malformed-json"
    r = admin_api.post("/api/v1/admin/users", json={"username": 5, "display_name": [], "password": "x"})
    assert r.status_code == 422
    err = _error(r)
    assert err["error"] == "invalid-input"
    fields = {p["field"] for p in err["details"]["problems"]}  # type: ignore[index]
    assert {"username", "display_name", "password"} <= fields
    r = admin_api.post(
        "/api/v1/admin/users",
        json={"username": "okname", "display_name": "Ok", "password": "password-123", "is_root": True},
    )
    assert r.status_code == 422
    r = admin_api.post(
        "/api/v1/admin/users", json={"username": "bad name!", "display_name": "x", "password": "password-123"}
    )
    assert r.status_code == 422
    r = admin_api.post(
        "/api/v1/admin/users",
        json={"username": "ctl", "display_name": "evil\r\nname", "password": "password-123"},
    )
    assert r.status_code == 422
    assert admin_api.get("/api/v1/admin/users").json() == before


def test_oversized_body_is_refused_before_it_is_read(admin_api: Api) -> None:
    r = admin_api.post(
        "/api/v1/admin/users", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and _error(r)["error"] == "payload-too-large"


def test_username_and_extension_are_unique(admin_api: Api) -> None:
    user = admin_api.create_user(extension="2450")
    r = admin_api.post(
        "/api/v1/admin/users",
        json={"username": user["username"], "display_name": "Twin", "password": "password-123"},
    )
    assert r.status_code == 409 and _error(r)["error"] == "already-exists"
    r = admin_api.post(
        "/api/v1/admin/users",
        json={"username": "other2450", "display_name": "Twin", "password": "password-123", "extension": "2450"},
    )
    assert r.status_code == 409 and _error(r)["details"] == {"field": "extension"}
    r = admin_api.patch(f"/api/v1/admin/users/{user['id']}", json={"extension": "2451", "outbound": "internal"})
    assert r.status_code == 200 and r.json()["extension"] == "2451" and r.json()["outbound"] == "internal"


def test_second_web_phone_for_a_user_is_a_conflict(admin_api: Api) -> None:
    user = admin_api.create_user()
    admin_api.add_device(user["id"], "webphone")
    r = admin_api.post(f"/api/v1/admin/users/{user['id']}/devices", json={"kind": "webphone"})
    assert r.status_code == 409 and _error(r)["error"] == "device-exists"
    r = admin_api.post(f"/api/v1/admin/users/{user['id']}/devices", json={"kind": "fax"})
    assert r.status_code == 422


def test_removing_the_main_device_moves_main_to_another(admin_api: Api) -> None:
    user = admin_api.create_user()
    web = admin_api.add_device(user["id"], "webphone")
    desk = admin_api.add_device(user["id"], "deskphone")
    assert admin_api.delete(f"/api/v1/admin/devices/{web['id']}").status_code == 204
    assert admin_api.get(f"/api/v1/admin/users/{user['id']}").json()["main_device_id"] == desk["id"]
    assert admin_api.delete(f"/api/v1/admin/devices/{desk['id']}").status_code == 204
    assert admin_api.get(f"/api/v1/admin/users/{user['id']}").json()["main_device_id"] is None
    r = admin_api.delete(f"/api/v1/admin/devices/{desk['id']}")
    assert r.status_code == 404 and _error(r)["error"] == "device-not-found"


def test_password_reset_ends_existing_sessions(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user()
    me = anon_api.login(user["username"], "password-123")
    new = admin_api.post(f"/api/v1/admin/users/{user['id']}/password").json()["password"]
    r = me.get("/api/v1/me")
    assert r.status_code == 401 and _error(r)["details"] == {"reason": "password-changed"}
    anon_api.login(user["username"], new).close()
    me.close()


def test_logout_invalidates_the_token(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user()
    me = anon_api.login(user["username"], "password-123")
    assert me.post("/api/v1/auth/logout").status_code == 204
    assert me.get("/api/v1/me").status_code == 401
    me.close()


def test_totp_second_factor_is_asked_once_enabled(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user()
    me = anon_api.login(user["username"], "password-123")
    setup = me.post("/api/v1/me/totp").json()
    totp = pyotp.TOTP(setup["secret"])
    wrong = "000000" if totp.now() != "000000" else "111111"
    assert me.post("/api/v1/me/totp/confirm", json={"otp": wrong}).status_code == 422
    assert me.post("/api/v1/me/totp/confirm", json={"otp": totp.now()}).status_code == 204
    r = anon_api.post("/api/v1/auth/login", json={"username": user["username"], "password": "password-123"})
    assert r.status_code == 401 and _error(r)["error"] == "otp-required"
    anon_api.login(user["username"], "password-123", otp=totp.now()).close()
    # The admin can switch it off for a user who lost the phone.
    r = admin_api.patch(f"/api/v1/admin/users/{user['id']}", json={"totp_enabled": False})
    assert r.status_code == 200 and r.json()["totp_enabled"] is False
    anon_api.login(user["username"], "password-123").close()
    me.close()


def test_the_last_admin_cannot_be_deleted_or_demoted(admin_api: Api) -> None:
    admins = [u for u in admin_api.get("/api/v1/admin/users").json() if u["role"] == "admin"]
    if len(admins) == 1:
        r = admin_api.delete(f"/api/v1/admin/users/{admins[0]['id']}")
        assert r.status_code == 409 and _error(r)["error"] == "last-admin"
        r = admin_api.patch(f"/api/v1/admin/users/{admins[0]['id']}", json={"role": "user"})
        assert r.status_code == 409
    second = admin_api.create_user(role="admin")
    assert admin_api.delete(f"/api/v1/admin/users/{second['id']}").status_code == 204


def test_deleting_a_user_removes_their_devices(admin_api: Api) -> None:
    user = admin_api.create_user()
    device = admin_api.add_device(user["id"], "deskphone")
    assert admin_api.delete(f"/api/v1/admin/users/{user['id']}").status_code == 204
    assert admin_api.get(f"/api/v1/admin/users/{user['id']}").status_code == 404
    assert admin_api.get(f"/api/v1/admin/devices/{device['id']}").status_code == 404


def test_health_openapi_docs_and_unknown_paths(anon_api: Api, shared_server: ServerProcess) -> None:
    health = anon_api.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["checks"]["database"] == "ok"
    spec = anon_api.get("/api/v1/openapi.json").json()
    assert "/api/v1/auth/login" in spec["paths"] and "/api/v1/admin/users" in spec["paths"]
    assert anon_api.get("/api/docs").status_code == 200
    r = anon_api.get("/api/v1/no-such-thing")
    assert r.status_code == 404 and _error(r)["error"] == "not-found"
    assert ADMIN_PASSWORD not in shared_server.log()


# Preferences (/api/v1/me/preferences): the incoming-call pop-up and ring tone switches and the language
# follow the user to every browser and to Link; each user sees and changes only their own.
def test_preferences_start_at_the_defaults_and_a_change_is_kept_per_user(admin_api: Api, anon_api: Api) -> None:
    alice = admin_api.create_user()
    bob = admin_api.create_user()
    a = anon_api.login(alice["username"], "password-123")
    b = anon_api.login(bob["username"], "password-123")
    try:
        first = a.get("/api/v1/me/preferences")
        assert first.status_code == 200, first.text
        assert first.json() == {"incoming_popup": True, "ringtone": True, "language": None, "updated_at": None}

        r = a.patch("/api/v1/me/preferences", json={"incoming_popup": False, "language": "it"})
        assert r.status_code == 200, r.text
        saved = r.json()
        assert (saved["incoming_popup"], saved["ringtone"], saved["language"]) == (False, True, "it")
        assert saved["updated_at"]
        # Only the keys sent change; the profile carries the same view.
        r = a.patch("/api/v1/me/preferences", json={"ringtone": False})
        assert (r.json()["incoming_popup"], r.json()["ringtone"], r.json()["language"]) == (False, False, "it")
        assert a.get("/api/v1/me").json()["preferences"]["ringtone"] is False
        # null puts one back to its default (language: follow the browser / the OS).
        assert a.patch("/api/v1/me/preferences", json={"language": None}).json()["language"] is None

        # A new session of the same user (another browser, Link) reads them; another user's stay untouched.
        again = anon_api.login(alice["username"], "password-123")
        assert again.get("/api/v1/me/preferences").json()["ringtone"] is False
        again.close()
        assert b.get("/api/v1/me/preferences").json()["updated_at"] is None
    finally:
        a.close()
        b.close()


def test_bad_preferences_are_a_json_422_and_change_nothing(admin_api: Api, anon_api: Api) -> None:
    user = admin_api.create_user()
    api = anon_api.login(user["username"], "password-123")
    try:
        for body in ({"language": "fr"}, {"ringtone": "yes"}, {"incoming_popup": 0}, {"theme": "dark"}, [True]):
            r = api.patch("/api/v1/me/preferences", json=body)
            assert r.status_code == 422, (body, r.text)
            err = r.json()
            assert set(err) == {"error", "message", "details"} and err["error"] == "invalid-input", err
            assert err["details"]["problems"], err
        assert api.get("/api/v1/me/preferences").json()["updated_at"] is None
        assert anon_api.patch("/api/v1/me/preferences", json={"ringtone": False}).status_code == 401
    finally:
        api.close()


def test_a_users_mobile_is_read_by_the_one_number_parser(admin_api: Api) -> None:
    user = admin_api.create_user()
    ok = admin_api.patch(f"/api/v1/admin/users/{user['id']}", json={"mobile": "tel:+39-333-1234567"})
    assert ok.status_code == 200 and ok.json()["mobile"] == "tel:+39-333-1234567", ok.text
    r = admin_api.patch(f"/api/v1/admin/users/{user['id']}", json={"mobile": "333 12A4567"})
    assert r.status_code == 422 and _error(r)["error"] == "invalid-number", r.text
    [problem] = r.json()["details"]["problems"]
    assert (problem["field"], problem["reason"], problem["value"]) == ("mobile", "letters", "333 12A4567")
