"""WebRTC <-> RTP through the switch: an aiortc peer speaking SIP over a WebSocket connection calls a
baresip desk phone; the switch bridges DTLS-SRTP/ICE to plain RTP through a real rtpengine.

The peer's SIP goes through :meth:`SipSwitch.ws_message` and comes back through the ``send`` callable,
exactly what the ``/sip`` WebSocket route (``callto.sip.ws``) does with each frame.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from calls_harness import DOMAIN, RunningSwitch, running_switch

from callto.media.supervisor import RtpengineMedia
from callto.sip.auth import DigestClient
from callto.sip.b2bua import Disposition
from callto.sip.message import Request, Response, make_response, parse_message
from support import netns
from support.aiortc_peer import AiortcPeer
from support.fixtures import BaresipFactory, baresip_factory, rtpengine, tone_1000
from support.procs import ProcessError
from support.rtpengine import RtpengineHandle
from support.tone import describe, has_tone, write_tone_wav

__all__ = ["baresip_factory", "rtpengine", "tone_1000"]

pytestmark = [pytest.mark.sip, pytest.mark.media, pytest.mark.timeout(90)]
_n = itertools.count(1)


class WsSipPeer:
    """The SIP half of a browser phone, on one WebSocket connection of the switch."""

    def __init__(self, switch: RunningSwitch, username: str) -> None:
        self.switch = switch
        self.username = username
        self.password = f"pw-{username}"
        self.queue: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.conn = f"ws-test-{next(_n)}"
        self.tag = f"wt{next(_n)}"
        self.call_id = f"webrtc-{next(_n)}@browser"

    def open(self) -> None:
        self.switch.switch.ws_connection_made(self.conn, ("127.0.0.1", 50000 + next(_n)), self._receive)

    def _receive(self, text: str) -> None:
        self.queue.put_nowait(parse_message(text.encode()))

    def send(self, message: Request) -> None:
        self.switch.switch.ws_message(self.conn, message.to_bytes().decode())

    async def final(self, timeout: float = 15.0) -> Response:
        while True:
            message = await asyncio.wait_for(self.queue.get(), timeout)
            if isinstance(message, Response) and message.status >= 200:
                return message

    def request(
        self, method: str, to: str, cseq: int, *, body: str = "", to_tag: str | None = None, auth: str | None = None
    ) -> Request:
        lines = [
            f"{method} sip:{to}@{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bK{next(_n)}w",
            "Max-Forwards: 70",
            f"From: <sip:{self.username}@{DOMAIN}>;tag={self.tag}",
            f"To: <sip:{to}@{DOMAIN}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{self.username}@abc.invalid;transport=ws>",
        ]
        if auth:
            lines.append(f"Proxy-Authorization: {auth}")
        if body:
            lines.append("Content-Type: application/sdp")
        raw = "\r\n".join(lines) + f"\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"
        message = parse_message(raw.encode())
        assert isinstance(message, Request)
        return message


@pytest.fixture
def media_switch(rtpengine: RtpengineHandle) -> Iterator[RunningSwitch]:
    media = RtpengineMedia(rtpengine.host, rtpengine.port)
    with running_switch(media=media, manage_media=True) as running:
        yield running


def test_webrtc_peer_over_websocket_calls_a_desk_phone_through_rtpengine_with_audio_both_ways(
    media_switch: RunningSwitch, baresip_factory: BaresipFactory, tone_1000: Path, tmp_path: Path
) -> None:
    if os.environ.get(netns.MARKER) == "1":
        assert netns.interfaces() == ["lo"]
    switch = media_switch
    switch.add("browser", "u-web", "201")
    desk_account = switch.add("desk", "u-desk", "202")
    for attempt in range(3):
        try:
            desk = baresip_factory(
                f"desk{attempt or ''}", tone_1000, account=switch.phone_account(desk_account, "auto")
            )
            break
        except ProcessError:
            if attempt == 2:
                raise
    desk.wait_registered(timeout=10)
    tone = write_tone_wav(tmp_path / "tone-440-48k.wav", 440.0, seconds=20, rate=48000)

    async def main() -> Path:
        peer = WsSipPeer(switch, "browser")
        peer.open()
        browser = AiortcPeer(tone, tmp_path / "browser-heard.wav")
        try:
            offer = await browser.create_offer()
            first = peer.request("INVITE", "202", 1, body=offer)
            peer.send(first)
            challenge = await peer.final()
            assert challenge.status == 407
            peer.send(peer.request("ACK", "202", 1, to_tag=challenge.to.tag))
            auth = DigestClient("browser", peer.password).authorization(
                challenge.headers.get_all("proxy-authenticate"), "INVITE", first.uri
            )
            peer.send(peer.request("INVITE", "202", 2, body=offer, auth=auth))
            ok = await peer.final()
            assert ok.status == 200, ok
            answer = ok.body.decode()
            assert "UDP/TLS/RTP/SAVPF" in answer and "a=fingerprint" in answer  # rtpengine made it WebRTC
            peer.send(peer.request("ACK", "202", 2, to_tag=ok.to.tag))
            await browser.accept_answer(answer)
            await browser.wait_connected(timeout=10)
            await asyncio.to_thread(desk.wait_established, 5)
            await asyncio.sleep(3.0)
            peer.send(peer.request("BYE", "202", 3, to_tag=ok.to.tag))
            bye_ok = await peer.final()
            assert bye_ok.status == 200
            await asyncio.to_thread(desk.wait_closed, 5)
        finally:
            heard = await browser.close()
            switch.switch.ws_connection_lost(peer.conn)
        return heard

    heard_by_browser = switch.loop.run(main(), timeout=60)
    [record] = switch.wait_records(1)
    assert record.disposition is Disposition.ANSWERED
    heard_by_desk = desk.received_wav()
    assert has_tone(heard_by_desk, 440, min_seconds=1.5), describe(heard_by_desk)
    assert has_tone(heard_by_browser, 1000, min_seconds=1.5), describe(heard_by_browser)


def test_desk_phone_calls_a_web_phone_registered_over_websocket_through_rtpengine(
    media_switch: RunningSwitch, baresip_factory: BaresipFactory, tone_1000: Path, tmp_path: Path
) -> None:
    switch = media_switch
    switch.add("browser", "u-web", "201")
    desk_account = switch.add("desk", "u-desk", "202")
    for attempt in range(3):
        try:
            desk = baresip_factory(
                f"desk{attempt or ''}", tone_1000, account=switch.phone_account(desk_account, "manual")
            )
            break
        except ProcessError:
            if attempt == 2:
                raise
    desk.wait_registered(timeout=10)
    tone = write_tone_wav(tmp_path / "tone-440-48k.wav", 440.0, seconds=20, rate=48000)

    async def register(peer: WsSipPeer) -> None:
        first = peer.request("REGISTER", "browser", 1)
        first.uri = f"sip:{DOMAIN}"
        peer.send(first)
        challenge = await peer.final()
        assert challenge.status == 401
        auth = DigestClient("browser", peer.password).authorization(
            challenge.headers.get_all("www-authenticate"), "REGISTER", first.uri
        )
        second = peer.request("REGISTER", "browser", 2)
        second.uri = f"sip:{DOMAIN}"
        second.headers.add("Authorization", auth or "")
        second.headers.add("Expires", "600")
        peer.send(second)
        assert (await peer.final()).status == 200

    async def main() -> Path:
        peer = WsSipPeer(switch, "browser")
        peer.open()
        browser = AiortcPeer(tone, tmp_path / "browser-heard.wav")
        try:
            await register(peer)
            await asyncio.to_thread(desk.dial, "sip:201@pbx.callto.test")
            invite = await asyncio.wait_for(peer.queue.get(), 10)
            assert isinstance(invite, Request) and invite.method == "INVITE", invite
            offer = invite.body.decode()
            assert "UDP/TLS/RTP/SAVPF" in offer and "a=ice-ufrag" in offer  # rtpengine made it WebRTC
            answer = await browser.answer_offer(offer)
            ok = make_response(
                invite,
                200,
                to_tag="browser-tag",
                headers=[("Contact", "<sip:browser@abc.invalid;transport=ws>"), ("Content-Type", "application/sdp")],
                body=answer.encode(),
            )
            switch.switch.ws_message(peer.conn, ok.to_bytes().decode())
            ack = await asyncio.wait_for(peer.queue.get(), 10)
            assert isinstance(ack, Request) and ack.method == "ACK"
            await asyncio.to_thread(desk.wait_established, 5)
            await browser.wait_connected(timeout=10)
            await asyncio.sleep(3.0)
            await asyncio.to_thread(desk.hangup)
            bye = await asyncio.wait_for(peer.queue.get(), 10)
            assert isinstance(bye, Request) and bye.method == "BYE"
            switch.switch.ws_message(peer.conn, make_response(bye, 200).to_bytes().decode())
        finally:
            heard = await browser.close()
            switch.switch.ws_connection_lost(peer.conn)
        return heard

    heard_by_browser = switch.loop.run(main(), timeout=60)
    [record] = switch.wait_records(1)
    assert record.disposition is Disposition.ANSWERED and record.hangup_cause == "caller-hangup"
    heard_by_desk = desk.received_wav()
    assert has_tone(heard_by_desk, 440, min_seconds=1.5), describe(heard_by_desk)
    assert has_tone(heard_by_browser, 1000, min_seconds=1.5), describe(heard_by_browser)
