"""SIP over WebSocket (RFC 7118) at ``/sip`` on the HTTP and HTTPS ports: one SIP message per frame.

Browsers (JsSIP) connect with the ``sip`` subprotocol; the frames go to the switch as a stream
connection of transport ``ws`` / ``wss``, and its answers come back on the same socket. The switch's
:class:`~callto.sip.transport.ConnectionGuard` bounds them like TCP and TLS: per-address and global caps,
a first-message timeout, and the idle rules (a socket that carries no registration closes after
``idle_timeout`` without a SIP message; one that does after ``registered_idle_timeout`` without a frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from callto.sip.transport import ConnectionGuard

log = logging.getLogger(__name__)
MAX_FRAME = 64 * 1024
_ids = itertools.count(1)


async def sip_over_websocket(ws: WebSocket, switch: Any) -> None:
    """Serve one WebSocket for ``switch`` (the route is mounted by the composition root)."""
    offered = ws.scope.get("subprotocols") or []
    if switch is None:
        await ws.close(code=1013)  # try again later: the switch is not running
        return
    client = ws.client
    addr = (client.host, client.port) if client else ("0.0.0.0", 0)
    guard = switch.server.guard
    if not guard.admit(addr[0]):
        await ws.close(code=1013)  # over the per-address or global cap (counted and logged by the guard)
        return
    try:
        await _serve(ws, switch, guard, addr, offered)
    finally:
        guard.release(addr[0])


async def _serve(ws: WebSocket, switch: Any, guard: ConnectionGuard, addr: tuple[str, int], offered: list[str]) -> None:
    await ws.accept(subprotocol="sip" if "sip" in offered else None)
    conn_id = f"ws{next(_ids)}"
    outgoing: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)
    closing: list[asyncio.Future[None]] = []

    def send(text: str) -> None:
        try:
            outgoing.put_nowait(text)
        except asyncio.QueueFull:
            # A client that lets a thousand messages pile up is gone; close rather than grow memory.
            log.warning("SIP WebSocket %s is not reading; closing it", conn_id)
            writing.cancel()
            closing.append(asyncio.ensure_future(ws.close(code=1008)))

    def close() -> None:
        # the switch drops a removed device: the writer sends what is queued, then closes the socket
        try:
            outgoing.put_nowait(None)
        except asyncio.QueueFull:
            writing.cancel()
            closing.append(asyncio.ensure_future(ws.close(code=1008)))

    async def writer() -> None:
        while (text := await outgoing.get()) is not None:
            await ws.send_text(text)
        await ws.close(code=1008)

    switch.ws_connection_made(conn_id, addr, send, secure=ws.url.scheme == "wss", close=close)
    writing = asyncio.create_task(writer())
    opened = last_bytes = time.monotonic()
    last_message: float | None = None
    try:
        while True:
            registered = switch.ws_registered(conn_id)
            limits = guard.limits
            if registered:
                deadline = last_bytes + limits.registered_idle_timeout
            elif last_message is None:
                deadline = opened + limits.first_message_timeout
            else:
                deadline = last_message + limits.idle_timeout
            try:
                message = await asyncio.wait_for(ws.receive(), max(0.0, deadline - time.monotonic()) + 0.05)
            except TimeoutError:
                reason = guard.expired(opened=opened, last_message=last_message, last_bytes=last_bytes,
                                       registered=switch.ws_registered(conn_id), now=time.monotonic())
                if reason is None:
                    continue
                guard.note(reason)
                break
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("text") if message.get("text") is not None else message.get("bytes")
            last_bytes = time.monotonic()
            if not data:
                continue
            if data.strip("\r\n\x00 " if isinstance(data, str) else b"\r\n\x00 "):
                last_message = last_bytes  # a SIP message, not a keep-alive
            if len(data) > MAX_FRAME:
                log.warning("SIP WebSocket %s sent a %d-byte frame; closing", conn_id, len(data))
                break
            switch.ws_message(conn_id, data)
    except WebSocketDisconnect:
        pass
    finally:
        switch.ws_connection_lost(conn_id)
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writing
        with contextlib.suppress(Exception):
            await ws.close()
