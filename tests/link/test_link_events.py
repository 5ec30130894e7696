"""The event-stream session against the real server: hello, dial commands, lan_relay to a phone HTTP API
that only Link's side talks to, and reconnection after the server restarts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from callto.link.client import Device, LinkClient, Me, sign_in
from callto.link.events import Backoff, EventSession, SessionState
from callto.link.relay import LanRelay
from link.conftest import PASSWORD, InprocServer, make_user
from support.server import Api, ServerProcess

pytestmark = pytest.mark.timeout(90)


class FakePhoneApi(BaseHTTPRequestHandler):
    """A fake of a desk phone's HTTP action URL (Yealink's documented ``/servlet?key=number=...`` with HTTP
    Basic auth): 401 without the right credentials, 200 and a recorded request with them."""

    seen: list[dict[str, str]]
    credentials = ("admin", "phone-pw")

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization", "")})
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="phone"')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def phone_api() -> Iterator[tuple[int, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (FakePhoneApi,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def silent_phone() -> Iterator[int]:
    """A phone that accepts TCP connections and never answers (hung firmware)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def _signed_in(url: str, username: str) -> tuple[LinkClient, Me]:
    client = LinkClient(url)
    me = await sign_in(client, username, PASSWORD)
    return client, me


async def _with_session(
    inproc: InprocServer, username: str, **kw: Any
) -> tuple[LinkClient, Me, EventSession, asyncio.Task[None]]:
    client, me = await _signed_in(inproc.url, username)

    async def phones(refresh: bool) -> dict[int, Device]:
        fresh = await client.me() if refresh else me
        return {d.id: d for d in fresh.devices}

    assert me.link_device is not None
    session = EventSession(
        inproc.url, lambda: client.token, me.link_device.id, relay=LanRelay(phones), **kw
    )
    task = asyncio.ensure_future(session.run())
    await asyncio.wait_for(session.connected.wait(), 10)
    return client, me, session, task


async def _close(client: LinkClient, session: EventSession, task: asyncio.Task[None]) -> None:
    session.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 5)
    await client.aclose()


def test_link_session_says_hello_and_the_server_shows_link_online(
    inproc_server: InprocServer, inproc_admin: Api
) -> None:
    user = make_user(inproc_admin)

    async def go() -> tuple[bool, bool]:
        client, _me, session, task = await _with_session(inproc_server, user.username)
        try:
            for _ in range(50):
                fresh = await client.me()
                if fresh.link_device and fresh.link_device.online:
                    break
                await asyncio.sleep(0.1)
            online = bool(fresh.link_device and fresh.link_device.online)
        finally:
            await _close(client, session, task)
        await asyncio.sleep(0.3)
        async with LinkClient(inproc_server.url) as c2:
            await c2.login(user.username, PASSWORD)
            after = await c2.me()
        return online, bool(after.link_device and after.link_device.online)

    online, after = asyncio.run(go())
    assert online is True
    assert after is False


def test_dial_command_is_acknowledged_by_link(inproc_server: InprocServer, inproc_admin: Api) -> None:
    user = make_user(inproc_admin)
    dialed: list[dict[str, Any]] = []

    async def on_dial(data: dict[str, Any]) -> tuple[bool, str | None]:
        dialed.append(data)
        return True, None

    async def go() -> dict[str, Any]:
        client, me, session, task = await _with_session(inproc_server, user.username, on_dial=on_dial)
        try:
            assert me.link_device is not None
            return await asyncio.to_thread(
                inproc_server.command, user.id, me.link_device.id, "dial", {"to": "0721405516"}
            )
        finally:
            await _close(client, session, task)

    ack = asyncio.run(go())
    assert ack["ok"] is True
    assert [d["to"] for d in dialed] == ["0721405516"]
    assert dialed[0]["command_id"] == ack["command_id"]


def test_dial_without_a_phone_window_is_refused_with_a_reason(
    inproc_server: InprocServer, inproc_admin: Api
) -> None:
    user = make_user(inproc_admin)

    async def go() -> dict[str, Any]:
        client, me, session, task = await _with_session(inproc_server, user.username)
        try:
            assert me.link_device is not None
            return await asyncio.to_thread(
                inproc_server.command, user.id, me.link_device.id, "dial", {"to": "201"}
            )
        finally:
            await _close(client, session, task)

    ack = asyncio.run(go())
    assert ack["ok"] is False and "not open" in ack["reason"]


def _relay(inproc: InprocServer, user_id: int, username: str, data: dict[str, Any]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        client, me, session, task = await _with_session(inproc, username)
        try:
            assert me.link_device is not None
            return await asyncio.to_thread(inproc.command, user_id, me.link_device.id, "lan_relay", data, 8.0)
        finally:
            await _close(client, session, task)

    return asyncio.run(go())


def test_lan_relay_reaches_the_users_desk_phone_from_links_side(
    inproc_server: InprocServer, inproc_admin: Api, phone_api: tuple[int, list[dict[str, str]]]
) -> None:
    port, seen = phone_api
    user = make_user(inproc_admin)
    desk = user.devices["deskphone"]["id"]
    result = _relay(
        inproc_server,
        user.id,
        user.username,
        {
            "method": "GET",
            "url": f"http://127.0.0.1:{port}/servlet?key=number=0721405516",
            "auth": {"type": "basic", "username": "admin", "password": "phone-pw"},
            "timeout": 2,
            "device_id": desk,
            "ip": "127.0.0.1",
        },
    )
    assert result["ok"] is True and result["status"] == 200, result
    assert [s["path"] for s in seen] == ["/servlet?key=number=0721405516"]
    assert seen[0]["auth"].startswith("Basic ")


def test_lan_relay_reports_the_phones_refusal(
    inproc_server: InprocServer, inproc_admin: Api, phone_api: tuple[int, list[dict[str, str]]]
) -> None:
    port, seen = phone_api
    user = make_user(inproc_admin)
    result = _relay(
        inproc_server,
        user.id,
        user.username,
        {
            "url": f"http://127.0.0.1:{port}/servlet?key=OK",
            "auth": {"type": "basic", "username": "admin", "password": "wrong"},
            "device_id": user.devices["deskphone"]["id"],
        },
    )
    assert result["ok"] is False and result["status"] == 401
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("url", "device", "why"),
    [
        ("http://8.8.8.8/servlet?key=OK", "mine", "not on a private network"),
        ("http://phone.example.com/servlet?key=OK", "mine", "not to the name"),
        ("http://127.0.0.1:{port}/servlet?key=OK", "other", "not one of your desk phones"),
        ("http://127.0.0.1:{port}/servlet?key=OK", "link", "not one of your desk phones"),
        ("http://127.0.0.1:{port}/servlet?key=OK", None, "does not name the desk phone"),
        ("file:///etc/passwd", "mine", "only relays http/https"),
        ("http://admin:pw@127.0.0.1:{port}/", "mine", "inside the URL"),
    ],
)
def test_lan_relay_refuses_what_is_not_the_users_own_phone_on_the_lan(
    inproc_server: InprocServer,
    inproc_admin: Api,
    phone_api: tuple[int, list[dict[str, str]]],
    url: str,
    device: str | None,
    why: str,
) -> None:
    port, seen = phone_api
    user = make_user(inproc_admin)
    other = make_user(inproc_admin)
    ids = {
        "mine": user.devices["deskphone"]["id"],
        "other": other.devices["deskphone"]["id"],
        "link": user.devices["link"]["id"],
    }
    data: dict[str, Any] = {"url": url.format(port=port), "method": "GET"}
    if device is not None:
        data["device_id"] = ids[device]
    result = _relay(inproc_server, user.id, user.username, data)
    assert result["ok"] is False
    assert why in result["reason"]
    assert seen == []


def test_lan_relay_refuses_a_url_that_is_not_the_phones_address(
    inproc_server: InprocServer, inproc_admin: Api, phone_api: tuple[int, list[dict[str, str]]]
) -> None:
    port, seen = phone_api
    user = make_user(inproc_admin)
    result = _relay(
        inproc_server,
        user.id,
        user.username,
        {"url": f"http://127.0.0.1:{port}/", "device_id": user.devices["deskphone"]["id"], "ip": "192.168.1.50"},
    )
    assert result["ok"] is False and "not the address of that desk phone" in result["reason"]
    assert seen == []


def test_lan_relay_gives_up_quickly_on_a_silent_phone(
    inproc_server: InprocServer, inproc_admin: Api, silent_phone: int
) -> None:
    user = make_user(inproc_admin)
    started = time.monotonic()
    result = _relay(
        inproc_server,
        user.id,
        user.username,
        {
            "url": f"http://127.0.0.1:{silent_phone}/servlet?key=OK",
            "device_id": user.devices["deskphone"]["id"],
            "timeout": 30,  # capped by Link at 5 s
        },
    )
    assert result["ok"] is False and "did not answer within 5 s" in result["reason"]
    assert time.monotonic() - started < 12


def test_session_reconnects_after_the_server_restarts(server: ServerProcess) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    user = make_user(admin)
    admin.close()
    states: list[SessionState] = []

    async def go() -> None:
        client, me = await _signed_in(server.url, user.username)
        assert me.link_device is not None
        session = EventSession(
            server.url,
            lambda: client.token,
            me.link_device.id,
            on_state=lambda st, why: states.append(st),
            backoff=Backoff(initial=0.2, maximum=1.0),
        )
        task = asyncio.ensure_future(session.run())
        try:
            await asyncio.wait_for(session.connected.wait(), 10)
            await asyncio.to_thread(server.restart)
            await asyncio.wait_for(session.connected.wait(), 20)
            # Back online as Link on the restarted server.
            for _ in range(50):
                r = httpx.get(
                    f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {client.token}"}
                ).json()
                if any(d["kind"] == "link" and d["online"] for d in r["devices"]):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("Link is not online again after the restart")
        finally:
            await _close(client, session, task)

    asyncio.run(go())
    connected = [i for i, s in enumerate(states) if s is SessionState.CONNECTED]
    assert len(connected) >= 2
    assert SessionState.DISCONNECTED in states[connected[0] : connected[1]]
    assert states[-1] is SessionState.STOPPED


def test_lan_relay_in_the_dialers_request_form_answers_the_phones_own_challenge(
    inproc_server: InprocServer, inproc_admin: Api, phone_api: tuple[int, list[dict[str, str]]]
) -> None:
    """The dialer sends ``{"device_id", "request": {...}, "timeout"}``; the catalog says digest but the
    phone asks for Basic: Link answers the challenge the phone actually sent, as the server would."""
    port, seen = phone_api
    user = make_user(inproc_admin)
    request = {
        "method": "GET",
        "url": f"http://127.0.0.1:{port}/servlet?key=number=201",
        "auth": "digest",
        "username": "admin",
        "password": "phone-pw",
        "verify_tls": False,
        "success_status": [200],
        "failure_body": None,
    }
    result = _relay(
        inproc_server,
        user.id,
        user.username,
        {"device_id": user.devices["deskphone"]["id"], "request": request, "timeout": 2.0},
    )
    assert result["ok"] is True and result["status"] == 200, result
    assert [s["path"] for s in seen] == ["/servlet?key=number=201", "/servlet?key=number=201"]
    assert seen[0]["auth"] == "" and seen[1]["auth"].startswith("Basic ")


def test_lan_relay_honours_the_vendors_success_rules(
    inproc_server: InprocServer, inproc_admin: Api, phone_api: tuple[int, list[dict[str, str]]]
) -> None:
    port, _ = phone_api
    user = make_user(inproc_admin)
    base = {
        "method": "GET",
        "url": f"http://127.0.0.1:{port}/servlet?key=OK",
        "auth": "basic",
        "username": "admin",
        "password": "phone-pw",
    }
    refused = _relay(
        inproc_server,
        user.id,
        user.username,
        {"device_id": user.devices["deskphone"]["id"], "request": {**base, "failure_body": "OK"}},
    )
    assert refused["ok"] is False and "refused the request" in refused["reason"]
    wrong_status = _relay(
        inproc_server,
        user.id,
        user.username,
        {"device_id": user.devices["deskphone"]["id"], "request": {**base, "success_status": [204]}},
    )
    assert wrong_status["ok"] is False and wrong_status["status"] == 200
