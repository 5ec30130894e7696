"""asyncio client for rtpengine's ng control protocol, and the flag sets the switch needs.

Owns the wire exchange (``<cookie> <bencoded dict>`` datagrams over UDP, one cookie per request,
retransmission with the same cookie so rtpengine's reply cache keeps retries idempotent) and the
translation of rtpengine's answers into :class:`~callto.media.errors.MediaError` /
:class:`~callto.media.errors.MediaUnavailable`. Which ng flags turn a WebRTC SDP into a plain RTP one and
back (the verified set is listed in ``docs/media.md``) is :mod:`callto.sip.media`'s, re-exported here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from callto.media import bencode
from callto.media.errors import MediaError, MediaUnavailable

# The media profile and the flag builders are pure and belong to the switch, which decides when a call
# needs rtpengine; they stay importable from here and from callto.media.
from callto.sip.media import Flags as Flags
from callto.sip.media import MediaProfile as MediaProfile
from callto.sip.media import answer_flags as answer_flags
from callto.sip.media import needs_relay as needs_relay
from callto.sip.media import offer_flags as offer_flags
from callto.sip.media import sdp_profile as sdp_profile

log = logging.getLogger(__name__)


class _NgProtocol(asyncio.DatagramProtocol):
    """Routes each reply datagram to the future waiting on its cookie."""

    def __init__(self) -> None:
        self.pending: dict[bytes, asyncio.Future[bytes]] = {}
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        cookie, sep, body = data.partition(b" ")
        if not sep:
            log.warning("rtpengine sent a datagram without cookie: %r", data[:80])
            return
        future = self.pending.pop(cookie, None)
        if future is not None and not future.done():
            future.set_result(body)
        # A reply nobody waits for is a late answer to a retransmission: dropped on purpose.

    def error_received(self, exc: Exception) -> None:
        # ECONNREFUSED from an ICMP port-unreachable: nothing listens there (yet); retries will tell.
        log.debug("rtpengine ng socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(MediaUnavailable("rtpengine control socket closed"))
        self.pending.clear()
        if not self.lost.done():
            self.lost.set_result(None)


class NgClient:
    """One UDP socket talking ng to one rtpengine at ``host:port``.

    ``timeout`` bounds each attempt; a request is sent ``1 + retries`` times with the same cookie before
    it fails with ``media-unavailable``.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 1.0, retries: int = 2) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _NgProtocol | None = None
        self._prefix = secrets.token_hex(4)
        self._counter = 0
        self._lock = asyncio.Lock()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def connect(self) -> None:
        async with self._lock:
            if self._transport is not None:
                return
            loop = asyncio.get_running_loop()
            transport, protocol = await loop.create_datagram_endpoint(_NgProtocol, remote_addr=(self.host, self.port))
            self._transport, self._protocol = transport, protocol

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            self._protocol = None

    def _next_cookie(self) -> bytes:
        self._counter += 1
        return f"{self._prefix}{self._counter:x}".encode()

    async def request(self, command: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send one ng command and return rtpengine's reply as a ``str``-keyed dict.

        Raises :class:`MediaError` for ``result: error`` and :class:`MediaUnavailable` when no reply
        arrives in time.
        """
        await self.connect()
        assert self._transport is not None and self._protocol is not None
        message: dict[str, Any] = dict(args or {})
        message["command"] = command
        cookie = self._next_cookie()
        datagram = cookie + b" " + bencode.encode(message)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._protocol.pending[cookie] = future
        try:
            for _attempt in range(1 + self.retries):
                self._transport.sendto(datagram)
                try:
                    body = await asyncio.wait_for(asyncio.shield(future), self.timeout)
                    break
                except TimeoutError:
                    continue
            else:
                raise MediaUnavailable(
                    f"rtpengine at {self.address} did not answer '{command}'",
                    details={
                        "rtpengine": self.address,
                        "command": command,
                        "attempts": 1 + self.retries,
                        "timeout": self.timeout,
                    },
                )
        finally:
            if self._protocol is not None:
                self._protocol.pending.pop(cookie, None)
            if not future.done():
                future.cancel()
        return self._parse_reply(command, body)

    def _parse_reply(self, command: str, body: bytes) -> dict[str, Any]:
        try:
            decoded = bencode.to_text(bencode.decode(body))
        except bencode.BencodeError as exc:
            raise MediaError(
                f"rtpengine sent an undecodable reply to '{command}': {exc}",
                details={"rtpengine": self.address, "command": command},
            ) from exc
        if not isinstance(decoded, dict):
            raise MediaError(
                f"rtpengine's reply to '{command}' is not a dictionary",
                details={"rtpengine": self.address, "command": command},
            )
        result = decoded.get("result")
        if result in ("ok", "pong"):
            if "warning" in decoded:
                log.warning("rtpengine warning on %s: %s", command, decoded["warning"])
            return decoded
        reason = decoded.get("error-reason") or f"result {result!r}"
        raise MediaError(
            f"rtpengine refused '{command}': {reason}",
            details={"rtpengine": self.address, "command": command, "reason": str(reason)},
        )

    async def ping(self) -> None:
        reply = await self.request("ping")
        if reply.get("result") != "pong":
            raise MediaError(f"rtpengine answered ping with {reply.get('result')!r}")

    async def offer(self, call_id: str, from_tag: str, sdp: str, flags: Mapping[str, Any] | None = None) -> str:
        reply = await self.request("offer", {**(flags or {}), "call-id": call_id, "from-tag": from_tag, "sdp": sdp})
        return self._sdp(reply, "offer")

    async def answer(
        self, call_id: str, from_tag: str, to_tag: str, sdp: str, flags: Mapping[str, Any] | None = None
    ) -> str:
        reply = await self.request(
            "answer",
            {**(flags or {}), "call-id": call_id, "from-tag": from_tag, "to-tag": to_tag, "sdp": sdp},
        )
        return self._sdp(reply, "answer")

    async def delete(self, call_id: str, from_tag: str, to_tag: str | None = None, *, delay: int = 0) -> dict[str, Any]:
        """Release the call's ports; ``delay`` seconds later (rtpengine's own default would be 30)."""
        args: dict[str, Any] = {"call-id": call_id, "from-tag": from_tag, "delete-delay": delay}
        if to_tag:
            args["to-tag"] = to_tag
        return await self.request("delete", args)

    async def query(self, call_id: str) -> dict[str, Any]:
        return await self.request("query", {"call-id": call_id})

    def _sdp(self, reply: Mapping[str, Any], command: str) -> str:
        sdp = reply.get("sdp")
        if not isinstance(sdp, str):
            raise MediaError(
                f"rtpengine's reply to '{command}' carries no SDP",
                details={"rtpengine": self.address, "command": command},
            )
        return sdp


async def wait_until_ready(client: NgClient, deadline: float) -> None:
    """Ping until rtpengine answers or ``deadline`` (loop time) passes; raise ``MediaUnavailable`` then."""
    loop = asyncio.get_running_loop()
    last: Exception | None = None
    while loop.time() < deadline:
        try:
            await client.ping()
            return
        except (MediaUnavailable, MediaError) as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise MediaUnavailable(
        f"rtpengine at {client.address} did not become ready",
        details={"rtpengine": client.address, "last_error": str(last) if last else None},
    )
