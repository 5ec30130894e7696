"""A device an admin removes loses its SIP-over-WebSocket flow at once: a web-phone-style client registers
over ``/sip`` of a real ``callto serve`` (digest, MD5), the admin deletes the device, and the server closes
the socket within a second."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from support.server import Api, ServerProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
    yield proc
    proc.stop()


def _register(user: str, auth: str = "", cseq: int = 1) -> str:
    return (f"REGISTER sip:callto.test SIP/2.0\r\nVia: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKr{cseq}\r\n"
            f"From: <sip:{user}@callto.test>;tag=r1\r\nTo: <sip:{user}@callto.test>\r\nCall-ID: rm-{user}\r\n"
            f"CSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n{auth}"
            f"Contact: <sip:{user}@df7jal23ls0d.invalid;transport=ws>;expires=600\r\nContent-Length: 0\r\n\r\n")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # the SIP digest algorithm, not a secret hash


def _registered(ws: ClientConnection, sip: dict[str, Any]) -> str:
    ws.send(_register(sip["username"]))
    challenge = str(ws.recv(timeout=5))
    assert challenge.startswith("SIP/2.0 401"), challenge
    header = next(h for h in challenge.split("\r\n")
                  if h.lower().startswith("www-authenticate:") and "algorithm=MD5" in h)
    realm = re.search(r'realm="([^"]+)"', header)
    nonce = re.search(r'nonce="([^"]+)"', header)
    opaque = re.search(r'opaque="([^"]+)"', header)
    assert realm and nonce and opaque, header
    uri, cnonce = "sip:callto.test", "0a4f113b"
    ha1 = _md5(f"{sip['username']}:{realm[1]}:{sip['password']}")
    response = _md5(f"{ha1}:{nonce[1]}:00000001:{cnonce}:auth:{_md5(f'REGISTER:{uri}')}")
    auth = (f'Authorization: Digest username="{sip["username"]}", realm="{realm[1]}", nonce="{nonce[1]}", '
            f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="{cnonce}", '
            f'opaque="{opaque[1]}"\r\n')
    ws.send(_register(sip["username"], auth, 2))
    return str(ws.recv(timeout=5))


def test_removed_device_loses_its_websocket_within_a_second(server: ServerProcess) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    alice = admin.create_user("alice", extension="501")
    device = admin.add_device(alice["id"], "webphone")
    with connect(f"{server.ws_url}/sip", subprotocols=[Subprotocol("sip")], open_timeout=5) as ws:
        answer = _registered(ws, device["sip"])
        assert answer.startswith("SIP/2.0 200"), answer
        listed = admin.get(f"/api/v1/admin/users/{alice['id']}").json()
        assert [d["online"] for d in listed["devices"] if d["id"] == device["id"]] == [True]
        r = admin.delete(f"/api/v1/admin/devices/{device['id']}")
        assert r.status_code in (200, 204), r.text
        removed = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while time.monotonic() - removed < 1.0:
                try:
                    ws.recv(timeout=0.1)
                except TimeoutError:
                    continue
        assert time.monotonic() - removed < 1.0
