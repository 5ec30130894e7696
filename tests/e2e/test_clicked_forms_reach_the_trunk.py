"""Every form of number a user clicks reaches the provider trunk as the digits the dial plan makes of it;
anything that is not a number is refused before a single SIP message leaves the switch."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from callto.dialer.dialplan import DialPlan
from callto.dialer.numbers import normalize
from e2e.test_click_to_call_desk_phone import register_phone
from support.fixtures import BaresipFactory
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]

ACCEPTED = [
    "tel:+39-0721-405516",
    "tel:+390721405516;ext=23",
    "tel:0721405516;phone-context=+39",
    "tel:%2B39%20071%20123456",
    "callto:+390721405516",
    "callto://0721405516",
    "+39 (0721) 40 55 16",
    "0721/405516",
    "TEL://+44-20-7946-0958/",
]
REJECTED = ["hello", "tel:0721@evil.example", "0721\r\nVia: x", "", "1" * 40]


class FakeProvider:
    """A provider's SIP port that answers every INVITE 486 at once and remembers its Request-URI user."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.invites: list[str] = []
        self.messages = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages += 1
            text = data.decode("utf-8", "replace")
            if not text.startswith("INVITE "):
                continue
            self.invites.append(text.split(" ", 2)[1])
            heads = {}
            for line in text.split("\r\n")[1:]:
                name = line.partition(":")[0]
                heads.setdefault(name.strip().lower(), []).append(line)
            answer = ["SIP/2.0 486 Busy Here", *heads.get("via", []), *heads.get("from", []),
                      heads["to"][0] + ";tag=prov1", *heads.get("call-id", []), *heads.get("cseq", []),
                      "Content-Length: 0", "", ""]
            self.sock.sendto("\r\n".join(answer).encode(), addr)

    def users(self) -> list[str]:
        return [re.sub(r"^sips?:", "", uri).split("@", 1)[0] for uri in self.invites]

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Any:
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}").start()
    yield proc
    proc.stop()


def test_each_clicked_form_reaches_the_trunk_as_dialed_digits(
    sqlite_server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    server = sqlite_server
    provider = FakeProvider()
    try:
        admin = Api(server.url).login("admin", "admin-secret-1")
        r = admin.post("/api/v1/admin/trunks", json={"name": "provider", "host": "127.0.0.1", "port": provider.port})
        assert r.status_code == 201, r.text
        user = admin.create_user("dora", extension="701", outbound="international")
        desk = register_phone(baresip_factory, tone_440, server, admin.add_device(user["id"], "deskphone"),
                              "dora", answermode="auto")
        api = Api(server.url).login("dora", "password-123")
        plan = DialPlan()
        for bad in REJECTED:
            r = api.post("/api/v1/calls", json={"to": bad})
            assert r.status_code == 422 and r.json()["error"] == "invalid-number", (bad, r.text)
        time.sleep(0.5)
        assert provider.messages == 0, "nothing reached the provider for input that is not a number"
        with pytest.raises(Exception, match="CALL_INCOMING"):
            desk.wait_incoming(timeout=0.3)  # and the desk phone was never rung

        for form in ACCEPTED:
            before = len(provider.invites)
            r = api.post("/api/v1/calls", json={"to": form})
            assert r.status_code == 202, (form, r.text)
            deadline = time.monotonic() + 10
            while len(provider.invites) == before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(provider.invites) > before, f"{form!r} never reached the provider"
            assert provider.users()[-1] == normalize(form, plan).dialed, form
            desk.wait_closed(timeout=5)
        assert provider.users()[0] == "0721405516"
        assert provider.users()[-1] == "00442079460958"
    finally:
        provider.close()
