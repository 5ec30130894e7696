"""Click-to-call origination with real phones: the desk phone rings first showing the destination."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from calls_harness import RunningSwitch, running_switch

from callto.dialer.numbers import Number, NumberKind
from callto.dialer.ports import OriginateRequest, OriginateResult
from callto.sip.b2bua import Disposition
from callto.sip.message import Request, make_response, parse_message
from callto.sip.ports import Binding
from support.baresip import Baresip
from support.fixtures import BaresipFactory, baresip_factory, tone_440, tone_1000
from support.procs import ProcessError
from support.tone import describe, has_tone

__all__ = ["baresip_factory", "tone_440", "tone_1000"]

pytestmark = [pytest.mark.sip, pytest.mark.timeout(60)]


@pytest.fixture
def switch() -> Iterator[RunningSwitch]:
    with running_switch() as running:
        yield running


def _phone(
    switch: RunningSwitch, factory: BaresipFactory, name: str, tone: Path, user: str, ext: str, answermode: str
) -> Baresip:
    account = switch.add(name, user, ext)
    for attempt in range(3):
        try:
            phone = factory(f"{name}{attempt or ''}", tone, account=switch.phone_account(account, answermode))
            break
        except ProcessError:  # baresip's TLS listener takes sip_port+1, which a neighbour may hold
            if attempt == 2:
                raise
    phone.wait_registered(timeout=10)
    return phone


def _request(call_id: str, user: str, device: str, number: str, *, auto_answer: bool) -> OriginateRequest:
    destination = Number(NumberKind.EXTENSION, number, None, f"Bob {number}", extension=number)
    return OriginateRequest(call_id, user, device, destination, auto_answer=auto_answer)  # type: ignore[arg-type]


def test_desk_phone_rings_before_destination_and_audio_flows_both_ways(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    desk = _phone(switch, baresip_factory, "desk", tone_440, "u-alice", "201", "manual")
    bob = _phone(switch, baresip_factory, "bob", tone_1000, "u-bob", "202", "manual")

    result = switch.loop.run(switch.switch.originate(_request("c2c-1", "u-alice", "desk", "202", auto_answer=False)))
    assert result.ok, result
    assert result.reason == "ringing"

    incoming = desk.wait_incoming(timeout=5)
    shown = f"{incoming.get('peeruri')} {incoming.get('peerdisplayname')}"
    assert "202" in shown, incoming  # the desk phone's screen shows whom it will call
    with pytest.raises(Exception, match="CALL_INCOMING"):
        bob.wait_incoming(timeout=0.5)  # the destination is not rung before the desk phone answers
    switch.wait_event("ringing", call_id="c2c-1", stage="device")

    desk.answer()
    bob.wait_incoming(timeout=5)
    switch.wait_event("ringing", call_id="c2c-1", stage="destination")
    bob.answer()
    desk.wait_established(timeout=5)
    bob.wait_established(timeout=5)
    switch.wait_event("answered", call_id="c2c-1", stage="destination")
    time.sleep(2.5)
    assert switch.loop.run(switch.switch.hangup("c2c-1"))
    desk.wait_closed(timeout=5)
    bob.wait_closed(timeout=5)

    [record] = switch.wait_records(1)
    assert record.call_id == "c2c-1"
    assert record.direction == "originate"
    assert record.disposition is Disposition.ANSWERED
    heard_by_bob, heard_by_desk = bob.received_wav(), desk.received_wav()
    assert has_tone(heard_by_bob, 440, min_seconds=1.5), describe(heard_by_bob)
    assert has_tone(heard_by_desk, 1000, min_seconds=1.5), describe(heard_by_desk)


def test_auto_answer_desk_phone_answers_itself_and_destination_rings(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tone_1000: Path
) -> None:
    desk = _phone(switch, baresip_factory, "desk", tone_440, "u-alice", "201", "auto")
    bob = _phone(switch, baresip_factory, "bob", tone_1000, "u-bob", "202", "auto")
    result = switch.loop.run(switch.switch.originate(_request("c2c-2", "u-alice", "desk", "202", auto_answer=True)))
    assert result.ok, result
    desk.wait_established(timeout=5)
    bob.wait_established(timeout=5)
    bob.hangup()
    desk.wait_closed(timeout=5)
    [record] = switch.wait_records(1)
    assert record.hangup_cause == "destination-hangup"


def test_desk_phone_rejecting_ends_the_attempt_with_a_reason(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    desk = _phone(switch, baresip_factory, "desk", tone_440, "u-alice", "201", "manual")
    result = switch.loop.run(switch.switch.originate(_request("c2c-3", "u-alice", "desk", "202", auto_answer=False)))
    assert result.ok
    desk.wait_incoming(timeout=5)
    desk.command("hangup")
    [record] = switch.wait_records(1)
    assert record.disposition is Disposition.BUSY
    assert "486" in record.hangup_cause


def test_originate_to_an_unregistered_device_fails_at_once(switch: RunningSwitch) -> None:
    switch.add("desk", "u-alice", "201")
    result = switch.loop.run(switch.switch.originate(_request("c2c-4", "u-alice", "desk", "202", auto_answer=False)))
    assert not result.ok
    assert "not registered" in result.reason


def test_originate_refuses_another_users_device(switch: RunningSwitch) -> None:
    switch.add("desk", "u-alice", "201")
    result = switch.loop.run(switch.switch.originate(_request("c2c-5", "u-mallory", "desk", "202", auto_answer=False)))
    assert not result.ok
    assert "does not belong" in result.reason


def _fake_yealink(switch: RunningSwitch) -> socket.socket:
    """A UDP socket registered as a Yealink desk phone (binding as the registrar stores it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    switch.add("yealink", "u-alice", "201")
    now = time.time()
    binding = Binding(
        device_id="dev-yealink",
        user_id="u-alice",
        extension="201",
        aor="sip:201@pbx.callto.test",
        contact=f"sip:201-x@127.0.0.1:{port}",
        contact_header="",
        expires_at=now + 600,
        call_id="r1",
        cseq=1,
        source_transport="udp",
        source_host="127.0.0.1",
        source_port=port,
        registered_at=now,
        user_agent="Yealink SIP-T46S 66.86.0.15",
    )
    switch.store.upsert(binding)
    switch.call(lambda: switch.switch.server.registrar.load(now))
    return sock


def test_auto_answer_header_follows_the_phone_vendor_and_invite_shows_the_destination(
    switch: RunningSwitch,
) -> None:
    sock = _fake_yealink(switch)
    try:
        request = _request("c2c-6", "u-alice", "yealink", "202", auto_answer=True)
        result_box: list[object] = []

        async def go() -> None:
            result_box.append(await switch.switch.originate(request))

        future = asyncio.run_coroutine_threadsafe(go(), switch.loop.loop)
        data, addr = sock.recvfrom(65535)
        invite = parse_message(data)
        assert isinstance(invite, Request) and invite.method == "INVITE"
        assert invite.headers.get("alert-info") == "info=alert-autoanswer"  # Yealink's variant, from the catalog
        assert "answer-after" not in (invite.headers.get("call-info") or "")
        assert invite.from_.display == "Bob 202" and invite.from_.uri_text.startswith("sip:202@")
        assert "202" in (invite.headers.get("p-asserted-identity") or "")
        assert not invite.body  # third-party call control: the device makes the offer
        sock.sendto(make_response(invite, 180, to_tag="y1").to_bytes(), addr)
        future.result(5)
        assert result_box[0] == OriginateResult(True, "ringing", {"call_id": "c2c-6"})
        sock.sendto(make_response(invite, 486, to_tag="y1").to_bytes(), addr)
        [record] = switch.wait_records(1)
        assert record.disposition is Disposition.BUSY
    finally:
        sock.close()


def test_plain_auto_answer_uses_call_info_answer_after_zero(switch: RunningSwitch) -> None:
    sock = _fake_yealink(switch)
    try:
        switch.switch.auto_answer_for = lambda username: None  # a vendor the catalog does not know
        request = _request("c2c-7", "u-alice", "yealink", "202", auto_answer=True)
        asyncio.run_coroutine_threadsafe(switch.switch.originate(request), switch.loop.loop)
        data, addr = sock.recvfrom(65535)
        invite = parse_message(data)
        assert isinstance(invite, Request)
        assert invite.headers.get("call-info") == "<sip:pbx.callto.test>;answer-after=0"
        sock.sendto(make_response(invite, 603, to_tag="y1").to_bytes(), addr)
        [record] = switch.wait_records(1)
        assert record.disposition is Disposition.FAILED
    finally:
        sock.close()
