"""SIP over WebSocket (``/sip`` on the HTTP port of a real ``callto serve``) is bounded like TCP: a per-address
cap refuses the extra sockets and a socket that never sends a SIP message is closed after the
first-message timeout, while one that does stays."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from support.server import ServerProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"CALLTO_SIP_CONNECTIONS_PER_ADDRESS": "3", "CALLTO_SIP_CONNECTION_FIRST_MESSAGE_TIMEOUT": "2"}
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}",
                         env_extra=env).start()
    yield proc
    proc.stop()


def _options(n: int) -> str:
    return (f"OPTIONS sip:callto.test SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws{n}\r\n"
            f"From: <sip:ws@callto.test>;tag=w{n}\r\nTo: <sip:callto.test>\r\nCall-ID: ws-{n}\r\n"
            f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def _closed(ws: ClientConnection, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            ws.recv(timeout=0.2)
        except TimeoutError:
            continue
        except ConnectionClosed:
            return True
    return False


def test_websocket_flows_have_a_per_address_cap_and_a_first_message_timeout(server: ServerProcess) -> None:
    url = f"{server.ws_url}/sip"
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(connect(url, subprotocols=[Subprotocol("sip")], open_timeout=5))
                 for _ in range(3)]
        with pytest.raises(InvalidStatus):  # the fourth from this address is refused before the handshake
            stack.enter_context(connect(url, subprotocols=[Subprotocol("sip")], open_timeout=5))
        talker = socks[0]
        talker.send(_options(1))
        assert str(talker.recv(timeout=5)).startswith("SIP/2.0 200")
        assert _closed(socks[1], 4.0) and _closed(socks[2], 1.0)  # silent: closed after the 2 s
        talker.send(_options(2))  # still open (its idle timeout is 120 s)
        assert str(talker.recv(timeout=5)).startswith("SIP/2.0 200")
        with connect(url, subprotocols=[Subprotocol("sip")], open_timeout=5):
            pass  # the closed ones gave their places back
    assert "refused-address-cap=" in server.log()
