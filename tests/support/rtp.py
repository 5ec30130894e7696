"""A plain RTP/AVP PCMU endpoint in Python (asyncio), standing in for a desk phone's media.

It binds 127.0.0.1 on a free even port, describes itself in SDP, records every PCMU packet it gets
into an 8 kHz WAV and, once it knows where to send (the other side's SDP), sends a tone as 20 ms
packets. Enough to prove media through rtpengine without a SIP stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import secrets
import socket
import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from support.ports import LOOPBACK

PCMU = 0
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    table = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        u = ~byte & 0xFF
        sign = u & 0x80
        exponent = (u >> 4) & 0x07
        mantissa = u & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        table[byte] = -magnitude if sign else magnitude
    return table


ULAW_DECODE = _ulaw_decode_table()


def ulaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """G.711 mu-law encode (ITU-T reference algorithm, vectorised)."""
    pcm = samples.astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude >> 7).clip(min=1e-9)).astype(np.int32).clip(0, 7)
    exponent = np.where(magnitude >= 256, exponent, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    encoded = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return bytes(encoded.astype(np.uint8))


def remote_address(sdp: str) -> tuple[str, int]:
    """Connection address and audio port of an SDP (media-level c= wins over session-level)."""
    host = None
    port = None
    for line in sdp.splitlines():
        if line.startswith("c=IN IP4 "):
            host = line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    if host is None or port is None:
        raise ValueError(f"no audio address in SDP:\n{sdp}")
    return host, port


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, peer: RtpPeer) -> None:
        self.peer = peer

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.peer._received(data, addr)


class RtpPeer:
    """Plain RTP endpoint: ``sdp()`` for offer/answer, ``send_tone_to(sdp)``, ``save_received()``."""

    def __init__(self, tone_hz: float | None = None) -> None:
        self.tone_hz = tone_hz
        self.port = 0
        self.packets = 0
        self.payload_types: set[int] = set()
        self.sources: set[tuple[str, int]] = set()
        self._pcm = bytearray()
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> RtpPeer:
        loop = asyncio.get_running_loop()
        for _ in range(50):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((LOOPBACK, 0))
            if sock.getsockname()[1] % 2 == 0:
                break
            sock.close()
        self.port = sock.getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(lambda: _Receiver(self), sock=sock)
        self._transport = transport
        return self

    def sdp(self) -> str:
        session = secrets.randbelow(10**9)
        return (
            "v=0\r\n"
            f"o=- {session} {session} IN IP4 {LOOPBACK}\r\n"
            "s=callto-test\r\n"
            f"c=IN IP4 {LOOPBACK}\r\n"
            "t=0 0\r\n"
            f"m=audio {self.port} RTP/AVP {PCMU}\r\n"
            f"a=rtpmap:{PCMU} PCMU/8000\r\n"
            "a=ptime:20\r\n"
            "a=sendrecv\r\n"
        )

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return  # not RTP (e.g. RTCP on a muxed port is filtered below by payload type)
        payload_type = data[1] & 0x7F
        if 72 <= payload_type <= 76:
            return  # RTCP
        csrc = data[0] & 0x0F
        offset = 12 + 4 * csrc
        if data[0] & 0x10 and len(data) >= offset + 4:
            offset += 4 + 4 * struct.unpack("!H", data[offset + 2 : offset + 4])[0]
        self.packets += 1
        self.payload_types.add(payload_type)
        self.sources.add(addr)
        if payload_type == PCMU:
            self._pcm += ULAW_DECODE[np.frombuffer(data[offset:], dtype=np.uint8)].astype("<i2").tobytes()

    def send_tone_to(self, sdp: str, seconds: float = 10.0) -> None:
        """Start sending the tone (PCMU, 20 ms packets) to the audio address in ``sdp``."""
        if self.tone_hz is None:
            raise ValueError("this peer has no tone")
        target = remote_address(sdp)
        self._sender = asyncio.create_task(self._send(target, seconds))

    async def _send(self, target: tuple[str, int], seconds: float) -> None:
        assert self._transport is not None and self.tone_hz is not None
        ssrc = secrets.randbits(32)
        seq = secrets.randbits(16)
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = int(seconds * 50)
        for index in range(total):
            n = np.arange(index * SAMPLES_PER_PACKET, (index + 1) * SAMPLES_PER_PACKET)
            samples = (0.3 * 32767 * np.sin(2 * math.pi * self.tone_hz * n / 8000)).astype(np.int16)
            header = struct.pack("!BBHII", 0x80, PCMU, (seq + index) & 0xFFFF, index * SAMPLES_PER_PACKET, ssrc)
            self._transport.sendto(header + ulaw_encode(samples), target)
            # Pace on the clock, not on sleep lengths, so the stream does not drift slow.
            await asyncio.sleep(max(0.0, start + (index + 1) * 0.02 - loop.time()))

    def save_received(self, path: Path) -> Path:
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(bytes(self._pcm))
        return path

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._transport is not None:
            self._transport.close()


def sdp_codecs(sdp: str) -> list[str]:
    """Codec names from ``a=rtpmap`` lines, in order (for assertions and messages)."""
    return re.findall(r"a=rtpmap:\d+ ([^/\s]+)", sdp)
