"""Throttling of guesses: failures counted per key in a sliding window, and the login lockout rule.

Counted in this process's memory, and with ``shared`` (several nodes on one Redis, see
:mod:`callto.store.shared`) for the whole deployment as well: a guesser moving from node to node meets
the same count, and a success on one node clears it on all. While Redis answers, its count decides; when
it cannot be reached, each node's own count does (never "no limit"). The shared calls block for at most a
short time-out: call these from worker threads, not from the event loop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from callto.store.shared import Command, window_answer

if TYPE_CHECKING:
    from callto.store.shared import SharedState


class FailureWindow:
    """Counts failures per key over ``window`` seconds; a key with ``limit`` failures is blocked.

    Memory stays bounded: at most ``max_keys`` keys are tracked, the stalest dropped first.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedState | None = None,
        name: str = "guesses",
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.shared = shared
        self.name = name
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _shared_key(self, key: str) -> str:
        assert self.shared is not None
        return self.shared.key("throttle", self.name, key)

    def blocked_for(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may try now)."""
        local = self._local_blocked(key)
        if self.shared is None:
            return local
        return self._blocked(local, self.shared.window(self._shared_key(key), self.window, add=False))

    def _local_blocked(self, key: str) -> float:
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            return 0.0 if times is None or len(times) < self.limit else max(0.0, times[0] + self.window - now)

    def _blocked(self, local: float, answer: tuple[int, float] | None) -> float:
        """While Redis answers, its count decides; else this process's."""
        if answer is None:
            return local
        count, wait = answer
        return wait if count >= self.limit else 0.0

    def _command(self, key: str, *, add: bool) -> Command:
        """This window's shared read (or, with ``add``, failure) as a command for ``SharedState.batch``."""
        assert self.shared is not None
        if add:
            return self.shared.window_command(self._shared_key(key), self.window, add=True, keep=self.limit * 2)
        return self.shared.window_command(self._shared_key(key), self.window, add=False)

    def fail(self, key: str) -> int:
        """Count a failure of ``key``; the failures within the window, this one included (as :meth:`count`)."""
        local = self._local_fail(key)
        if self.shared is None:
            return local
        answer = self.shared.window(self._shared_key(key), self.window, add=True, keep=self.limit * 2)
        return local if answer is None else answer[0]

    def _local_fail(self, key: str) -> int:
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if times is None:
                if len(self._failures) >= self.max_keys:
                    self._failures.pop(next(iter(self._failures)))
                times = self._failures[key] = deque(maxlen=self.limit * 2)
            times.append(now)
            return len(times)

    def count(self, key: str) -> int:
        """Failures of ``key`` within the window (for security log lines)."""
        with self._lock:
            times = self._recent(key, self._clock())
            local = 0 if times is None else len(times)
        if self.shared is None:
            return local
        answer = self.shared.window(self._shared_key(key), self.window, add=False)
        return local if answer is None else answer[0]

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
        if self.shared is not None:
            self.shared.delete(self._shared_key(key))


class LoginThrottle:
    """The login lockout rule, so that nobody can lock a user out from where they work.

    * ``per_pair``: failures of one username from one address. After ``pair_limit`` (5) in 5 minutes
      that address may not try that username for the rest of the window. This is the short lock a guesser
      at one address hits; the user at any other address is not affected.
    * ``per_address``: failures from one address over every username (20 in 5 minutes), so one address
      cannot spray many usernames.
    * ``per_user``: failures of one username from every address together. Since one address adds at most
      ``pair_limit`` per 5 minutes, reaching ``user_limit`` (50 in 15 minutes) takes several addresses:
      a distributed guesser. Then the username is locked from every address *except* those it has logged
      in from successfully (``known_good``, the last ``max_known`` addresses per user, remembered for
      ``known_for`` seconds), so the user keeps working where they always do.

    A success clears that pair only: the per-username count stays, or a guesser would be let off by the
    real user's logins. State is in this process's memory (a restart forgets it), and with ``shared`` in
    the deployment's Redis too, the known-good addresses included, so every node applies the same counts.
    """

    def __init__(
        self,
        *,
        pair_limit: int = 5,
        address_limit: int = 20,
        user_limit: int = 50,
        window: float = 300,
        user_window: float = 900,
        known_for: float = 30 * 86400,
        max_known: int = 20,
        max_users: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedState | None = None,
    ) -> None:
        self.per_pair = FailureWindow(pair_limit, window, clock=clock, shared=shared, name="login-pair")
        self.per_address = FailureWindow(address_limit, window, clock=clock, shared=shared, name="login-address")
        self.per_user = FailureWindow(user_limit, user_window, clock=clock, shared=shared, name="login-user")
        self.shared = shared
        self.known_for = known_for
        self.max_known = max_known
        self.max_users = max_users
        self._clock = clock
        self._known: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _pair(username: str, address: str) -> str:
        return f"{username}\x00{address}"

    def is_known(self, username: str, address: str) -> bool:
        """Whether ``username`` logged in successfully from ``address`` within ``known_for`` seconds."""
        if self._known_here(username, address):
            return True
        if self.shared is None:
            return False
        return bool(self.shared.marked_within(self.shared.key("login-known", username), address, self.known_for))

    def _known_here(self, username: str, address: str) -> bool:
        with self._lock:
            seen = self._known.get(username, {}).get(address)
            return seen is not None and seen > self._clock() - self.known_for

    def wait(self, username: str, address: str) -> float:
        """Seconds before ``username`` may try again from ``address`` (0: now). With Redis: one round trip
        for the three windows and the known-address check."""
        pair = self._pair(username, address)
        local_pair, local_address = self.per_pair._local_blocked(pair), self.per_address._local_blocked(address)
        known_here = self._known_here(username, address)
        local_user = 0.0 if known_here else self.per_user._local_blocked(username)
        if self.shared is None:
            return max(local_pair, local_address, local_user)
        commands = [self.per_pair._command(pair, add=False), self.per_address._command(address, add=False)]
        if not known_here:
            commands += [self.per_user._command(username, add=False),
                         self.shared.marked_command(self.shared.key("login-known", username), address, self.known_for)]
        answers = self.shared.batch(commands)
        if answers is None:  # Redis down: this process's counts, as one node without Redis
            return max(local_pair, local_address, local_user)
        wait = max(self.per_pair._blocked(local_pair, window_answer(answers[0])),
                   self.per_address._blocked(local_address, window_answer(answers[1])))
        if not known_here and not answers[3]:
            wait = max(wait, self.per_user._blocked(local_user, window_answer(answers[2])))
        return wait

    def failed(self, username: str, address: str) -> None:
        """Count a failed login in the three windows (with Redis: in one round trip)."""
        pair = self._pair(username, address)
        self.per_pair._local_fail(pair)
        self.per_address._local_fail(address)
        self.per_user._local_fail(username)
        if self.shared is not None:
            self.shared.batch([self.per_pair._command(pair, add=True), self.per_address._command(address, add=True),
                               self.per_user._command(username, add=True)])

    def succeeded(self, username: str, address: str) -> None:
        self.per_pair.reset(self._pair(username, address))
        with self._lock:
            known = self._known.pop(username, None)
            if known is None and len(self._known) >= self.max_users:
                self._known.pop(next(iter(self._known)))
            known = known or {}
            known.pop(address, None)
            known[address] = self._clock()
            while len(known) > self.max_known:
                known.pop(next(iter(known)))
            self._known[username] = known  # re-inserted: the stalest user is the first dropped
        if self.shared is not None:
            self.shared.mark(self.shared.key("login-known", username), address, keep=self.max_known, ttl=self.known_for)
