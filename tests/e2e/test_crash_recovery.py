"""A node killed with SIGKILL during a call: on restart it ends the call towards both phones and records
it once, and its rtpengine neither outlived it nor doubled (real server, baresip phones, rtpengine)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from e2e.test_click_to_call_desk_phone import register_phone
from support.cluster import deployment_env, home_of, phone_via_edge, registered_here
from support.fixtures import BaresipFactory
from support.kamailio import kamailio_missing, start_edge
from support.ports import free_port_range
from support.procs import ProcessGroup
from support.server import Api, ServerProcess

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]


def _rtpengines(pid_path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"--pidfile={pid_path}".encode() in argv and "zombie" not in status.lower():
            found.append(int(entry.name))
    return found


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def test_a_call_up_when_the_node_was_killed_is_ended_and_recorded_on_restart(
    tmp_path: Path, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    low, high = free_port_range(100)
    server = ServerProcess(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        env_extra={
            "CALLTO_MEDIA_RTPENGINE": "auto",
            "CALLTO_MEDIA_PORT_MIN": str(low),
            "CALLTO_MEDIA_PORT_MAX": str(high),
            # The same name after the restart even if a port has to be picked anew.
            "CALLTO_NODE_ID": "restarted-node",
        },
    ).start(timeout=90)
    pid_path = server.data_dir / "run" / "rtpengine" / "rtpengine.pid"
    try:
        admin = Api(server.url).login("admin", "admin-secret-1")
        alice = admin.create_user("alice", extension="501")
        bob = admin.create_user("bob", extension="502")
        alice_phone = register_phone(
            baresip_factory, tone_440, server, admin.add_device(alice["id"], "deskphone"), "alice"
        )
        bob_phone = register_phone(
            baresip_factory, tone_1000, server, admin.add_device(bob["id"], "deskphone"), "bob", answermode="auto"
        )
        assert _wait(lambda: len(_rtpengines(pid_path)) == 1, 10), "the server supervises one rtpengine"

        alice_phone.dial("sip:502@callto.test")
        alice_phone.wait_established(timeout=10)
        bob_phone.wait_established(timeout=5)
        time.sleep(0.6)  # the answered call reaches the database (written behind every 0.2 s)
        # It is in the history while it is up: one entry per side, no end yet.
        up = admin.get("/api/v1/admin/history", params={"limit": 50}).json()["items"]
        assert len(up) == 2 and all(i["ended_at"] is None for i in up), up

        assert server.proc is not None
        os.kill(server.proc.pid, 9)
        server.proc.wait(5)
        assert _wait(lambda: not _rtpengines(pid_path), 3), "rtpengine must not outlive its server"

        server.proc = None
        server.start(timeout=90)
        # The BYEs leave while the switch starts, before the server answers health: within 10 s of that.
        alice_phone.wait_closed(timeout=10)
        bob_phone.wait_closed(timeout=10)
        assert len(_rtpengines(pid_path)) == 1, "exactly one rtpengine after the restart"

        admin = Api(server.url).login("admin", "admin-secret-1")

        def entries() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = admin.get("/api/v1/admin/history", params={"limit": 50}).json()["items"]
            return items

        assert _wait(lambda: len(entries()) >= 2, 5), entries()
        items = entries()
        assert len(items) == 2, f"one entry per side of the one call, recorded once: {items}"
        assert {i["id"] for i in items} == {i["id"] for i in up}, "the entries of the answer, completed"
        assert all(i["ended_at"] is not None for i in items), items
        assert {i["hangup_cause"] for i in items} == {"server-restart"}
        assert all(i["disposition"] == "answered" for i in items), items

        # A second restart finds nothing left over: the call is not recorded twice.
        server.stop()
        server.start(timeout=90)
        admin = Api(server.url).login("admin", "admin-secret-1")
        time.sleep(0.5)
        assert len(entries()) == 2
    finally:
        server.stop()


@pytest.mark.postgres
@pytest.mark.skipif(kamailio_missing() is not None, reason=str(kamailio_missing()))
def test_calls_of_a_node_killed_for_good_are_ended_by_the_survivor_and_new_calls_work_at_once(
    tmp_path: Path, postgres_url: str, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path,
    procs: ProcessGroup,
) -> None:
    # Nodes of one deployment share the database and the key of the secrets encrypted in it; the phones
    # reach them through the shipped Kamailio edge. No Redis: the nodes read each other's registrations.
    shared = deployment_env()
    node_a = ServerProcess(data_dir=tmp_path / "a", database_url=postgres_url, env_extra=shared).start(timeout=90)
    node_b = ServerProcess(data_dir=tmp_path / "b", database_url=postgres_url, env_extra=shared).start(timeout=90)
    nodes = (node_a, node_b)
    try:
        admin = Api(node_a.url).login("admin", "admin-secret-1")
        alice = admin.create_user("alice", extension="501", outbound="national")
        bob = admin.create_user("bob", extension="502")
        alice_desk = admin.add_device(alice["id"], "deskphone")
        bob_desk = admin.add_device(bob["id"], "deskphone")
        time.sleep(1.5)  # node B knows the accounts made through node A
        edge = start_edge(procs, tmp_path / "edge", [("127.0.0.1", n.sip_port) for n in nodes])
        time.sleep(1.5)  # the edge's first probes find both nodes up
        alice_phone = phone_via_edge(baresip_factory, tone_440, edge, alice_desk, "alice")
        doomed = home_of(nodes, (0, 0))  # alice's INVITEs go to her node: it carries the call
        survivor_node = node_b if doomed is node_a else node_a
        bob_phone = phone_via_edge(baresip_factory, tone_1000, edge, bob_desk, "bob", answermode="auto")
        assert _wait(lambda: registered_here(node_a) + registered_here(node_b) == 2, 5)
        time.sleep(1.5)  # each node has taken in the other's registration (full read every second)

        alice_phone.dial("sip:502@callto.test")
        alice_phone.wait_established(timeout=10)
        bob_phone.wait_established(timeout=5)
        time.sleep(0.6)  # the answered call reaches the database
        up = Api(survivor_node.url).login("admin", "admin-secret-1").get("/api/v1/admin/history").json()["items"]
        assert len(up) == 2 and all(i["ended_at"] is None for i in up), f"in the history while up: {up}"

        assert doomed.proc is not None
        os.kill(doomed.proc.pid, 9)
        doomed.proc.wait(5)
        killed = time.monotonic()
        alice_phone.wait_closed(timeout=10)
        bob_phone.wait_closed(timeout=10)
        took = time.monotonic() - killed
        print(f"the survivor ended the dead node's call {took:.1f} s after the kill")
        assert took < 10, f"{took:.1f} s"

        # Within 10 s of the kill, with no phone registering again: a new call from the dead node's phone
        # (the edge fails over to the survivor) and a click on the survivor both work.
        alice_phone.dial("sip:502@callto.test")
        alice_phone.wait_established(timeout=10)
        bob_phone.wait_established(timeout=5)
        alice_phone.hangup()
        bob_phone.wait_closed(timeout=5)
        alice_on_survivor = Api(survivor_node.url).login("alice", "password-123")
        r = alice_on_survivor.post("/api/v1/calls", json={"to": "502"})
        assert r.status_code == 202, r.text
        alice_phone.wait_incoming(timeout=5)
        alice_phone.answer()
        bob_phone.wait_established(timeout=5)
        bob_phone.hangup()
        alice_phone.wait_closed(timeout=5)
        after = time.monotonic() - killed
        print(f"a new call and a click worked {after:.1f} s after the kill")
        assert after < 15, f"{after:.1f} s"  # 10 s for the survivor to take over, plus the calls themselves

        survivor = Api(survivor_node.url).login("admin", "admin-secret-1")

        def died() -> list[dict[str, Any]]:
            items = survivor.get("/api/v1/admin/history", params={"limit": 50}).json()["items"]
            return [i for i in items if i["hangup_cause"] == "node-died"]

        assert _wait(lambda: len(died()) >= 2, 5), died()
        time.sleep(1.5)  # a second claim, or a late duplicate, would show by now
        assert len(died()) == 2, f"one entry per side of the dead node's call, recorded once: {died()}"
        assert {i["id"] for i in died()} == {i["id"] for i in up}, "the entries of the answer, completed"
    finally:
        node_a.stop()
        node_b.stop()
