"""An aiortc WebRTC peer for tests, with ICE restricted to 127.0.0.1 host candidates.

aioice skips 127.0.0.1 when it gathers and offers every other local address instead; tests must stay on
loopback, so :func:`restrict_ice_to_loopback` replaces its address lookup (process-wide, on purpose:
no aiortc peer in the test suite may ever use another address). No ICE servers, so no STUN/TURN.

:class:`AiortcPeer` sends a tone WAV as its audio track and records what it receives into a WAV.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer, MediaRecorder
from aiortc.mediastreams import MediaStreamTrack

from support.ports import LOOPBACK


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [LOOPBACK] if use_ipv4 else []


def restrict_ice_to_loopback() -> None:
    aioice.ice.get_host_addresses = _loopback_only


class AiortcPeer:
    def __init__(self, tone_wav: Path | None, record_to: Path, codecs: tuple[str, ...] = ()) -> None:
        """``codecs`` (e.g. ``("opus",)``) limits what this peer offers/accepts, as a browser page can."""
        restrict_ice_to_loopback()
        self.codecs = codecs
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.record_to = record_to
        self.recorder = MediaRecorder(str(record_to))
        self.player = MediaPlayer(str(tone_wav)) if tone_wav else None
        self.connected = asyncio.Event()
        self.failed = asyncio.Event()
        self.remote_track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self._recording = False

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and not self.remote_track.done():
                self.recorder.addTrack(track)
                self.remote_track.set_result(track)

        @self.pc.on("connectionstatechange")
        async def on_state() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()
            elif self.pc.connectionState == "failed":
                self.failed.set()

    def _add_audio(self) -> None:
        if self.player is not None and self.player.audio is not None:
            self.pc.addTrack(self.player.audio)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        if self.codecs:
            wanted = {c.lower() for c in self.codecs}
            available = RTCRtpSender.getCapabilities("audio").codecs
            preferred = [c for c in available if c.mimeType.split("/")[1].lower() in wanted]
            for transceiver in self.pc.getTransceivers():
                transceiver.setCodecPreferences(preferred)

    async def create_offer(self) -> str:
        """Local offer with gathered (loopback-only) candidates."""
        self._add_audio()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await self._start_recording()

    async def answer_offer(self, sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self._add_audio()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._start_recording()
        return self.pc.localDescription.sdp

    async def _start_recording(self) -> None:
        if not self._recording:
            self._recording = True
            await self.recorder.start()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        waiters = [asyncio.ensure_future(self.connected.wait()), asyncio.ensure_future(self.failed.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if not self.connected.is_set():
            raise TimeoutError(f"aiortc peer not connected (state {self.pc.connectionState})")

    async def close(self) -> Path:
        """Stop recording and close the connection; return the recorded WAV."""
        if self._recording:
            with contextlib.suppress(Exception):
                await self.recorder.stop()
        await self.pc.close()
        if self.player is not None and self.player.audio is not None:
            self.player.audio.stop()
        return self.record_to
