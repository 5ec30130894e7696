"""The shipped Kamailio edge (packaging/kamailio/callto-edge.cfg) in front of a callto switch: phones
register through it with a Path, and calls between them pass it both ways with audio (real baresip)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from calls_harness import RunningSwitch, running_switch

from callto.sip.b2bua import Disposition
from support.baresip import Account, Baresip, BaresipError
from support.fixtures import BaresipFactory, baresip_factory, tone_440, tone_1000
from support.kamailio import Edge, kamailio_missing, start_edge
from support.procs import ProcessGroup
from support.tone import describe, has_tone

__all__ = ["baresip_factory", "tone_440", "tone_1000"]

pytestmark = [
    pytest.mark.sip,
    pytest.mark.timeout(90),
    pytest.mark.skipif(kamailio_missing() is not None, reason=str(kamailio_missing())),
]

DOMAIN = "pbx.callto.test"


@pytest.fixture
def switch() -> Iterator[RunningSwitch]:
    with running_switch() as running:
        yield running


@pytest.fixture
def edge(switch: RunningSwitch, procs: ProcessGroup, tmp_path: Path) -> Edge:
    return start_edge(procs, tmp_path / "edge", [("127.0.0.1", switch.port)])


def _phone_via_edge(
    switch: RunningSwitch, edge: Edge, factory: BaresipFactory, name: str, tone: Path, user: str, ext: str
) -> Baresip:
    account = switch.add(name, user, ext)
    phone = factory(
        name,
        tone,
        account=Account(
            aor=f"sip:{account.username}@{DOMAIN}",
            password=account.password,
            auth_user=account.username,
            outbound=f"sip:{edge.address};transport=udp",
            regint=600,
        ),
    )
    phone.wait_registered(timeout=10)
    return phone


def test_phones_register_through_the_edge_with_its_path(
    switch: RunningSwitch, edge: Edge, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    _phone_via_edge(switch, edge, baresip_factory, "alice", tone_440, "u-alice", "201")
    [binding] = switch.call(lambda: switch.switch.server.registrar.bindings_for_user("u-alice"))
    assert binding.path, "the edge must add a Path to the REGISTER"
    assert f"127.0.0.1:{edge.port}" in binding.path[0] and "received=" in binding.path[0], binding.path
    assert (binding.source_host, binding.source_port) == ("127.0.0.1", edge.port)


def test_call_between_phones_behind_the_edge_has_audio_both_ways(
    switch: RunningSwitch, edge: Edge, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    alice = _phone_via_edge(switch, edge, baresip_factory, "alice", tone_440, "u-alice", "201")
    bob = _phone_via_edge(switch, edge, baresip_factory, "bob", tone_1000, "u-bob", "202")

    alice.dial(f"sip:202@{DOMAIN}")
    bob.wait_incoming(timeout=10)
    bob.answer()
    alice.wait_established(timeout=5)
    bob.wait_established(timeout=5)
    time.sleep(2.5)
    bob.hangup()  # the BYE follows the record-routed path through the edge
    alice.wait_closed(timeout=5)

    [record] = switch.wait_records(1)
    assert record.disposition is Disposition.ANSWERED
    assert record.hangup_cause == "callee-hangup"
    heard_by_bob, heard_by_alice = bob.received_wav(), alice.received_wav()
    assert has_tone(heard_by_bob, 440, min_seconds=1.5), describe(heard_by_bob)
    assert has_tone(heard_by_alice, 1000, min_seconds=1.5), describe(heard_by_alice)


def test_edge_answers_503_when_no_node_is_up(
    procs: ProcessGroup, tmp_path: Path, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    from support.ports import free_port

    dead = free_port("udp")  # nothing listens: the probe marks the only node inactive
    edge = start_edge(procs, tmp_path / "edge", [("127.0.0.1", dead)])
    time.sleep(4.5)  # probes every second; an unanswered one (2 s transaction timeout) sets the node inactive
    phone = baresip_factory(
        "lonely",
        tone_440,
        account=Account(
            aor=f"sip:lonely@{DOMAIN}", password="x", auth_user="lonely", outbound=f"sip:{edge.address};transport=udp"
        ),
    )
    with pytest.raises(BaresipError, match="503"):
        phone.wait_registered(timeout=15)


def test_a_phone_whose_node_died_registers_on_the_survivor(
    procs: ProcessGroup, tmp_path: Path, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    with running_switch() as one, running_switch() as two:
        edge = start_edge(procs, tmp_path / "edge", [("127.0.0.1", one.port), ("127.0.0.1", two.port)])
        for node in (one, two):  # the same account on both, as one shared database gives
            node.add("carol", "u-carol", "203")
        phone = _phone_via_edge_account(edge, baresip_factory, "carol", "pw-carol", tone_440)
        homes = [n for n in (one, two) if n.call(lambda n=n: n.switch.server.registrar.bindings_for_user("u-carol"))]
        assert len(homes) == 1, "one phone, one node (sticky per AOR)"
        home = homes[0]
        survivor = two if home is one else one
        home.loop.run(home.switch.stop(), 15)
        time.sleep(3.5)  # the edge's probe notices within about three seconds
        phone.stop()  # this baresip cannot re-register on command: a restarted phone REGISTERs afresh
        _phone_via_edge_account(edge, baresip_factory, "carol", "pw-carol", tone_440, label="carol-again")
        assert survivor.call(lambda: survivor.switch.server.registrar.bindings_for_user("u-carol"))


def _phone_via_edge_account(
    edge: Edge, factory: BaresipFactory, name: str, password: str, tone: Path, label: str | None = None
) -> Baresip:
    phone = factory(
        label or name,
        tone,
        account=Account(
            aor=f"sip:{name}@{DOMAIN}",
            password=password,
            auth_user=name,
            outbound=f"sip:{edge.address};transport=udp",
            regint=600,
        ),
    )
    phone.wait_registered(timeout=10)
    return phone
