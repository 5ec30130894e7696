"""Link's event-stream session: one WebSocket to ``/api/v1/events`` that survives network changes.

It declares Link with ``hello`` (the user's ``link`` device), acknowledges ``dial`` commands with
``dial.ack``, performs ``lan_relay`` commands through :class:`~callto.link.relay.LanRelay` and answers
``lan_relay.result``, and hands every other event (call progress, presence, devices, history) to the app.
When the connection drops (network change, sleep, server restart) it reconnects with exponential backoff
and jitter; a rejected token stops it and says so, because retrying cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from callto.link.client import events_url
from callto.link.relay import LanRelay

log = logging.getLogger(__name__)

AUTH_CLOSE_CODES = frozenset({4401, 4001, 4003, 4403, 1008})


class SessionState(Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    UNAUTHORIZED = "unauthorized"
    STOPPED = "stopped"


@dataclass
class Backoff:
    """Exponential backoff with jitter: 1, 2, 4 ... capped, reset once a session is established."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2
    attempt: int = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

    def reset(self) -> None:
        self.attempt = 0


DialHandler = Callable[[dict[str, Any]], Awaitable[tuple[bool, str | None]]]
EventHandler = Callable[[dict[str, Any]], None]
StateHandler = Callable[[SessionState, str | None], None]


class EventSession:
    """Run with ``await session.run()``; stop with ``session.stop()`` (from the same loop)."""

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str | None],
        link_device_id: int | None,
        *,
        ssl_ctx: ssl.SSLContext | None = None,
        relay: LanRelay | None = None,
        on_dial: DialHandler | None = None,
        on_event: EventHandler | None = None,
        on_state: StateHandler | None = None,
        backoff: Backoff | None = None,
        open_timeout: float = 8.0,
        ping_interval: float = 20.0,
    ) -> None:
        self.url = events_url(base_url)
        self._token = token
        self.link_device_id = link_device_id
        self._ssl = ssl_ctx if self.url.startswith("wss") else None
        self.relay = relay
        self.on_dial = on_dial
        self.on_event = on_event
        self.on_state = on_state
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.state = SessionState.DISCONNECTED
        self.session_id: str | None = None
        self.last_error: str | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self._awaiting_hello = False

    # -- control
    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._ws is not None:
            task = asyncio.ensure_future(self._ws.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def nudge(self) -> None:
        """Reconnect now instead of waiting out the backoff (network came back, machine woke up)."""
        self.backoff.reset()
        self._wake.set()

    def _set_state(self, state: SessionState, why: str | None = None) -> None:
        self.state = state
        if state is SessionState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()
        if why:
            self.last_error = why
        if self.on_state is not None:
            try:
                self.on_state(state, why)
            except Exception:  # a UI callback must never kill the session
                log.exception("state callback failed")

    async def run(self) -> None:
        while not self._stop.is_set():
            token = self._token()
            if not token:
                self._set_state(SessionState.UNAUTHORIZED, "Not signed in.")
                return
            self._set_state(SessionState.CONNECTING)
            try:
                await self._run_once(token)
            except InvalidStatus as exc:
                code = exc.response.status_code
                if code in (401, 403):
                    self._set_state(SessionState.UNAUTHORIZED, "The server refused the session; sign in again.")
                    return
                self._set_state(SessionState.DISCONNECTED, f"The event stream answered HTTP {code}.")
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code in AUTH_CLOSE_CODES:
                    self._set_state(
                        SessionState.UNAUTHORIZED,
                        f"The server closed the session: {exc.rcvd.reason or 'sign in again'}.",
                    )
                    return
                self._set_state(SessionState.DISCONNECTED, "The event stream was interrupted.")
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._set_state(SessionState.DISCONNECTED, f"Cannot open the event stream: {exc}.")
            if self._stop.is_set():
                break
            delay = self.backoff.next_delay()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
        self._set_state(SessionState.STOPPED)

    async def _run_once(self, token: str) -> None:
        url = f"{self.url}?token={quote(token, safe='')}"
        async with connect(
            url,
            ssl=self._ssl,
            open_timeout=self.open_timeout,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_interval,
            max_size=2**20,
        ) as ws:
            self._ws = ws
            try:
                async for raw in ws:
                    if isinstance(raw, bytes):
                        continue
                    try:
                        msg = json.loads(raw)
                    except ValueError:
                        log.warning("ignoring a non-JSON event")
                        continue
                    if isinstance(msg, dict):
                        await self._handle(ws, msg)
            finally:
                self._ws = None
                for task in list(self._tasks):
                    task.cancel()
        if not self._stop.is_set():
            # A clean close by the server (restart, deploy) is still a disconnection to recover from.
            self._set_state(SessionState.DISCONNECTED, "The server closed the event stream.")

    async def _handle(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        assert isinstance(data, dict)
        if kind == "ping":
            # The server drops sessions that stay silent; WebSocket-level pongs do not count.
            await self._send(ws, {"type": "pong", "data": {}})
            return
        if kind == "session.ready":
            self.session_id = str(data.get("session_id") or "")
            self.backoff.reset()
            if self.link_device_id is not None:
                # Connected counts from hello.ok: only then does the server route Link's commands here.
                self._awaiting_hello = True
                await self._send(ws, {"type": "hello", "data": {"device_id": self.link_device_id}})
            else:
                self._set_state(SessionState.CONNECTED)
        elif kind == "hello.ok" or (kind == "error" and self._awaiting_hello):
            self._awaiting_hello = False
            why = None if kind == "hello.ok" else f"The server refused Link's hello: {data.get('message')}"
            self._set_state(SessionState.CONNECTED, why)
        elif kind == "dial":
            self._spawn(self._dial(ws, data))
        elif kind == "lan_relay":
            self._spawn(self._relay(ws, data))
        elif kind == "error" and self.on_event is None:
            log.warning("server error on the event stream: %s", data)
        if self.on_event is not None and kind not in ("ping", "pong"):
            try:
                self.on_event(msg)
            except Exception:
                log.exception("event callback failed")

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, ws: ClientConnection, data: dict[str, Any]) -> None:
        ok: bool = False
        reason: str | None = "Link's phone is not open on this computer."
        if self.on_dial is not None:
            try:
                ok, reason = await self.on_dial(data)
            except Exception as exc:
                ok, reason = False, f"Link could not dial: {exc}"
        ack = {"command_id": data.get("command_id"), "ok": ok, "reason": reason}
        await self._send(ws, {"type": "dial.ack", "data": ack})

    async def _relay(self, ws: ClientConnection, data: dict[str, Any]) -> None:
        if self.relay is None:
            result = {
                "command_id": data.get("command_id"),
                "ok": False,
                "status": None,
                "reason": "LAN relay is off in this Link.",
            }
        else:
            result = await self.relay.perform(data)
        await self._send(ws, {"type": "lan_relay.result", "data": result})

    @staticmethod
    async def _send(ws: ClientConnection, msg: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(msg))
