"""SIP over WebSocket (RFC 7118) at ``/sip`` on the HTTP and HTTPS ports: one SIP message per frame.

Browsers (JsSIP) connect with the ``sip`` subprotocol; the frames go to the switch as a stream
connection of transport ``ws`` / ``wss``, and its answers come back on the same socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

log = logging.getLogger(__name__)
router = APIRouter()
MAX_FRAME = 64 * 1024
_ids = itertools.count(1)


@router.websocket("/sip")
async def sip_over_websocket(ws: WebSocket) -> None:
    switch = getattr(ws.app.state, "sip_switch", None)
    offered = ws.scope.get("subprotocols") or []
    if switch is None:
        await ws.close(code=1013)  # try again later: the switch is not running
        return
    await ws.accept(subprotocol="sip" if "sip" in offered else None)
    conn_id = f"ws{next(_ids)}"
    client = ws.client
    addr = (client.host, client.port) if client else ("0.0.0.0", 0)
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

    async def writer() -> None:
        while (text := await outgoing.get()) is not None:
            await ws.send_text(text)
        await ws.close(code=1008)

    switch.ws_connection_made(conn_id, addr, send, secure=ws.url.scheme == "wss")
    writing = asyncio.create_task(writer())
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("text") if message.get("text") is not None else message.get("bytes")
            if not data:
                continue
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
