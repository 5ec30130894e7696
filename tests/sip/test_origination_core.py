"""Third-party call control (RFC 3725 flow I) in the sans-IO B2BUA, with simulated phones."""

from __future__ import annotations

from calls_harness import DOMAIN, PLAIN_SDP, World

from callto.sip.b2bua import Disposition
from callto.sip.message import make_response
from callto.sip.origination import MAX_DESTINATION_RING, OriginationSpec, originate
from callto.sip.sdp import parse_sdp
from callto.sip.trunk import TrunkConfig, TrunkRouter

DEST_SDP = PLAIN_SDP.replace(b"40000", b"40002")


def _spec(**overrides: object) -> OriginationSpec:
    values: dict[str, object] = {
        "call_id": "c2c",
        "user_id": "u-a",
        "destination": "202",
        "destination_is_extension": True,
        "destination_display": "Bob",
        "device_sip_username": "desk",
    }
    values.update(overrides)
    return OriginationSpec(**values)  # type: ignore[arg-type]


def _start(world: World, **overrides: object) -> list[tuple[bool, str]]:
    results: list[tuple[bool, str]] = []
    originate(world.b2bua, _spec(**overrides), world.now, lambda ok, reason: results.append((ok, reason)))
    world.pump()
    return results


def test_device_is_invited_without_sdp_showing_the_destination_and_result_comes_when_it_rings() -> None:
    world = World()
    desk = world.phone("desk", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    results = _start(world)
    [invite] = desk.requests("INVITE")
    assert invite.body == b""
    assert invite.from_.display == "Bob" and invite.from_.uri_text == f"sip:202@{DOMAIN}"
    assert "Bob" in (invite.headers.get("p-asserted-identity") or "")
    assert "call-info" not in invite.headers and "alert-info" not in invite.headers  # no auto-answer asked
    assert results == []
    desk.answer(invite, 180)
    assert results == [(True, "ringing")]
    assert world.b2bua.user_call_state("u-a") == "ringing"
    assert bob.requests("INVITE") == []  # the destination waits for the device


def test_device_offer_goes_to_the_destination_and_its_answer_back_in_the_devices_ack() -> None:
    world = World()
    desk = world.phone("desk", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    _start(world)
    [invite] = desk.requests("INVITE")
    desk.answer(invite, 200, body=PLAIN_SDP)
    assert desk.requests("ACK") == []  # the answer is not known yet
    assert world.b2bua.user_call_state("u-a") == "busy"
    [dest_invite] = bob.requests("INVITE")
    assert dest_invite.body == PLAIN_SDP
    bob.answer(dest_invite, 200, body=DEST_SDP)
    [ack] = desk.requests("ACK")
    assert ack.body == DEST_SDP
    [dest_ack] = bob.requests("ACK")
    assert dest_ack.body == b""
    assert [k for k, d in world.events if d.get("stage") == "destination"] == ["answered"]


def test_destination_busy_refuses_the_device_offer_and_hangs_up_the_device() -> None:
    world = World()
    desk = world.phone("desk", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    _start(world)
    [invite] = desk.requests("INVITE")
    desk.answer(invite, 200, body=PLAIN_SDP)
    [dest_invite] = bob.requests("INVITE")
    bob.answer(dest_invite, 486)
    messages = desk.requests()
    ack = next(m for m in messages if m.method == "ACK")
    assert [m.port for m in parse_sdp(ack.body).media] == [0]
    assert any(m.method == "BYE" for m in messages)
    [record] = world.records
    assert record.disposition is Disposition.BUSY


def test_destination_rings_at_most_until_the_device_would_give_up() -> None:
    world = World(ring_timeout=60)
    desk = world.phone("desk", "u-a", "201")
    bob = world.phone("bob", "u-b", "202")
    _start(world)
    [invite] = desk.requests("INVITE")
    desk.answer(invite, 200, body=PLAIN_SDP)
    bob.requests("INVITE")
    world.tick(MAX_DESTINATION_RING + 0.5)
    assert bob.requests("CANCEL")
    assert any(m.method == "BYE" for m in desk.requests())
    assert world.records[0].hangup_cause == "no-answer"


def test_hangup_while_the_device_rings_cancels_it() -> None:
    world = World()
    desk = world.phone("desk", "u-a", "201")
    results = _start(world)
    [invite] = desk.requests("INVITE")
    desk.answer(invite, 180)
    assert world.b2bua.hangup("c2c", world.now)
    world.pump()
    assert desk.requests("CANCEL")
    assert results == [(True, "ringing")]
    assert world.records[0].disposition is Disposition.CANCELLED


def test_first_leg_to_a_mobile_goes_through_the_trunk() -> None:
    router = TrunkRouter(resolve=lambda host: host)
    world = World(trunks=router)
    provider = world.phone()
    router.set([TrunkConfig("t1", "P", "127.0.0.1", provider.port, caller_id="3900")])
    results = _start(world, device_sip_username=None, first_leg_number="3331234567")
    [invite] = provider.requests("INVITE")
    assert invite.uri == f"sip:3331234567@127.0.0.1:{provider.port}"
    provider.answer(invite, 183)
    assert results == [(True, "ringing")]


def test_unknown_device_and_missing_first_leg_fail_with_a_reason() -> None:
    world = World()
    assert _start(world, device_sip_username="nobody") == [(False, "unknown SIP device 'nobody'")]
    assert _start(world, device_sip_username=None)[0][0] is False


def test_device_rejecting_reports_the_status() -> None:
    world = World()
    desk = world.phone("desk", "u-a", "201")
    results = _start(world)
    [invite] = desk.requests("INVITE")
    desk.send(make_response(invite, 603, to_tag="d1"))
    assert results and results[0][0] is False and "603" in results[0][1]
