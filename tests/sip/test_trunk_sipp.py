"""A provider stands in as sipp: outbound REGISTER and calls with digest auth, inbound calls by DID."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from calls_harness import RunningSwitch, running_switch

from callto.sip.b2bua import Disposition
from callto.sip.ports import SipAccount
from callto.sip.trunk import TrunkConfig
from support.baresip import Baresip
from support.fixtures import BaresipFactory, baresip_factory, tone_440, tone_1000
from support.ports import free_port
from support.procs import ProcessError
from support.sipp import run_sipp, start_sipp

__all__ = ["baresip_factory", "tone_440", "tone_1000"]

pytestmark = [pytest.mark.sip, pytest.mark.timeout(60)]

# A provider (UAS): REGISTER gets 401 then 200 when the credentials are right; an INVITE gets 401, then
# (with valid credentials) 180 and 200 with SDP; the call ends with a BYE from our side.
PROVIDER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="provider">
  <recv request="REGISTER" optional="true" next="register"/>
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="provider.test", nonce="5e2b0a1c9d8f7e6d5c4b3a29180706f5", algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action>
      <verifyauth assign_to="invite_ok" username="trunkuser" password="trunkpass"/>
    </action>
  </recv>
  <nop hide="true" test="invite_ok" next="answer"/>
  <send next="end">
    <![CDATA[
      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag02[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="answer"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag02[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:provider@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag02[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:provider@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=provider 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send next="end">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="register"/>
  <send>
    <![CDATA[
      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag03[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="provider.test", nonce="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d", algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="register_ok" username="trunkuser" password="trunkpass"/>
    </action>
  </recv>
  <nop hide="true" test="register_ok" next="registered"/>
  <send next="end">
    <![CDATA[
      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag03[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="registered"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag03[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Contact:];expires=600
      Content-Length: 0

    ]]>
  </send>
  <label id="end"/>
</scenario>
"""


@pytest.fixture
def switch() -> Iterator[RunningSwitch]:
    def may_call(account: SipAccount, dialed: str) -> bool:
        return not dialed.startswith("00")  # this test's class: national yes, international no

    with running_switch(may_call=may_call) as running:
        yield running


def _phone(
    switch: RunningSwitch,
    factory: BaresipFactory,
    name: str,
    tone: Path,
    user: str,
    ext: str,
    answermode: str = "manual",
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


def _trunk(
    port: int, *, register: bool, password: str = "trunkpass", dids: tuple[str, ...] = (), transport: str = "udp"
) -> TrunkConfig:
    return TrunkConfig(
        transport=transport,
        id="t1",
        name="Provider",
        host="127.0.0.1",
        port=port,
        username="trunkuser",
        password=password,
        register=register,
        caller_id="390721000000",
        dids=dids,
    )


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout}s")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_trunk_registers_with_auth_and_an_outside_number_reaches_it_with_credentials(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path, tmp_path: Path, transport: str
) -> None:
    scenario = tmp_path / "provider.xml"
    scenario.write_text(PROVIDER)
    sipp_transport = "u1" if transport == "udp" else "t1"
    provider = start_sipp(scenario, None, tmp_path / "sipp", calls=2, timeout=40, transport=sipp_transport)
    try:
        time.sleep(0.3)
        trunk = _trunk(provider.port, register=True, transport=transport)
        switch.call(lambda: switch.switch.set_trunks([trunk]))
        _wait(lambda: switch.call(switch.switch.trunk_summary)[0]["registered"], 10, "trunk registration")
        [summary] = switch.call(switch.switch.trunk_summary)
        assert summary == {"id": "t1", "name": "Provider", "register": True, "registered": True, "last_error": None}

        alice = _phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
        alice.dial("sip:0721405516@pbx.callto.test")
        alice.wait_ringing(timeout=10)
        alice.wait_established(timeout=10)
        time.sleep(0.5)
        alice.hangup()
        alice.wait_closed(timeout=5)
        result = provider.finish(timeout=15)
    finally:
        provider.kill()
    assert result.ok, result.describe()
    messages = result.messages()
    assert "INVITE sip:0721405516@127.0.0.1" in messages
    assert 'username="trunkuser"' in messages
    assert "sip:390721000000@" in messages  # the trunk's caller id in From
    [record] = switch.wait_records(1)
    assert record.direction == "outbound" and record.trunk_id == "t1"
    assert record.disposition is Disposition.ANSWERED


def test_wrong_trunk_password_shows_in_the_summary(switch: RunningSwitch, tmp_path: Path) -> None:
    scenario = tmp_path / "provider.xml"
    scenario.write_text(PROVIDER)
    provider = start_sipp(scenario, None, tmp_path / "sipp", calls=1, timeout=20)
    try:
        time.sleep(0.3)
        switch.call(lambda: switch.switch.set_trunks([_trunk(provider.port, register=True, password="nope")]))
        _wait(lambda: switch.call(switch.switch.trunk_summary)[0]["last_error"] is not None, 10, "a trunk error")
        [summary] = switch.call(switch.switch.trunk_summary)
        assert summary["registered"] is False
        assert summary["last_error"].startswith("403")
    finally:
        provider.kill()


def test_outbound_class_refuses_an_international_number(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_440: Path
) -> None:
    switch.call(lambda: switch.switch.set_trunks([_trunk(free_port("udp"), register=False)]))
    alice = _phone(switch, baresip_factory, "alice", tone_440, "u-alice", "201")
    alice.dial("sip:0044207946000@pbx.callto.test")
    closed = alice.wait_closed(timeout=5)
    assert "403" in str(closed.get("param", "")), closed
    [record] = switch.wait_records(1)
    assert record.hangup_cause == "not-permitted"


def test_inbound_did_call_from_the_trunk_rings_the_users_devices(
    switch: RunningSwitch, baresip_factory: BaresipFactory, tone_1000: Path, tmp_path: Path
) -> None:
    sipp_port = free_port("udp")
    switch.call(lambda: switch.switch.set_trunks([_trunk(sipp_port, register=False, dids=("+390721405202=202",))]))
    desk = _phone(switch, baresip_factory, "bobdesk", tone_1000, "u-bob", "202", "auto")
    soft = _phone(switch, baresip_factory, "bobsoft", tone_1000, "u-bob", "202", "manual")
    switch.wait_bindings("u-bob", 2)
    uac = tmp_path / "uac.xml"  # sipp's own UAC scenario (INVITE with SDP, ACK, pause, BYE)
    uac.write_text(subprocess.run(["sipp", "-sd", "uac"], capture_output=True, text=True, check=False).stdout)
    result = run_sipp(
        uac,
        f"127.0.0.1:{switch.port}",
        tmp_path / "sipp-uac",
        local_port=sipp_port,
        timeout=20,
        extra=["-s", "00390721405202", "-d", "500"],
    )
    assert result.returncode == 0, result.describe()
    desk.wait_established(timeout=5)
    soft.wait_incoming(timeout=5)
    soft.wait_closed(timeout=5)  # the other device was cancelled when the desk phone answered
    [record] = switch.wait_records(1)
    assert record.direction == "inbound"
    assert record.callee_user_id == "u-bob"
    assert record.answered_device_id == "dev-bobdesk"


def test_a_trunk_named_by_host_name_registers_once_the_name_is_looked_up_off_the_loop(
    switch: RunningSwitch, tmp_path: Path
) -> None:
    import socket
    from dataclasses import replace

    first = socket.getaddrinfo("localhost", None, type=socket.SOCK_DGRAM)[0][4][0]
    if first != "127.0.0.1":
        pytest.skip(f"localhost resolves to {first} first here; the provider listens on 127.0.0.1")
    scenario = tmp_path / "provider.xml"
    scenario.write_text(PROVIDER)
    provider = start_sipp(scenario, None, tmp_path / "sipp", calls=1, timeout=20)
    try:
        time.sleep(0.3)
        trunk = replace(_trunk(provider.port, register=True), host="localhost")
        # set_trunks returns at once: the name is resolved in a worker thread, never on the event loop
        switch.call(lambda: switch.switch.set_trunks([trunk]))
        assert switch.call(lambda: switch.switch.router.addresses["t1"]) in ("localhost", "127.0.0.1")
        _wait(lambda: switch.call(switch.switch.trunk_summary)[0]["registered"], 10, "trunk registration")
        assert switch.call(lambda: switch.switch.router.addresses["t1"]) == "127.0.0.1"
    finally:
        provider.kill()
