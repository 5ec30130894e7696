"""The event stream: one WebSocket per client session at ``/api/v1/events``.

Authenticate with ``?token=`` or a first message ``{"type": "auth", "token": ...}``. The server sends
``session.ready``, then the user's events. Clients may send ``hello`` (declare their web phone / Link
device), ``dial.ack`` / ``*.result`` (answers to commands) and ``ping``. Silent clients are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from callto.api.deps import services
from callto.directory.auth import Principal
from callto.directory.service import DirectoryService
from callto.errors import CalltoError
from callto.events.hub import ClientSession, SessionHub

log = logging.getLogger(__name__)
router = APIRouter()

AUTH_TIMEOUT = 10.0
PING_INTERVAL = 20.0
IDLE_LIMIT = 65.0
MAX_MESSAGE = 64 * 1024


def _msg(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "data": data})


async def _authenticate(ws: WebSocket, token: str | None) -> tuple[Principal, str] | None:
    auth = services(ws).auth
    try:
        if token is None:
            raw = await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT)
            first = json.loads(raw)
            if not isinstance(first, dict) or first.get("type") != "auth":
                raise ValueError("first message must be {\"type\": \"auth\", \"token\": ...}")
            token = str(first.get("token", ""))
        return await auth.authenticate_async(token), token
    except CalltoError as exc:
        await ws.send_text(_msg("error", exc.to_json()))
        if exc.status == 503:  # storage-unavailable: the token may well be good; 1013 = try again later
            await ws.close(code=1013)
            return None
    except (TimeoutError, ValueError, json.JSONDecodeError) as exc:
        await ws.send_text(
            _msg("error", {"error": "auth-required", "message": str(exc) or "authenticate first", "details": {}})
        )
    await ws.close(code=4401)
    return None


@router.websocket("/api/v1/events")
async def events(ws: WebSocket, token: str | None = None) -> None:
    await ws.accept()
    authenticated = await _authenticate(ws, token)
    if authenticated is None:
        return
    principal, token = authenticated
    hub = services(ws).hub
    session = hub.open(principal.user.id, token=token, role=principal.user.role)
    try:
        await ws.send_text(_msg("session.ready", {"session_id": session.id, "user_id": principal.user.id}))
        sender = asyncio.create_task(_send_loop(ws, session))
        receiver = asyncio.create_task(_receive_loop(ws, session, hub, principal))
        try:
            # Either side may end the session: the client by leaving, the server by closing it (a
            # revocation): then the receiver must not wait for a client that may never speak again.
            await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, receiver):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender  # a send on a socket the client already closed fails: nothing to report
            try:
                await receiver
            except (asyncio.CancelledError, WebSocketDisconnect):
                pass
            except Exception:
                log.exception("event session %s failed", session.id)
    except WebSocketDisconnect:
        pass
    finally:
        hub.close(session)
        with contextlib.suppress(Exception):
            await ws.close()


PING = json.dumps({"type": "ping", "at": None, "data": {}})


async def _send_loop(ws: WebSocket, session: ClientSession) -> None:
    queue = session.queue
    while True:
        # asyncio.timeout rather than wait_for: wait_for wraps the get in a new task for every message,
        # which for one event fanned out to 1,000 sessions is 1,000 tasks (and loop steps) more.
        try:
            if queue.empty():
                async with asyncio.timeout(PING_INTERVAL):
                    text = await queue.get()
            else:
                text = queue.get_nowait()
        except TimeoutError:
            text = PING
        if text is None:
            await ws.close(code=session.close_code, reason=session.close_reason)
            return
        await ws.send_text(text)


async def _receive_loop(
    ws: WebSocket, session: ClientSession, hub: SessionHub, principal: Principal
) -> None:
    directory = services(ws).directory
    while not session.closed:
        try:
            raw = await asyncio.wait_for(ws.receive_text(), IDLE_LIMIT)
        except TimeoutError:
            log.info("dropping silent session %s", session.id)
            return
        session.last_active = time.monotonic()
        if len(raw) > MAX_MESSAGE:
            session.send({"type": "error", "data": {"error": "message-too-large", "message": "too large"}})
            continue
        try:
            message = json.loads(raw)
            kind = message["type"]
            data = message.get("data") or {}
            if not isinstance(data, dict):
                raise TypeError("data must be an object")
        except (ValueError, KeyError, TypeError) as exc:
            session.send(
                {"type": "error", "data": {"error": "bad-message", "message": f"not understood: {exc}"}}
            )
            continue
        if kind == "ping":
            session.send({"type": "pong", "at": None, "data": {}})
        elif kind == "pong":
            continue
        elif kind == "hello":
            await _hello(session, hub, directory, principal, data)
        elif kind.endswith(".ack") or kind.endswith(".result"):
            hub.acknowledge(session, data)
        else:
            session.send(
                {"type": "error", "data": {"error": "unknown-message", "message": f"unknown type {kind!r}"}}
            )


async def _hello(
    session: ClientSession,
    hub: SessionHub,
    directory: DirectoryService,
    principal: Principal,
    data: dict[str, Any],
) -> None:
    device_id = data.get("device_id")
    try:
        if not isinstance(device_id, int):
            raise CalltoError("hello needs an integer device_id", error="bad-message")
        device = await run_in_threadpool(directory.own_device, principal.user.id, device_id)
        if device.kind not in ("webphone", "link"):
            raise CalltoError(
                "only a web phone or Link session can speak for a device", error="not-a-softphone"
            )
    except CalltoError as exc:
        session.send({"type": "error", "data": exc.to_json()})
        return
    hub.bind_device(session, device_id)
    session.send({"type": "hello.ok", "at": None, "data": {"device_id": device_id}})
