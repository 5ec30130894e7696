"""The login lockout rule: a guesser locks only itself out; a distributed guesser locks the username,
but never at the addresses the user has logged in from (see ``LoginThrottle``).

Each "address" is a real loopback source address (127.0.0.0/8 is all loopback on Linux), so the server
sees a different client address exactly as it would for machines on a network."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from callto.directory.ratelimit import LoginThrottle
from support.server import Api, ServerProcess, admin_client, start_server

PASSWORD = "password-123"


class From:
    """Log-in attempts from one loopback source address."""

    def __init__(self, server: ServerProcess, address: str) -> None:
        self.http = httpx.Client(
            base_url=server.url, transport=httpx.HTTPTransport(local_address=address), timeout=15
        )

    def login(self, username: str, password: str) -> httpx.Response:
        return self.http.post("/api/v1/auth/login", json={"username": username, "password": password})


@pytest.fixture(scope="module")
def lockout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # SQLite only: the counters live in the server's memory, whatever the database.
    tmp = tmp_path_factory.mktemp("lockout")
    proc = start_server(tmp / "data", f"sqlite:///{tmp / 'callto.db'}")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def admin_api(lockout_server: ServerProcess) -> Iterator[Api]:
    with admin_client(lockout_server.url) as api:
        yield api


@pytest.fixture
def addresses(lockout_server: ServerProcess) -> Iterator[list[From]]:
    # A block of its own per test: the per-address counters of one test never touch another's.
    base = secrets.randbelow(200) + 2
    clients = [From(lockout_server, f"127.{base}.{i // 250}.{i % 250 + 1}") for i in range(14)]
    try:
        yield clients
    finally:
        for c in clients:
            c.http.close()


def test_a_guesser_at_one_address_does_not_lock_the_user_out_elsewhere(
    admin_api: Api, addresses: list[From]
) -> None:
    user = admin_api.create_user()["username"]
    office, attacker, new_laptop = addresses[0], addresses[1], addresses[2]
    assert office.login(user, PASSWORD).status_code == 200
    codes = [attacker.login(user, f"guess-{i}").status_code for i in range(8)]
    assert codes == [401] * 5 + [429] * 3, "the guessing address is locked after five failures"
    assert attacker.login(user, PASSWORD).status_code == 429, "even the right password, from there"
    assert office.login(user, PASSWORD).status_code == 200, "the user's own address is not locked"
    assert new_laptop.login(user, PASSWORD).status_code == 200, "nor is an address never used before"


def test_a_distributed_guesser_locks_the_username_except_where_the_user_logged_in(
    admin_api: Api, addresses: list[From]
) -> None:
    user = admin_api.create_user()["username"]
    office, guessers, elsewhere = addresses[0], addresses[1:12], addresses[12]
    assert office.login(user, PASSWORD).status_code == 200
    codes = [g.login(user, f"guess-{i}").status_code for g in guessers for i in range(5)]
    # 50 failures in all (5 from each of 10 addresses) lock the username: the 11th address's first
    # guess is refused without being tried.
    assert codes.count(401) == 50 and codes[50:] == [429] * 5, codes
    refused = elsewhere.login(user, PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0, (
        "an address the user never logged in from waits out the lock"
    )
    assert office.login(user, PASSWORD).status_code == 200, "the user keeps logging in where they work"


def test_the_lockout_rule_forgets_after_its_windows() -> None:
    now = [0.0]
    rule = LoginThrottle(pair_limit=2, address_limit=100, user_limit=4, window=10, user_window=30,
                         known_for=100, clock=lambda: now[0])
    rule.succeeded("ann", "home")
    rule.failed("ann", "a")
    rule.failed("ann", "a")
    assert rule.wait("ann", "a") == pytest.approx(10), "the pair lock"
    assert rule.wait("ann", "c") == 0, "only at the guessing address"
    rule.failed("ann", "b")
    rule.failed("ann", "b")
    assert rule.wait("ann", "c") == pytest.approx(30), "the username lock, for an unknown address"
    assert rule.wait("ann", "home") == 0, "a known-good address is exempt"
    assert rule.wait("bob", "a") == 0, "another user at the guessing address is not locked"
    now[0] = 31
    assert rule.wait("ann", "c") == 0 and rule.wait("ann", "a") == 0
    now[0] = 150
    assert not rule.is_known("ann", "home"), "a known address is forgotten after known_for"
