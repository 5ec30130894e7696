"""Webhook deliveries: events from the bus become signed HTTP POSTs to the admins' endpoints.

The bus subscriber only builds the payload and starts a task: a slow, hanging or failing endpoint costs a
call nothing. Each delivery is its own task; at most ``concurrency`` requests are in flight (at most
``per_endpoint`` to one endpoint, so one that hangs cannot hold up the others) and at most
``max_pending`` deliveries wait (beyond that new ones are dropped and logged). A request has a timeout and
never follows a redirect (a 3xx is a failed attempt). A failed delivery is retried with exponential
backoff (1 s, 2 s, 4 s, ... at most 5 min apart) for a bounded time after the event (the
:class:`~callto.integrations.service.DeliveryPolicy`, an admin setting).

With several nodes every node hears every event (through Redis), so each delivery is first claimed in
Redis (``SET NX`` on the event's digest and the webhook, :data:`CLAIM_SECONDS`): the first node to claim
it delivers, the others drop it. If Redis cannot be reached, a node delivers its own events (the others
do not hear them then anyway).

Signature: ``X-Callto-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>``.
Receivers should refuse a timestamp more than :data:`REPLAY_WINDOW` seconds from their clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from callto import __version__
from callto.events.bus import Event
from callto.integrations.service import WEBHOOK_EVENTS, WebhookService, WebhookView

if TYPE_CHECKING:
    from callto.store.shared import SharedState

log = logging.getLogger(__name__)

REPLAY_WINDOW = 300
SIGNATURE_HEADER = "X-Callto-Signature"
# never in a payload, whatever an event carries
_SECRET_KEYS = ("password", "secret", "token", "sip", "totp", "authorization")
REFRESH_EVERY = 30.0
# How long a node's claim on one delivery holds: far longer than an event takes to reach every node.
CLAIM_SECONDS = 600.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()
                if not any(word in str(k).lower() for word in _SECRET_KEYS)}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def webhook_events(event: Event) -> list[tuple[str, dict[str, Any]]]:
    """The webhook event types and data an event of the bus becomes (none for most)."""
    if event.type == "history.new":
        entry = event.data.get("entry") or {}
        out = [("history.new", event.data)]
        if isinstance(entry, dict) and entry.get("missed"):
            out.append(("call.missed", {"call_id": entry.get("call_id"), "entry": entry}))
        return out
    if event.type in WEBHOOK_EVENTS:
        return [(event.type, event.data)]
    return []


class WebhookDispatcher:
    """Bus subscriber and delivery queue (a component: started and stopped with the server)."""

    def __init__(
        self, store: WebhookService, *, max_backoff: float = 300.0, concurrency: int = 16, per_endpoint: int = 4,
        max_pending: int = 1000,
        clock: Callable[[], float] = time.time,
        shared: SharedState | None = None,
    ) -> None:
        self.store = store
        self.shared = shared
        self.max_backoff = max_backoff
        self.max_pending = max_pending
        self.clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        # per endpoint too: one that hangs holds at most this many requests, never every slot
        self.per_endpoint = per_endpoint
        self._endpoint_slots: dict[int, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: httpx.AsyncClient | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.dropped = 0

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=False, timeout=httpx.Timeout(30.0), trust_env=False,
            headers={"User-Agent": f"callto-webhooks/{__version__}"},
        )
        with contextlib.suppress(Exception):  # the database may be late: the refresher tries again
            await asyncio.to_thread(self.store.refresh)
        self._refresher = asyncio.create_task(self._refresh_loop(), name="webhooks-refresh")

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._refresher] if self._refresher else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _refresh_loop(self) -> None:
        # another node (or process) may have changed the registrations
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            try:
                await asyncio.to_thread(self.store.refresh)
            except Exception as exc:
                log.warning("reading the webhooks failed: %s", exc)

    # the bus subscriber: on the loop, must cost next to nothing
    def on_event(self, event: Event) -> None:
        hooks = self.store.active
        if not hooks or self._client is None:
            return
        digest = None
        for kind, data in webhook_events(event):
            for hook in hooks:
                if kind in hook.events:
                    if self.shared is not None and digest is None:
                        digest = self.digest(event)
                    claim = None if digest is None else f"{hook.id}:{kind}:{digest}"
                    self.enqueue(hook, self.payload(kind, data, event), claim=claim)

    @staticmethod
    def digest(event: Event) -> str:
        """The same on every node for one event: its encoding without the sending node (a node that
        hears it through Redis decodes to what encodes the same)."""
        return hashlib.sha256(event.encode("").encode()).hexdigest()[:32]

    @staticmethod
    def payload(kind: str, data: dict[str, Any], event: Event | None = None) -> dict[str, Any]:
        users = None if event is None or event.users is None else sorted(event.users)
        at = event.at.isoformat() if event is not None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {"id": uuid.uuid4().hex, "type": kind, "at": at, "user_ids": users, "data": _clean(data)}

    def enqueue(
        self, hook: WebhookView, payload: dict[str, Any], *, first: asyncio.Future[Any] | None = None,
        claim: str | None = None,
    ) -> bool:
        if len(self._tasks) >= self.max_pending:
            self.dropped += 1
            log.warning("webhook %s: %d deliveries pending, dropping a %s", hook.id, len(self._tasks), payload["type"])
            return False
        task = asyncio.get_running_loop().create_task(self._deliver(hook, payload, first, claim))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def send_test(self, hook: WebhookView) -> dict[str, Any]:
        """A ``webhook.test`` delivery; answers with its first attempt (retries go on in the background)."""
        payload = self.payload("webhook.test", {"webhook_id": hook.id, "message": "a test event from callto"})
        first: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.enqueue(hook, payload, first=first):
            return {"delivery_id": payload["id"], "status": "dropped", "attempts": 0}
        try:
            return dict(await asyncio.wait_for(first, self.store.policy.timeout_seconds + 10))
        except TimeoutError:  # the attempt is still under way (the delivery log will tell)
            return {"delivery_id": payload["id"], "status": "pending", "attempts": 0}

    async def _deliver(
        self, hook: WebhookView, payload: dict[str, Any], first: asyncio.Future[Any] | None, claim: str | None = None
    ) -> None:
        shared = self.shared
        taken = claim is None or shared is None or await shared.claim(shared.key("webhook", claim), CLAIM_SECONDS)
        if not taken:
            return  # another node delivers this one
        started = self.clock()
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        policy = self.store.policy
        row = None
        try:
            row = await asyncio.to_thread(self.store.log_new, hook.id, payload["id"], payload["type"], payload)
        except Exception as exc:  # a log that cannot be written must not stop the delivery
            log.warning("webhook %s: the delivery log is not writable: %s", hook.id, exc)
        attempt = 0
        while True:
            attempt += 1
            code, error, latency = await self._attempt(hook, payload, body, policy.timeout_seconds)
            ok = code is not None and 200 <= code < 300
            wait = min(policy.first_retry_seconds * 2 ** (attempt - 1), self.max_backoff)
            retry = not ok and self.clock() + wait - started <= policy.retry_for_seconds
            status = "delivered" if ok else "retrying" if retry else "failed"
            if row is not None:
                try:
                    await asyncio.to_thread(self.store.log_attempt, row, status=status, attempts=attempt,
                                            response_status=code, error=error, latency_ms=latency)
                except Exception as exc:
                    log.warning("webhook %s: the delivery log is not writable: %s", hook.id, exc)
            if first is not None and not first.done():
                first.set_result({"id": row, "delivery_id": payload["id"], "status": status, "attempts": attempt,
                                  "response_status": code, "error": error, "latency_ms": latency})
            if not retry:
                return
            await asyncio.sleep(wait)

    async def _attempt(
        self, hook: WebhookView, payload: dict[str, Any], body: bytes, timeout: float
    ) -> tuple[int | None, str, float]:
        assert self._client is not None
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(hook.secret, int(self.clock()), body),
            "X-Callto-Event": payload["type"],
            "X-Callto-Delivery": payload["id"],
        }
        endpoint = self._endpoint_slots.setdefault(hook.id, asyncio.Semaphore(self.per_endpoint))
        async with endpoint, self._slots:
            t0 = time.monotonic()
            try:
                r = await self._client.post(hook.url, content=body, headers=headers, timeout=timeout)
            except httpx.TimeoutException:
                return None, f"no answer within {timeout:g} s", (time.monotonic() - t0) * 1000
            except Exception as exc:  # any other failure (a URL httpx refuses, ...) is a failed attempt too
                return None, f"{exc.__class__.__name__}: {exc}", (time.monotonic() - t0) * 1000
            latency = (time.monotonic() - t0) * 1000
        if 300 <= r.status_code < 400:
            return r.status_code, f"redirect to {r.headers.get('location', '?')} not followed", latency
        return r.status_code, "" if r.is_success else r.text[:200], latency
