"""Prometheus metrics at ``/metrics`` (text exposition format 0.0.4, written here: no dependency).

Counted as things happen: HTTP requests (method, route template, status) with a latency histogram per
route, click-to-call progress and outcomes and device registration changes (from the event bus), log
records at ERROR or above (per area). Read at scrape time: SIP calls in progress and registered devices
(from the switch), open event sessions. ``/metrics`` answers loopback clients when ``metrics_allow`` is
``loopback`` (the default), everyone else needs an admin's bearer token.

Label values are bounded: routes are the API's templates (``/api/v1/admin/users/{user_id}``), unknown
paths are counted under their first segment, outcomes outside a known set are ``other``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import threading
from collections import defaultdict
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from callto.events.bus import Event
from callto.ops.logs import AREAS, ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from callto.app import Services
    from callto.sip.switch import SipSwitch

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAX_LABEL_VALUES = 200
_OUTCOME = re.compile(r"^[a-z0-9_-]{1,40}$")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


class Counter:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, labels
        self.values: dict[tuple[str, ...], float] = defaultdict(float)
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            if labels not in self.values and len(self.values) >= _MAX_LABEL_VALUES:
                labels = tuple("other" for _ in labels)
            self.values[labels] += amount

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            for labels, value in sorted(self.values.items()):
                lines.append(f"{self.name}{_labels(self.label_names, labels)} {value:g}")
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = BUCKETS) -> None:
        self.name, self.help, self.label_names, self.buckets = name, help_text, labels, buckets
        self.series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self.series.get(labels)
            if series is None:
                if len(self.series) >= _MAX_LABEL_VALUES:
                    labels = tuple("other" for _ in labels)
                    series = self.series.setdefault(labels, [0.0] * (len(self.buckets) + 2))
                else:
                    series = self.series[labels] = [0.0] * (len(self.buckets) + 2)
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
            series[-2] += value
            series[-1] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        names = (*self.label_names, "le")
        with self._lock:
            for labels, series in sorted(self.series.items()):
                for bound, count in zip(self.buckets, series, strict=False):
                    lines.append(f"{self.name}_bucket{_labels(names, (*labels, f'{bound:g}'))} {count:g}")
                lines.append(f"{self.name}_bucket{_labels(names, (*labels, '+Inf'))} {series[-1]:g}")
                lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} {series[-2]:.6f}")
                lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {series[-1]:g}")
        return lines


def _gauge(name: str, help_text: str, value: float | None) -> list[str]:
    if value is None:
        return []
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]


CLICK_OUTCOMES = frozenset({"answered", "busy", "no-answer", "rejected", "cancelled", "failed", "ended",
                            "unreachable", "timeout", "hangup", "completed", "declined", "offline"})


def _area(logger_name: str) -> str:
    for area, prefixes in AREAS.items():
        if any(logger_name == p or logger_name.startswith(p + ".") for p in prefixes):
            return area
    return "other"


class _ErrorCounter(logging.Handler):
    def __init__(self, counter: Counter) -> None:
        super().__init__(level=logging.ERROR)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        self.counter.inc(_area(record.name))


class Metrics:
    """Every metric of one server process, and the ASGI wrapper that answers ``/metrics``."""

    def __init__(self, services: Services, switch: SipSwitch | None = None) -> None:
        self.services = services
        self.switch = switch  # the live SIP gauges: calls, registered devices
        self.requests = Counter("callto_http_requests_total", "HTTP requests by method, route and status",
                                ("method", "route", "status"))
        self.latency = Histogram("callto_http_request_duration_seconds", "HTTP request latency by route",
                                 ("route",))
        self.clicks = Counter("callto_click_calls_total", "click-to-call progress events by state", ("state",))
        self.outcomes = Counter("callto_click_outcomes_total", "click-to-call calls ended, by outcome",
                                ("outcome",))
        self.registrations = Counter("callto_device_status_changes_total",
                                     "devices going online or offline (SIP registrations, sessions)",
                                     ("change",))
        self.errors = Counter("callto_log_errors_total", "log records at ERROR or above, by area", ("area",))
        self._error_handler = _ErrorCounter(self.errors)
        services.bus.subscribe(self.on_event)

    def install_log_counter(self) -> None:
        logging.getLogger().addHandler(self._error_handler)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        if route == "/metrics":
            return
        self.requests.inc(method, route, str(status))
        self.latency.observe(seconds, route)

    def on_event(self, event: Event) -> None:
        kind = event.type
        if kind.startswith("call.") and "strategy" in event.data:  # the dialer's click calls
            state = kind[len("call."):]
            self.clicks.inc(state)
            if state == "ended":
                outcome = str(event.data.get("reason") or event.data.get("state") or "ended").lower()
                self.outcomes.inc(outcome if outcome in CLICK_OUTCOMES or _OUTCOME.match(outcome) else "other")
        elif kind in ("device.online", "device.offline"):
            self.registrations.inc(kind[len("device."):])

    def _live(self) -> list[str]:
        switch = self.switch
        # the switch's insides (its B2BUA and registrar) are read as they come: the gauges say "unknown"
        # rather than fail while the switch starts or stops
        b2bua = getattr(switch, "b2bua", None)
        calls = getattr(b2bua, "calls", None)
        registrar = getattr(getattr(switch, "server", None), "registrar", None)
        online = getattr(registrar, "online_devices", None)
        lines = _gauge("callto_sip_calls_active", "SIP calls in progress in the switch",
                       None if calls is None else len(calls))
        lines += _gauge("callto_sip_registered_devices", "devices with at least one SIP registration",
                        None if online is None else len(online()))
        here = getattr(registrar, "devices_registered_here", None)
        lines += _gauge("callto_sip_registered_devices_here",
                        "devices with a SIP registration this node accepted itself (not taken in from another node)",
                        None if here is None else len(here()))
        shedder = getattr(getattr(switch, "server", None), "shedder", None)
        if shedder is not None:
            lines += _gauge("callto_sip_loop_lag_seconds", "how late the SIP switch's event loop runs (smoothed)",
                            shedder.lag)
            lines += ["# HELP callto_sip_shed_total new SIP requests answered 503 because the switch was overloaded",
                      "# TYPE callto_sip_shed_total counter"]
            lines += [f'callto_sip_shed_total{{method="{m}"}} {shedder.shed[m]}' for m in ("REGISTER", "INVITE")]
            lines += [f'callto_sip_shed_total{{method="{m}"}} {n}' for m, n in sorted(shedder.shed.items())
                      if m not in ("REGISTER", "INVITE")]
        lines += _gauge("callto_event_sessions", "open event (WebSocket) sessions", self.services.hub.session_count())
        return lines

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.requests, self.latency, self.clicks, self.outcomes, self.registrations, self.errors):
            lines += metric.render()
        lines += self._live()
        return "\n".join(lines) + "\n"

    # access
    def _loopback(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or self.services.settings.metrics_allow != "loopback":
            return False
        try:
            return ipaddress.ip_address(client[0]).is_loopback
        except ValueError:
            return False

    async def _admin(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        value = headers.get(b"authorization", b"").decode("latin-1")
        if not value.lower().startswith("bearer "):
            return False
        try:
            principal = await asyncio.to_thread(self.services.auth.authenticate, value[7:].strip())
        except Exception:
            return False
        return bool(getattr(principal.user, "is_admin", False))

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope.get("path") != "/metrics":
                await app(scope, receive, send)
                return
            if scope.get("method") not in ("GET", "HEAD"):
                await _respond(send, 405, b'{"error":"method-not-allowed","message":"use GET","details":{}}',
                               "application/json")
                return
            if not (self._loopback(scope) or await self._admin(scope)):
                body = (b'{"error":"unauthorized","message":"/metrics needs an admin token from this address",'
                        b'"details":{}}')
                await _respond(send, 401, body, "application/json")
                return
            await _respond(send, 200, self.render().encode(), CONTENT_TYPE)

        return asgi


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    start: MutableMapping[str, Any] = {
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store")],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
