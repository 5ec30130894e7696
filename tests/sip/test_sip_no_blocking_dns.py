"""No blocking DNS on the event loop: a resolver that takes a second to answer (a dead DNS server) must not
hold the loop that carries the calls. Pinned twice: the trunk path runs against a slow ``getaddrinfo``
with the loop's responsiveness measured, and no module of ``callto.sip`` calls the blocking resolver."""

from __future__ import annotations

import ast
import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from sip_helpers import DOMAIN, torture_credentials

import callto.sip
from callto.sip.ports import InMemoryBindingStore
from callto.sip.switch import SipSwitch, SwitchConfig
from callto.sip.trunk import TrunkConfig, resolve_host

SLOW = 0.6
BLOCKING = {"getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "create_connection"}


def _slow_resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []
    real = socket.getaddrinfo

    def slow(host: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(host))
        time.sleep(SLOW)
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    return asked


async def _max_gap_while(awaitable: Any) -> tuple[Any, float]:
    """Run ``awaitable`` while a 10 ms ticker measures the longest the loop was held."""
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.monotonic()
        while not done:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    try:
        result = await awaitable
    finally:
        done = True
        await task
    return result, max(gaps)


def test_resolving_a_trunk_host_leaves_the_loop_responsive(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _slow_resolver(monkeypatch)
    address, gap = asyncio.run(_max_gap_while(resolve_host("sip.provider.example")))
    assert asked == ["sip.provider.example"]
    assert address == "127.0.0.1"
    assert gap < SLOW / 2, f"the loop was held {gap:.3f} s by a {SLOW} s look-up"


def test_saving_a_trunk_by_host_name_on_a_running_switch_leaves_the_loop_responsive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> tuple[list[str], float]:
        switch = SipSwitch(SwitchConfig(domain=DOMAIN, port=0, tcp=False), torture_credentials(),
                           InMemoryBindingStore())
        await switch.start()
        try:
            asked = _slow_resolver(monkeypatch)
            trunk = TrunkConfig(id="t1", name="provider", host="sip.provider.example", register=True,
                                username="u", password="p")

            async def save_and_wait() -> None:
                switch.set_trunks([trunk])
                deadline = time.monotonic() + 5
                while "sip.provider.example" not in asked and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(SLOW + 0.2)  # the look-up finishes meanwhile

            _, gap = await _max_gap_while(save_and_wait())
            return asked, gap
        finally:
            await switch.stop()

    asked, gap = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert "sip.provider.example" in asked
    assert gap < SLOW / 2, f"the loop was held {gap:.3f} s by a {SLOW} s look-up"


def test_no_module_of_the_sip_package_calls_the_blocking_resolver() -> None:
    offenders = []
    for path in sorted(Path(callto.sip.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in BLOCKING and isinstance(node.value, ast.Name)
                    and node.value.id == "socket"):
                offenders.append(f"{path.name}:{node.lineno} socket.{node.attr}")
    assert offenders == []
