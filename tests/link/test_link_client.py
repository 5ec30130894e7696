"""Server address parsing, sign-in and its refusals, main device, and explicit TLS trust, against a real
``callto serve`` (the suite's ``shared_server``)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import pytest

from callto.link.client import (
    LINK_NOT_ENABLED,
    LinkClient,
    fetch_certificate,
    fingerprint,
    parse_server_address,
    pem_from_der,
    sign_in,
)
from callto.link.errors import (
    AuthFailed,
    InvalidServerAddress,
    LinkNotEnabled,
    ServerUnreachable,
    SessionExpired,
    UntrustedCertificate,
)
from link.conftest import PASSWORD, make_user
from support.server import Api, ServerProcess

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(
    ("typed", "base"),
    [
        ("pbx.example.com", "https://pbx.example.com"),
        ("PBX.Example.com.", "https://pbx.example.com"),
        ("pbx.example.com:8443", "https://pbx.example.com:8443"),
        ("https://pbx.example.com/", "https://pbx.example.com"),
        ("https://pbx.example.com:443", "https://pbx.example.com"),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
        ("192.168.1.10", "https://192.168.1.10"),
        ("192.168.1.10:8443", "https://192.168.1.10:8443"),
        ("::1", "https://[::1]"),
        ("[fe80::1]:8443", "https://[fe80::1]:8443"),
        ("https://pbx.example.com/callto/api/v1/me", "https://pbx.example.com/callto"),
        ("wss://pbx.example.com/api/v1/events", "https://pbx.example.com"),
        ("  pbx  ", "https://pbx"),
    ],
)
def test_server_address_becomes_a_base_url(typed: str, base: str) -> None:
    assert parse_server_address(typed) == base


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("", "Enter the server address"),
        ("ftp://pbx.example.com", "must start with https://"),
        ("pbx.example.com:99999", "port"),
        ("pbx.example.com:abc", "port"),
        ("pbx example.com", "spaces"),
        ("https://user:pw@pbx.example.com", "username or password"),
        ("-bad-.example.com", "not a valid host"),
        ("300.1.2.3", "not a valid host"),
    ],
)
def test_bad_server_address_is_refused_in_plain_words(typed: str, why: str) -> None:
    with pytest.raises(InvalidServerAddress) as info:
        parse_server_address(typed)
    assert why in info.value.message


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_sign_in_with_link_device_returns_the_user_and_devices(
    shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)

    async def go() -> Any:
        async with LinkClient(shared_server.url) as c:
            me = await sign_in(c, user.username, PASSWORD)
            return me, c.token

    me, token = run(go())
    assert me.username == user.username
    assert me.link_device is not None and me.link_device.id == user.devices["link"]["id"]
    assert {d.kind for d in me.devices} == {"link", "webphone", "deskphone"}
    assert token and len(token) > 20


def test_sign_in_without_link_device_is_refused_with_the_guide_message(
    shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api, kinds=("webphone",))
    tokens: list[str] = []

    class Observed(LinkClient):
        async def logout(self) -> None:
            tokens.append(str(self.token))
            await super().logout()

    async def attempt() -> None:
        async with Observed(shared_server.url) as c:
            await sign_in(c, user.username, PASSWORD)

    with pytest.raises(LinkNotEnabled) as info:
        run(attempt())
    assert "Ask your administrator to enable Phone Link for your user" in info.value.message
    assert info.value.message == LINK_NOT_ENABLED
    # The refused session is closed again on the server: its token no longer works.
    assert len(tokens) == 1
    r = httpx.get(f"{shared_server.url}/api/v1/me", headers={"Authorization": f"Bearer {tokens[0]}"})
    assert r.status_code == 401


def test_wrong_password_and_expired_token_are_typed_errors(shared_server: ServerProcess, admin_api: Api) -> None:
    user = make_user(admin_api)

    async def wrong() -> None:
        async with LinkClient(shared_server.url) as c:
            await c.login(user.username, "not-the-password")

    with pytest.raises(AuthFailed) as info:
        run(wrong())
    assert info.value.message == "Wrong username or password."

    async def stale() -> None:
        async with LinkClient(shared_server.url, token="eyJhbGciOiJIUzI1NiJ9.e30.bad") as c:
            await c.me()

    with pytest.raises(SessionExpired):
        run(stale())


def test_main_device_change_is_visible_on_the_server(shared_server: ServerProcess, admin_api: Api) -> None:
    user = make_user(admin_api)
    desk = user.devices["deskphone"]["id"]

    async def go() -> str:
        async with LinkClient(shared_server.url) as c:
            await sign_in(c, user.username, PASSWORD)
            await c.set_main_device(desk)
            assert c.token
            return c.token

    token = run(go())
    seen = httpx.get(f"{shared_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert seen["main_device_id"] == desk
    admin_view = admin_api.get(f"/api/v1/admin/users/{user.id}").json()
    assert admin_view["main_device_id"] == desk


def test_unreachable_server_says_so(shared_server: ServerProcess) -> None:
    async def go() -> None:
        async with LinkClient("http://127.0.0.1:9", timeout=2) as c:
            await c.health()

    with pytest.raises(ServerUnreachable) as info:
        run(go())
    assert "Nothing answers at 127.0.0.1:9. Check the port number" in info.value.message
    assert info.value.details["text"] == "net.refused"


def test_self_signed_certificate_is_refused_then_trusted_by_fingerprint(shared_server: ServerProcess) -> None:
    base = parse_server_address(f"127.0.0.1:{shared_server.https_port}")
    assert base.startswith("https://")

    async def health(pem: str | None) -> Any:
        async with LinkClient(base, trusted_cert_pem=pem) as c:
            return await c.health()

    with pytest.raises(UntrustedCertificate) as info:
        run(health(None))
    der = fetch_certificate(base)
    assert info.value.details["fingerprint"] == fingerprint(der)
    assert info.value.details["fingerprint"] in info.value.message
    assert run(health(pem_from_der(der)))["status"] == "ok"


def test_pinning_another_certificate_does_not_trust_the_server(
    shared_server: ServerProcess, tmp_path: Any
) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "impostor")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    other_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    base = f"https://127.0.0.1:{shared_server.https_port}"

    async def go() -> None:
        async with LinkClient(base, trusted_cert_pem=other_pem) as c:
            await c.health()

    with pytest.raises(UntrustedCertificate):
        run(go())
    assert isinstance(ssl.PEM_cert_to_DER_cert(other_pem), bytes)
