"""SIP digest guessing: failures counted per source address and per account, guessers slowed then refused.

Owns the policy (:class:`DigestThrottle`) and the counting behind it (:class:`FailureCounter`, a small
protocol: :class:`InMemoryFailureCounter` on one node; nodes that share a Redis get a counter of the whole
deployment from outside this package, ``callto.shared_throttle``).
Sans-IO: ``now`` is passed in, nothing sleeps; the server applies the decisions (delays an answer, drops
a source's packets, logs).

The rule, per sliding ``window``:

- a source with ``slow_after`` failed digest answers or more gets every REGISTER answer delayed by
  ``delay_step`` per failure above it (up to ``max_delay``): a sequential guesser gets a guess or less per
  second;
- a source with ``block_after`` failures is refused for ``block_seconds``: its packets are dropped
  unanswered (a fail2ban-style ban, see docs/sip.md for why silence and not 403/503);
- an account with ``account_slow_after`` failures from any sources gets its failure answers delayed
  (a distributed guesser is slowed), but the account is never blocked: its own device, at its own
  address, keeps registering;
- a successful REGISTER clears its source's count (a phone that had a wrong password, then the right one)
  and makes the source trusted for ``trusted_seconds``: a trusted source (an office NAT address its phones
  register from) is blocked only at ``trusted_block_after`` failures, so one misconfigured phone retrying
  every 30 s does not lock out the whole office.

Every failure is reported through ``on_security_event(event, source, account, count)`` at most once per
source per ``log_interval`` (``sip-auth-failed``), plus once when a source is blocked (``sip-auth-blocked``):
the server passes :func:`callto.security_log.security_event`, one parseable line for fail2ban.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

SecurityEvent = Callable[[str, str, str, int], None]


class FailureCounter(Protocol):
    """Failures per key within a sliding window (keys: ``src:<ip>``, ``acct:<username>``).

    Called on the event loop for every REGISTER: an implementation must answer at once (one shared by
    several nodes answers from what it knows now and learns the other nodes' counts in the background);
    its counts may include failures seen by other nodes.
    """

    def add(self, key: str, now: float) -> int:
        """Count one failure; the failures of ``key`` within the window, this one included."""
        ...

    def count(self, key: str, now: float) -> int: ...

    def clear(self, key: str) -> None: ...


class InMemoryFailureCounter:
    """One process's counts: per key the failure times of the window, at most ``max_keys`` keys (the
    least recently failed forgotten first, so a spray of addresses cannot grow memory)."""

    def __init__(self, window: float = 300.0, *, max_keys: int = 100_000, max_per_key: int = 1000) -> None:
        self.window = window
        self.max_keys = max_keys
        self.max_per_key = max_per_key
        self._times: OrderedDict[str, list[float]] = OrderedDict()

    def _live(self, key: str, now: float) -> list[float]:
        times = self._times.get(key)
        if times is None:
            return []
        cutoff = now - self.window
        if times and times[0] <= cutoff:
            times[:] = [t for t in times if t > cutoff]
        return times

    def add(self, key: str, now: float) -> int:
        times = self._live(key, now)
        if key not in self._times:
            self._times[key] = times
            if len(self._times) > self.max_keys:
                self._times.popitem(last=False)
        else:
            self._times.move_to_end(key)
        times.append(now)
        if len(times) > self.max_per_key:
            del times[0]
        return len(times)

    def count(self, key: str, now: float) -> int:
        return len(self._live(key, now))

    def clear(self, key: str) -> None:
        self._times.pop(key, None)


@dataclass(frozen=True)
class ThrottleConfig:
    window: float = 300.0
    slow_after: int = 3
    delay_step: float = 0.5
    max_delay: float = 4.0
    block_after: int = 10
    block_seconds: float = 600.0
    account_slow_after: int = 10
    account_delay: float = 1.0
    log_interval: float = 60.0
    trusted_seconds: float = 3600.0
    trusted_block_after: int = 100


class DigestThrottle:
    """See the module docstring. ``delay_for`` and ``blocked`` are asked for every REGISTER / packet."""

    def __init__(
        self,
        config: ThrottleConfig | None = None,
        counter: FailureCounter | None = None,
        *,
        on_security_event: SecurityEvent | None = None,
        max_blocked: int = 100_000,
    ) -> None:
        self.config = config or ThrottleConfig()
        self.counter: FailureCounter = counter or InMemoryFailureCounter(self.config.window)
        self.on_security_event = on_security_event
        self.max_blocked = max_blocked
        self._blocked: dict[str, float] = {}  # source -> until
        self._logged: OrderedDict[str, float] = OrderedDict()  # source -> when its last line was logged
        self._trusted: OrderedDict[str, float] = OrderedDict()  # source -> its last successful REGISTER
        self.stats = {"failures": 0, "blocked": 0, "dropped": 0, "delayed": 0}

    @property
    def any_blocked(self) -> bool:
        """Cheap test before :meth:`blocked` on every packet: is any source refused at all?"""
        return bool(self._blocked)

    def blocked(self, source: str, now: float) -> bool:
        until = self._blocked.get(source)
        if until is None:
            return False
        if until <= now:
            del self._blocked[source]
            return False
        self.stats["dropped"] += 1
        return True

    def delay_for(self, source: str, now: float) -> float:
        """Seconds to hold the answer to a REGISTER from ``source`` (0: answer now)."""
        failures = self.counter.count(f"src:{source}", now)
        cfg = self.config
        if failures < cfg.slow_after:
            return 0.0
        self.stats["delayed"] += 1
        return min(cfg.max_delay, cfg.delay_step * (failures - cfg.slow_after + 1))

    def failed(self, source: str, account: str | None, now: float) -> float:
        """A wrong password (or unknown user) from ``source`` for ``account``; returns the extra seconds to
        hold this failure's answer because of the account's count (the source's is in ``delay_for``)."""
        cfg = self.config
        self.stats["failures"] += 1
        count = self.counter.add(f"src:{source}", now)
        account_count = self.counter.add(f"acct:{account}", now) if account else 0
        trusted = self._trusted.get(source)
        is_trusted = trusted is not None and now - trusted < cfg.trusted_seconds
        limit = cfg.trusted_block_after if is_trusted else cfg.block_after
        if count >= limit and source not in self._blocked:
            if len(self._blocked) >= self.max_blocked:
                self._blocked.pop(next(iter(self._blocked)))
            self._blocked[source] = now + cfg.block_seconds
            self.stats["blocked"] += 1
            self._emit("sip-auth-blocked", source, account, count)
            self._logged[source] = now
        else:
            last = self._logged.get(source)
            if last is None or now - last >= cfg.log_interval:
                self._emit("sip-auth-failed", source, account, count)
                self._logged[source] = now
                self._logged.move_to_end(source)
                if len(self._logged) > 100_000:
                    self._logged.popitem(last=False)
        return cfg.account_delay if account_count >= cfg.account_slow_after else 0.0

    def succeeded(self, source: str, now: float) -> None:
        self.counter.clear(f"src:{source}")
        self._trusted[source] = now
        self._trusted.move_to_end(source)
        if len(self._trusted) > 100_000:
            self._trusted.popitem(last=False)

    def _emit(self, event: str, source: str, account: str | None, count: int) -> None:
        if self.on_security_event is not None:
            self.on_security_event(event, source, account or "-", count)
