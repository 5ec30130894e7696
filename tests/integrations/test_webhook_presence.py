"""Webhooks subscribed to ``presence.changed`` against a real server and a real loopback receiver: a user's
presence change (do-not-disturb through ``PUT /api/v1/me/presence``) arrives signed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from integrations.receiver import Receiver, verify
from support.server import Api, ServerProcess, admin_client

pytestmark = [pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # webhooks are installation-wide: a server of this module's own
    tmp = tmp_path_factory.mktemp("whp")
    proc = ServerProcess(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'c.db'}").start()
    yield proc
    proc.stop()


def test_a_presence_change_reaches_a_webhook_subscribed_to_it(server: ServerProcess) -> None:
    receiver = Receiver().start()
    try:
        with admin_client(server.url) as admin:
            r = admin.post("/api/v1/admin/webhooks", json={"url": receiver.url, "events": ["presence.changed"]})
            assert r.status_code == 201, r.text
            secret = r.json()["secret"]
            alice = admin.create_user()
            phone = admin.add_device(alice["id"], "webphone")
            api = Api(server.url).login(alice["username"], "password-123")
            try:
                # presence is "offline" without an online device: a web phone session brings one online
                with connect(f"{server.ws_url}/api/v1/events?token={api.token}", open_timeout=5) as ws:
                    assert json.loads(ws.recv(timeout=5))["type"] == "session.ready"
                    ws.send(json.dumps({"type": "hello", "data": {"device_id": phone["id"]}}))
                    receiver.wait_for("presence.changed", user_id=alice["id"], presence="available")
                    assert api.put("/api/v1/me/presence", json={"dnd": True}).status_code == 200
                    got = receiver.wait_for("presence.changed", user_id=alice["id"], presence="dnd")
            finally:
                api.close()
        assert got.json["data"]["previous"] == "available", got.json
        assert got.headers["x-callto-event"] == "presence.changed"
        assert verify(secret, got.headers["x-callto-signature"], got.body)
        assert not verify("whsec_wrong", got.headers["x-callto-signature"], got.body)
    finally:
        receiver.stop()
