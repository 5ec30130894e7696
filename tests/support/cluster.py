"""Helpers for tests of several callto nodes behind the Kamailio edge: phones registered through the edge,
and which node a phone landed on (each node's own count of the REGISTERs that reached it)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from support.baresip import Baresip
from support.fixtures import BaresipFactory
from support.kamailio import Edge
from support.server import ServerProcess


def registered_here(node: ServerProcess) -> int:
    """The node's own count of phones whose REGISTER reached it (not taken in from the other node)."""
    text = httpx.get(f"{node.url}/metrics", timeout=5).text
    [line] = [x for x in text.splitlines() if x.startswith("callto_sip_registered_devices_here ")]
    return int(float(line.split()[1]))


def phone_via_edge(
    factory: BaresipFactory, tone: Path, edge: Edge, device: dict[str, Any], label: str, answermode: str = "manual"
) -> Baresip:
    """A desk phone registered through the Kamailio edge (which picks its node)."""
    from e2e.test_click_to_call_desk_phone import register_phone

    return register_phone(factory, tone, None, device, label, answermode, outbound=f"sip:{edge.address};transport=udp")


def home_of(nodes: tuple[ServerProcess, ServerProcess], before: tuple[int, int]) -> ServerProcess:
    """The node a phone that just registered landed on: the one whose own registration count went up."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        grown = [n for n, was in zip(nodes, before, strict=True) if registered_here(n) > was]
        if len(grown) == 1:
            return grown[0]
        time.sleep(0.1)
    raise AssertionError("no single node took the registration")


class EventsSession:
    """A CTI events session (a plain WebSocket client, no device): keeps every event it receives."""

    def __init__(self, ws_url: str, token: str) -> None:
        from websockets.sync.client import connect

        self._cm = connect(f"{ws_url}/api/v1/events?token={token}", open_timeout=5)
        self.ws = self._cm.__enter__()
        self.events: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=60)))
            except Exception:
                return

    def of(self, kind: str, **data: Any) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("type") == kind
                and all((e.get("data") or {}).get(k) == v for k, v in data.items())]

    def close(self) -> None:
        self._cm.__exit__(None, None, None)
        self._thread.join(5)


def deployment_env(redis_url: str | None = None) -> dict[str, str]:
    """What the nodes of one test deployment share besides the database: the key of the secrets stored in
    it and, with Redis, the URL and a prefix of this run's own (a prefix from ``tmp_path``'s name would repeat
    between runs and pytest workers, and idempotency keys and throttle counts outlive a run by minutes)."""
    from callto.store.secretbox import new_key_text

    env = {"CALLTO_SECRET_KEY": new_key_text()}
    if redis_url is not None:
        env["CALLTO_REDIS_URL"] = redis_url
        env["CALLTO_REDIS_PREFIX"] = f"callto:test-{secrets.token_hex(6)}"
    return env
