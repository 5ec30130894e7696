"""A webhook receiver for tests: a real HTTP server on a free loopback port, in a thread, that records
every request and checks its signature with the recipe from docs/integrations.md."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support.ports import free_port

REPLAY_WINDOW = 300


def verify(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """The receiver's side of the signature (the documented recipe)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    timestamp, received = int(parts["t"]), parts["v1"]
    if abs((now or time.time()) - timestamp) > REPLAY_WINDOW:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    status: int = 200
    location: str | None = None  # answer with a redirect there
    hang: threading.Event | None = None  # set: answer; unset: hang until it is set (or 30 s)
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                                  time.monotonic()))
                if receiver.hang is not None:
                    receiver.hang.wait(30)
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.hang is not None:
            self.hang.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def wait_for(
        self, event_type: str, timeout: float = 10.0, users: list[int] | None = None, **match: Any
    ) -> Received:
        """The first delivery of ``event_type`` whose data has ``match`` (and, given ``users``, addressed to
        exactly those users: one call is an event for each user in it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r in list(self.requests):
                doc = r.json
                if (
                    doc.get("type") == event_type
                    and all(doc["data"].get(k) == v for k, v in match.items())
                    and (users is None or doc.get("user_ids") == users)
                ):
                    return r
            time.sleep(0.05)
        seen = [r.json.get("type") for r in self.requests]
        raise AssertionError(f"no {event_type} {match} within {timeout} s; received {seen}")
