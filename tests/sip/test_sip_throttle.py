"""The digest-guessing policy with plain numbers for time: slowed, then refused, per source; accounts slowed
but never locked; one security line per source per interval; bounded memory."""

from __future__ import annotations

from callto.sip.throttle import DigestThrottle, InMemoryFailureCounter, ThrottleConfig

CFG = ThrottleConfig(window=300, slow_after=3, delay_step=0.5, max_delay=4, block_after=10, block_seconds=600,
                     account_slow_after=10, account_delay=1.0, log_interval=60)


def _throttle(events: list[tuple[str, str, str, int]]) -> DigestThrottle:
    return DigestThrottle(CFG, on_security_event=lambda *e: events.append(e))


def test_a_source_is_slowed_after_a_few_failures_then_refused_for_a_while() -> None:
    t = _throttle([])
    delays = []
    for i in range(9):
        delays.append(t.delay_for("198.51.100.7", float(i)))
        t.failed("198.51.100.7", "alice", float(i))
    assert delays[:3] == [0.0, 0.0, 0.0] and delays[3:] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert not t.blocked("198.51.100.7", 9.0)
    t.failed("198.51.100.7", "alice", 9.0)  # the tenth
    assert t.blocked("198.51.100.7", 10.0) and t.blocked("198.51.100.7", 608.0)
    assert not t.blocked("198.51.100.7", 610.0)  # refused for block_seconds, then heard again
    assert not t.blocked("198.51.100.8", 10.0)  # another address is not concerned


def test_an_account_guessed_from_many_addresses_is_slowed_but_never_blocked_and_its_own_device_passes() -> None:
    t = _throttle([])
    extra = [t.failed(f"203.0.113.{i}", "bob", float(i)) for i in range(30)]  # one guess per address
    assert extra[:9] == [0.0] * 9 and set(extra[9:]) == {1.0}  # failure answers for bob get slower
    assert not any(t.blocked(f"203.0.113.{i}", 31.0) for i in range(30))
    assert t.delay_for("192.0.2.10", 31.0) == 0.0  # bob's phone at its own address: answered at once


def test_success_clears_the_source_and_a_window_forgets_old_failures() -> None:
    t = _throttle([])
    for i in range(5):
        t.failed("192.0.2.20", "carol", float(i))
    assert t.delay_for("192.0.2.20", 5.0) > 0
    t.succeeded("192.0.2.20", 5.0)  # the phone got its password right
    assert t.delay_for("192.0.2.20", 5.0) == 0.0
    for i in range(5):
        t.failed("192.0.2.21", "carol", float(i))
    assert t.delay_for("192.0.2.21", 400.0) == 0.0  # all older than the 300 s window


def test_security_events_are_one_line_per_source_per_interval_plus_one_when_blocked() -> None:
    events: list[tuple[str, str, str, int]] = []
    t = _throttle(events)
    for i in range(12):
        t.failed("198.51.100.9", "admin", i * 0.1)
    assert events == [
        ("sip-auth-failed", "198.51.100.9", "admin", 1),
        ("sip-auth-blocked", "198.51.100.9", "admin", 10),
    ]
    t.failed("198.51.100.9", "admin", 70.0)
    assert events[-1] == ("sip-auth-failed", "198.51.100.9", "admin", 13)


def test_the_in_memory_counter_is_bounded_whatever_the_spray_of_addresses() -> None:
    counter = InMemoryFailureCounter(300, max_keys=1000, max_per_key=50)
    for i in range(5000):
        counter.add(f"src:10.0.{i // 256}.{i % 256}", float(i) / 100)
    for _ in range(500):
        counter.add("src:10.9.9.9", 1.0)
    assert len(counter._times) == 1000 and counter.count("src:10.9.9.9", 2.0) == 50


def test_an_address_phones_register_from_is_not_blocked_by_one_misconfigured_phone() -> None:
    t = _throttle([])
    t.succeeded("192.0.2.30", 0.0)  # the office's NAT address: its phones register from it
    for i in range(50):  # one phone with a stale password retrying every 30 s for 25 minutes
        t.failed("192.0.2.30", "dave", 10.0 + i * 30)
    assert not t.blocked("192.0.2.30", 1600.0)
    for i in range(100):  # a guesser from the same address still ends up refused
        t.failed("192.0.2.30", "erin", 1600.0 + i * 0.1)
    assert t.blocked("192.0.2.30", 1620.0)
