"""The ng client and the supervisor against a real rtpengine on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from callto.media import (
    MediaError,
    MediaProfile,
    MediaService,
    MediaSettings,
    MediaUnavailable,
    NgClient,
    NoMedia,
    RtpengineMedia,
    RtpengineSupervisor,
    build_media_service,
    offer_flags,
)
from callto.media.supervisor import free_udp_port
from support.rtp import RtpPeer, remote_address
from support.rtpengine import RtpengineHandle
from support.tone import describe, has_tone


def test_ping_gets_pong(rtpengine: RtpengineHandle) -> None:
    async def main() -> None:
        client = NgClient(rtpengine.host, rtpengine.port)
        try:
            await client.ping()
        finally:
            await client.close()

    asyncio.run(main())
    assert "Received command 'ping'" in rtpengine.log()


def test_plain_offer_answer_relays_audio_then_delete_ends_the_call(rtpengine: RtpengineHandle, tmp_path: Path) -> None:
    async def main() -> None:
        client = NgClient(rtpengine.host, rtpengine.port)
        caller = await RtpPeer(tone_hz=440).start()
        callee = await RtpPeer(tone_hz=1000).start()
        try:
            offer = await client.offer(
                "call-plain-1", "tag-a", caller.sdp(), offer_flags(MediaProfile.PLAIN, MediaProfile.PLAIN)
            )
            # rtpengine puts itself in the middle: the callee is told to send to rtpengine, not the caller.
            assert remote_address(offer)[1] != caller.port
            answer = await client.answer("call-plain-1", "tag-a", "tag-b", callee.sdp(), {})
            assert remote_address(answer)[1] != callee.port
            caller.send_tone_to(answer, seconds=2.5)
            callee.send_tone_to(offer, seconds=2.5)
            await asyncio.sleep(2.8)
            query = await client.query("call-plain-1")
            assert query["result"] == "ok" and "tag-a" in query["tags"]
            await client.delete("call-plain-1", "tag-a")
            with pytest.raises(MediaError) as gone:
                await client.query("call-plain-1")
            assert "Unknown call-id" in gone.value.message
        finally:
            await caller.close()
            await callee.close()
            await client.close()
        heard_by_callee = callee.save_received(tmp_path / "callee.wav")
        heard_by_caller = caller.save_received(tmp_path / "caller.wav")
        assert has_tone(heard_by_callee, 440), describe(heard_by_callee)
        assert has_tone(heard_by_caller, 1000), describe(heard_by_caller)

    asyncio.run(main())


def test_rtpengine_error_reason_becomes_media_error(rtpengine: RtpengineHandle) -> None:
    async def main() -> None:
        client = NgClient(rtpengine.host, rtpengine.port)
        try:
            await client.answer("no-such-call", "a", "b", "v=0\r\n", {})
        finally:
            await client.close()

    with pytest.raises(MediaError) as error:
        asyncio.run(main())
    assert error.value.error == "media-error"
    assert error.value.status == 502
    assert error.value.details["reason"]


def test_silent_rtpengine_is_media_unavailable_after_retries() -> None:
    async def main() -> float:
        # A bound socket that never answers: the datagrams arrive and nobody replies.
        loop = asyncio.get_running_loop()
        silent, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        port = silent.get_extra_info("sockname")[1]
        client = NgClient("127.0.0.1", port, timeout=0.2, retries=2)
        started = time.monotonic()
        try:
            await client.ping()
        finally:
            await client.close()
            silent.close()
        return time.monotonic() - started

    with pytest.raises(MediaUnavailable) as error:
        asyncio.run(main())
    assert error.value.error == "media-unavailable"
    assert error.value.details["attempts"] == 3


def test_supervisor_restarts_a_killed_rtpengine_and_clients_keep_working(rtpengine: RtpengineHandle) -> None:
    async def main() -> int:
        client = NgClient(rtpengine.host, rtpengine.port)
        try:
            await client.ping()
            old_pid = rtpengine.kill()
            await asyncio.to_thread(rtpengine.wait_restarted, 15)
            # Same client, same socket: the ng port survives the restart.
            await client.ping()
            return old_pid
        finally:
            await client.close()

    old_pid = asyncio.run(main())
    assert rtpengine.supervisor.pid not in (None, old_pid)
    assert rtpengine.supervisor.restarts == 1
    assert rtpengine.supervisor.ready


def test_supervisor_reports_an_rtpengine_that_dies_at_start(tmp_path: Path) -> None:
    async def main() -> None:
        supervisor = RtpengineSupervisor(Path("/bin/false"), run_dir=tmp_path, ready_timeout=5)
        await supervisor.start()

    started = time.monotonic()
    with pytest.raises(MediaUnavailable) as error:
        asyncio.run(main())
    assert time.monotonic() - started < 3
    assert "exited with status 1" in error.value.message


def test_auto_without_binary_is_unavailable_and_mixed_calls_fail_fast(tmp_path: Path) -> None:
    service = build_media_service(MediaSettings(rtpengine="auto", binary=str(tmp_path / "no-rtpengine")))
    assert isinstance(service, NoMedia)
    assert not service.available()
    assert "rtpengine binary not found" in service.reason

    async def main() -> None:
        await service.start()
        await service.offer("c", "f", "v=0\r\n", {})

    started = time.monotonic()
    with pytest.raises(MediaUnavailable) as error:
        asyncio.run(main())
    assert time.monotonic() - started < 0.5
    assert error.value.status == 503
    assert "rtpengine binary not found" in error.value.message


def test_off_setting_never_relays() -> None:
    service: MediaService = build_media_service(MediaSettings(rtpengine="off"))
    assert not service.available()
    assert "off" in service.reason


def test_host_port_setting_uses_an_external_rtpengine(rtpengine: RtpengineHandle) -> None:
    service = build_media_service(MediaSettings(rtpengine=rtpengine.address))
    assert isinstance(service, RtpengineMedia) and service.supervisor is None

    async def main() -> str:
        await service.start()
        try:
            sdp = (await RtpPeer().start()).sdp()
            return await service.offer("ext-1", "a", sdp, {})
        finally:
            await service.client.delete("ext-1", "a")
            await service.stop()

    assert "m=audio" in asyncio.run(main())


def test_bad_setting_is_invalid_input() -> None:
    with pytest.raises(Exception) as error:
        build_media_service(MediaSettings(rtpengine="sometimes"))
    assert getattr(error.value, "error", None) == "invalid-input"


def test_auto_service_starts_and_stops_its_own_rtpengine(tmp_path: Path) -> None:
    async def main() -> int:
        base = free_udp_port()
        service = build_media_service(
            MediaSettings(rtpengine="auto", run_dir=tmp_path, port_min=base, port_max=base + 40)
        )
        assert isinstance(service, RtpengineMedia) and service.supervisor is not None
        assert not service.available()
        await service.start()
        try:
            assert service.available()
            pid = service.supervisor.pid
            assert pid is not None
        finally:
            await service.stop()
        assert not service.available()
        return pid

    pid = asyncio.run(main())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_auto_with_a_binary_that_cannot_start_boots_without_media_and_keeps_retrying(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    broken = tmp_path / "rtpengine"
    broken.write_text(f"#!/bin/sh\necho started >> {attempts}\nexit 1\n")
    broken.chmod(0o755)
    service = build_media_service(MediaSettings(rtpengine="auto", binary=str(broken), run_dir=tmp_path))
    assert isinstance(service, RtpengineMedia) and service.supervisor is not None

    async def main() -> None:
        await service.start()  # must not raise: the server boots, media is just unavailable
        try:
            assert not service.available()
            assert "exited with status 1" in service.reason
            with pytest.raises(MediaUnavailable):
                await service.offer("c", "f", "v=0\r\n", {})
            await asyncio.sleep(1.2)
            # First try at once, the retry after 0.5 s: the supervisor did not give up.
            assert len(attempts.read_text().splitlines()) >= 2
            assert service.supervisor is not None and service.supervisor.restarts == 0
        finally:
            await service.stop()

    asyncio.run(main())
