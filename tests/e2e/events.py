"""A background reader of one user's event stream, for end-to-end tests."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from websockets.sync.client import connect


class EventLog:
    def __init__(self, ws_url: str, token: str) -> None:
        self._cm = connect(f"{ws_url}/api/v1/events?token={token}", open_timeout=5)
        self.ws = self._cm.__enter__()
        self.events: list[dict[str, Any]] = []
        self._stop = False
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        # The server accepts the WebSocket before it checks the token and opens the session: only
        # ``session.ready`` says events for this user are delivered from now on (a test that acts
        # right after connecting would otherwise race the session's opening).
        self.wait("session.ready", timeout=5.0)

    def _run(self) -> None:
        while not self._stop:
            try:
                message = json.loads(self.ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            except Exception:
                return
            with self._lock:
                self.events.append(message)

    def types(self) -> list[str]:
        with self._lock:
            return [e["type"] for e in self.events if e["type"] != "ping"]

    def wait(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for event in self.events:
                    data = event.get("data", {})
                    if event["type"] == kind and all(data.get(k) == v for k, v in match.items()):
                        return event
            time.sleep(0.05)
        raise AssertionError(f"no {kind} {match} within {timeout} s; saw {self.types()}")

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self._cm.__exit__(None, None, None)
