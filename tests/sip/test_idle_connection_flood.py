"""A flood of idle SIP TCP connections against a real ``callto serve`` (issue 16, scaled down for make test;
``bench/idle_connections.py`` runs the 20,000): the caps hold, ``/api/v1/health`` answers in under a
second throughout, a registered TCP desk phone still gets its click-to-call, the server's memory stays
bounded, the idle ones are closed after the first-message timeout, and the log has a few counted lines
instead of one per refused connection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.baresip import Account
from support.fixtures import BaresipFactory
from support.idle_flood import HealthProbe, IdleFlood, rss_kib
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]

PER_ADDRESS, GLOBAL, FIRST_MESSAGE = 50, 1500, 6


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "CALLTO_SIP_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
        "CALLTO_SIP_CONNECTIONS_MAX": str(GLOBAL),
        "CALLTO_SIP_CONNECTION_FIRST_MESSAGE_TIMEOUT": str(FIRST_MESSAGE),
    }
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'c.db'}",
                         env_extra=env).start()
    yield proc
    proc.stop()


def test_two_thousand_idle_connections_leave_health_and_a_registered_tcp_phone_working(
    server: ServerProcess, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    admin = Api(server.url).login("admin", "admin-secret-1")
    alice = admin.create_user("alice", extension="501", outbound="national")
    admin.create_user("bob", extension="502")
    desk_device = admin.add_device(alice["id"], "deskphone")
    sip = desk_device["sip"]
    account = Account(aor=f"sip:{sip['username']}@callto.test", password=sip["password"],
                      outbound=f"sip:127.0.0.1:{server.sip_port};transport=tcp", regint=600, answermode="manual")
    desk = baresip_factory("alice", tone_440, account)
    desk.wait_registered(timeout=10)
    assert server.proc is not None
    rss_before = rss_kib(server.proc.pid)
    probe = HealthProbe(server.url)
    probe.start()
    # 35 addresses x 60: the per-address cap refuses 10 of each, the global cap what is above 1,500
    flood = IdleFlood(server.sip_port, 35 * 60, per_source=60, first=2).start()
    try:
        time.sleep(1.0)
        state = flood.check()
        assert state["connected"] + state["failed"] == 35 * 60
        held = state["held"]
        # the phone's own connection is one of the GLOBAL
        assert GLOBAL - 1 - 5 <= held <= GLOBAL - 1, state
        rss_flooded = rss_kib(server.proc.pid)

        api = Api(server.url).login("alice", "password-123")
        r = api.post("/api/v1/calls", json={"to": "tel:502"}, headers={"Idempotency-Key": "flood-1"})
        assert r.status_code == 202, r.text
        desk.wait_incoming(timeout=5)  # the INVITE reached the registered TCP phone through the flood
        assert api.delete(f"/api/v1/calls/{r.json()['call_id']}").status_code == 200
        desk.wait_closed(timeout=5)

        time.sleep(FIRST_MESSAGE + 2.5)  # none of them sent a message: all closed by now
        after = flood.check()
        assert after["held"] == 0, after
    finally:
        flood.stop()
        probe.stopping.set()
        probe.join(10)
    # the phone is still registered over its (registered, so exempt) TCP connection
    r = Api(server.url).login("alice", "password-123").post(
        "/api/v1/calls", json={"to": "tel:502"}, headers={"Idempotency-Key": "flood-2"})
    assert r.status_code == 202, r.text
    desk.wait_incoming(timeout=5)
    print(f"held {held} of {35 * 60}; health worst {probe.worst * 1000:.0f} ms over {probe.count} probes; "
          f"RSS {rss_before} -> {rss_flooded} KiB")
    assert probe.count > 20 and probe.worst < 1.0, probe.worst
    assert rss_flooded - rss_before < 80_000, (rss_before, rss_flooded)  # ~50 KiB per held connection at most
    log = server.log()
    assert "Too many open files" not in log
    summary_lines = [line for line in log.splitlines() if "sip connections:" in line]
    assert 1 <= len(summary_lines) <= 6, summary_lines  # counted, not one line per refused connection
    assert any("refused-address-cap=" in line for line in summary_lines), summary_lines
