"""Small pieces of the foundation tested directly: settings, throttling, tokens, the Redis bus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callto.config import ConfigError, load_settings
from callto.directory.errors import InvalidToken
from callto.directory.ratelimit import FailureWindow
from callto.directory.security import TokenSigner
from callto.events.bus import Event, EventBus


def test_settings_come_from_toml_then_environment(tmp_path: Path) -> None:
    (tmp_path / "callto.toml").write_text('http_port = 9000\nsip_port = 5070\n[media]\nrtpengine = "off"\n')
    s = load_settings({"CALLTO_DATA_DIR": str(tmp_path), "CALLTO_SIP_PORT": "5080"})
    assert (s.http_port, s.sip_port, s.media_rtpengine) == (9000, 5080, "off")
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'callto.db'}"


def test_bad_settings_are_reported_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http_port"):
        load_settings({"CALLTO_DATA_DIR": str(tmp_path), "CALLTO_HTTP_PORT": "eighty"})
    (tmp_path / "callto.toml").write_text("htp_port = 1\n")
    with pytest.raises(ConfigError, match=r"unknown settings.*htp_port"):
        load_settings({"CALLTO_DATA_DIR": str(tmp_path)})


def test_failure_window_blocks_after_limit_and_forgets_after_window() -> None:
    now = [0.0]
    window = FailureWindow(limit=3, window=10, clock=lambda: now[0], max_keys=2)
    for _ in range(3):
        window.fail("u")
    assert window.blocked_for("u") == pytest.approx(10)
    now[0] = 10.5
    assert window.blocked_for("u") == 0
    window.fail("a")
    window.fail("b")
    window.fail("c")
    assert len(window._failures) <= 2, "memory stays bounded"


def test_tokens_expire_and_reject_tampering() -> None:
    signer = TokenSigner("k" * 32, ttl_seconds=60)
    token, _ = signer.issue(7, 3)
    claims = signer.check(token)
    assert (claims.user_id, claims.token_version) == (7, 3)
    with pytest.raises(InvalidToken):
        signer.check(token[:-2] + ("A" if token[-1] != "A" else "B") + token[-1])
    old, _ = signer.issue(7, 3, now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(InvalidToken, match="expired"):
        signer.check(old)
    with pytest.raises(InvalidToken):
        TokenSigner("other-key" * 4, 60).check(token)


def test_events_cross_nodes_through_redis(redis_url: str) -> None:
    async def scenario() -> list[Event]:
        a, b = EventBus(redis_url), EventBus(redis_url)
        got: list[Event] = []
        b.subscribe(got.append)
        await a.start()
        await b.start()
        try:
            await asyncio.sleep(0.2)
            a.publish(Event("presence.changed", {"user_id": 1, "presence": "busy"}, frozenset({2, 3})))
            for _ in range(50):
                if got:
                    break
                await asyncio.sleep(0.05)
        finally:
            await a.stop()
            await b.stop()
        return got

    got = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert len(got) == 1 and got[0].users == frozenset({2, 3}) and got[0].data["presence"] == "busy"
