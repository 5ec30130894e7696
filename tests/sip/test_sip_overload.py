"""Load shedding: when the loop lags, new REGISTERs and INVITEs get 503 + Retry-After while requests in
dialogs keep being served, and the switch recovers when the lag drops. Sans-IO: the lag is fed in as a
number and the server's one send path is tapped; one test runs the real lag probe on a loop."""

from __future__ import annotations

import asyncio
import time

from sip_helpers import DOMAIN, torture_credentials

from callto.sip.endpoint import EndpointConfig, SipEndpoint
from callto.sip.message import Response, parse_message
from callto.sip.overload import LoadShedder, OverloadConfig
from callto.sip.ports import InMemoryBindingStore
from callto.sip.server import SipServer

PHONE = ("127.0.0.1", 5099)


def _request(method: str, n: int, *, to_tag: str | None = None) -> bytes:
    to = f"<sip:alice@{DOMAIN}>" + (f";tag={to_tag}" if to_tag else "")
    cseq_method = "INVITE" if method == "ACK" else method
    return (
        f"{method} sip:{'alice@' if method != 'REGISTER' else ''}{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-{method.lower()}-{n}\r\n"
        f"From: <sip:bob@{DOMAIN}>;tag=from-{n}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: call-{method}-{n}@127.0.0.1\r\n"
        f"CSeq: 1 {cseq_method}\r\n"
        "Contact: <sip:bob@127.0.0.1:5099>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class _Driven:
    """A SipServer with an endpoint but no sockets: datagrams fed in, what leaves by ``transmit`` kept."""

    def __init__(self, config: OverloadConfig | None = None) -> None:
        self.server = SipServer("127.0.0.1", 5060, DOMAIN, torture_credentials(), InMemoryBindingStore(),
                                overload=config or OverloadConfig(smoothing=1.0, hold=1.0))
        self.server.endpoint = SipEndpoint(EndpointConfig(domain=DOMAIN, local_hosts=frozenset({"127.0.0.1"}),
                                                          via_host="127.0.0.1", via_port=5060))
        self.sent: list[Response] = []

        def tap(data: bytes, addr: tuple[str, int], transport: str, conn_id: int | None, close: bool) -> None:
            message = parse_message(data, strict=False)
            assert isinstance(message, Response)
            self.sent.append(message)

        self.server.transmit = tap  # type: ignore[method-assign]

    def feed(self, data: bytes, now: float) -> Response:
        assert self.server.endpoint is not None
        before = len(self.sent)
        self.server.endpoint.receive_datagram(data, PHONE, now)
        self.server.pump()
        [answer] = [r for r in self.sent[before:] if r.status >= 200]  # an INVITE also gets 100 Trying
        return answer


def test_a_new_register_is_answered_503_with_retry_after_while_the_loop_lags() -> None:
    driven = _Driven()
    assert driven.feed(_request("REGISTER", 1), 0.0).status == 401  # calm: the registrar challenges
    driven.server.shedder.note_lag(0.25, 1.0)  # smoothing=1: the lag as fed
    shed = driven.feed(_request("REGISTER", 2), 1.0)
    assert shed.status == 503
    assert shed.headers.get("Retry-After") == "5"
    assert driven.server.shedder.shed["REGISTER"] == 1


def test_a_new_invite_is_shed_but_a_bye_in_a_dialog_is_still_served() -> None:
    driven = _Driven()
    driven.server.shedder.note_lag(0.5, 0.0)
    assert driven.feed(_request("INVITE", 1), 0.0).status == 503
    # in a dialog (To tag): no call handler here, so the default 481 -- served, not shed
    assert driven.feed(_request("BYE", 2, to_tag="t2"), 0.0).status == 481
    assert driven.feed(_request("INVITE", 3, to_tag="t3"), 0.0).status == 481  # a re-INVITE is not new work
    assert dict(driven.server.shedder.shed) == {"INVITE": 1}


def test_shedding_stops_once_the_lag_has_stayed_low_for_the_hold_time() -> None:
    driven = _Driven(OverloadConfig(smoothing=1.0, hold=1.0))
    shedder = driven.server.shedder
    shedder.note_lag(0.3, 0.0)
    shedder.note_lag(0.01, 0.1)  # calm starts
    assert driven.feed(_request("REGISTER", 1), 0.5).status == 503  # not calm long enough
    shedder.note_lag(0.01, 1.2)
    assert not shedder.shedding
    assert driven.feed(_request("REGISTER", 2), 1.2).status == 401
    assert shedder.episodes == 1


def test_a_lag_spike_during_the_calm_period_restarts_the_hold() -> None:
    shedder = LoadShedder(OverloadConfig(smoothing=1.0, start_lag=0.1, stop_lag=0.03, hold=1.0))
    shedder.note_lag(0.2, 0.0)
    shedder.note_lag(0.0, 0.1)
    shedder.note_lag(0.06, 0.6)  # between stop and start: not calm, still shedding
    shedder.note_lag(0.0, 1.2)
    assert shedder.shedding
    shedder.note_lag(0.0, 2.3)
    assert not shedder.shedding


def test_one_stall_of_the_loop_does_not_shed_but_a_loop_that_stays_late_does() -> None:
    shedder = LoadShedder()
    shedder.note_lag(0.4, 0.0)  # a GC pause, or the machine busy elsewhere for a moment
    shedder.note_lag(0.0, 0.05)
    assert not shedder.shedding
    for i in range(10):
        shedder.note_lag(0.3, 0.1 + i * 0.35)
    assert shedder.shedding


def test_a_single_long_stall_does_not_turn_phones_away() -> None:
    # a server starved of CPU for seconds (starting up, a loaded host) answers late once; that is not overload
    shedder = LoadShedder()
    shedder.note_lag(3.0, 0.0)
    for i in range(1, 5):
        shedder.note_lag(0.0, i * 0.05)
    assert not shedder.shedding and shedder.episodes == 0


def test_three_late_probes_in_a_row_start_shedding() -> None:
    shedder = LoadShedder()
    for i in range(3):
        shedder.note_lag(1.0, i * 0.05)
    assert shedder.shedding


def test_a_full_receive_queue_starts_shedding_before_the_loop_shows_lag() -> None:
    shedder = LoadShedder(OverloadConfig(start_backlog=0.5))
    shedder.note_lag(0.0, 0.0, backlog=0.6)
    assert shedder.shedding


def test_the_drivers_lag_probe_sees_a_loop_held_busy_and_recovers() -> None:
    async def scenario() -> tuple[int, bool, bool]:
        server = SipServer("127.0.0.1", 0, DOMAIN, torture_credentials(), InMemoryBindingStore(), tcp=False,
                           overload=OverloadConfig(tick=0.02, smoothing=1.0, start_lag=0.1, stop_lag=0.05, hold=0.2))
        await server.start()
        try:
            await asyncio.sleep(0.1)
            calm = server.shedder.shedding
            time.sleep(0.3)  # a handler that holds the loop: the probe runs ~0.3 s late
            await asyncio.sleep(0.05)
            episodes = server.shedder.episodes
            await asyncio.sleep(0.6)
            return episodes, calm, server.shedder.shedding
        finally:
            await server.stop()

    episodes, shedding_before, shedding_after = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert not shedding_before
    assert episodes == 1
    assert not shedding_after
