"""WebRTC <-> plain RTP through rtpengine: an aiortc peer and a Python PCMU endpoint hear each other.

aiortc's ICE is pinned to 127.0.0.1 (``support.aiortc_peer``), so these run on the host network; the
last test re-runs the first inside a private network namespace (``unshare -n``, only ``lo``), the way
browser end-to-end tests must run (see ``support.netns``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from callto.media import MediaProfile, NgClient, answer_flags, offer_flags, sdp_profile
from support import netns
from support.aiortc_peer import AiortcPeer
from support.rtp import RtpPeer, sdp_codecs
from support.rtpengine import RtpengineHandle
from support.tone import describe, has_tone, write_tone_wav

TALK_SECONDS = 3.0


@pytest.mark.parametrize("browser_codecs", [(), ("opus",)], ids=["any-codec", "opus-only"])
def test_webrtc_offer_reaches_plain_phone_through_rtpengine_with_audio_both_ways(
    rtpengine: RtpengineHandle, tmp_path: Path, browser_codecs: tuple[str, ...]
) -> None:
    if os.environ.get(netns.MARKER) == "1":
        assert netns.interfaces() == ["lo"], "re-run outside a private namespace"
    tone = write_tone_wav(tmp_path / "tone-440-48k.wav", 440.0, seconds=10, rate=48000)

    async def main() -> tuple[Path, Path, str, str]:
        client = NgClient(rtpengine.host, rtpengine.port)
        browser = AiortcPeer(tone, tmp_path / "browser-heard.wav", codecs=browser_codecs)
        phone = await RtpPeer(tone_hz=1000).start()
        try:
            webrtc_offer = await browser.create_offer()
            assert sdp_profile(webrtc_offer) is MediaProfile.WEBRTC
            if browser_codecs:
                assert set(sdp_codecs(webrtc_offer)) == {"opus"}
            plain_offer = await client.offer(
                "webrtc-1", "browser-tag", webrtc_offer, offer_flags(MediaProfile.WEBRTC, MediaProfile.PLAIN)
            )
            plain_answer = phone.sdp()
            webrtc_answer = await client.answer(
                "webrtc-1",
                "browser-tag",
                "phone-tag",
                plain_answer,
                answer_flags(MediaProfile.PLAIN, MediaProfile.WEBRTC),
            )
            await browser.accept_answer(webrtc_answer)
            phone.send_tone_to(plain_offer, seconds=TALK_SECONDS + 3)
            await browser.wait_connected(timeout=10)
            await asyncio.sleep(TALK_SECONDS)
            await client.delete("webrtc-1", "browser-tag")
        finally:
            heard_by_browser = await browser.close()
            await phone.close()
            await client.close()
        heard_by_phone = phone.save_received(tmp_path / "phone-heard.wav")
        return heard_by_browser, heard_by_phone, plain_offer, webrtc_answer

    heard_by_browser, heard_by_phone, plain_offer, webrtc_answer = asyncio.run(main())
    assert sdp_profile(plain_offer) is MediaProfile.PLAIN
    assert "a=candidate" not in plain_offer and "a=fingerprint" not in plain_offer
    assert "PCMU" in sdp_codecs(plain_offer)
    assert "UDP/TLS/RTP/SAVPF" in webrtc_answer and "a=candidate" in webrtc_answer
    assert "127.0.0.1" in webrtc_answer
    if browser_codecs:
        # rtpengine transcodes: the phone speaks PCMU, the browser gets Opus.
        assert sdp_codecs(webrtc_answer)[0] == "opus"
    assert has_tone(heard_by_phone, 440, min_seconds=1.0), describe(heard_by_phone)
    assert has_tone(heard_by_browser, 1000, min_seconds=1.0), describe(heard_by_browser)


def test_plain_offer_reaches_webrtc_peer_through_rtpengine_with_audio_both_ways(
    rtpengine: RtpengineHandle, tmp_path: Path
) -> None:
    tone = write_tone_wav(tmp_path / "tone-440-48k.wav", 440.0, seconds=10, rate=48000)

    async def main() -> tuple[Path, Path, str]:
        client = NgClient(rtpengine.host, rtpengine.port)
        phone = await RtpPeer(tone_hz=1000).start()
        browser = AiortcPeer(tone, tmp_path / "browser-heard.wav")
        try:
            webrtc_offer = await client.offer(
                "plain-1", "phone-tag", phone.sdp(), offer_flags(MediaProfile.PLAIN, MediaProfile.WEBRTC)
            )
            webrtc_answer = await browser.answer_offer(webrtc_offer)
            plain_answer = await client.answer(
                "plain-1",
                "phone-tag",
                "browser-tag",
                webrtc_answer,
                answer_flags(MediaProfile.WEBRTC, MediaProfile.PLAIN),
            )
            phone.send_tone_to(plain_answer, seconds=TALK_SECONDS + 3)
            await browser.wait_connected(timeout=10)
            await asyncio.sleep(TALK_SECONDS)
            await client.delete("plain-1", "phone-tag")
        finally:
            heard_by_browser = await browser.close()
            await phone.close()
            await client.close()
        return heard_by_browser, phone.save_received(tmp_path / "phone-heard.wav"), plain_answer

    heard_by_browser, heard_by_phone, plain_answer = asyncio.run(main())
    assert sdp_profile(plain_answer) is MediaProfile.PLAIN
    assert "a=candidate" not in plain_answer
    assert has_tone(heard_by_phone, 440, min_seconds=1.0), describe(heard_by_phone)
    assert has_tone(heard_by_browser, 1000, min_seconds=1.0), describe(heard_by_browser)


def test_webrtc_bridge_also_works_inside_a_private_network_namespace(request: pytest.FixtureRequest) -> None:
    if os.environ.get(netns.MARKER) == "1":
        pytest.skip("already inside the namespace: this wrapper only runs from the host side")
    reason = netns.netns_unavailable_reason()
    if reason is not None:
        pytest.fail(f"cannot create a network namespace here: {reason}")
    nodeid = request.node.nodeid.replace(
        request.node.name,
        "test_webrtc_offer_reaches_plain_phone_through_rtpengine_with_audio_both_ways[opus-only]",
    )
    result = netns.rerun_in_netns(nodeid, Path(str(request.config.rootpath)), timeout=90)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
