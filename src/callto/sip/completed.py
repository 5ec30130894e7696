"""Answered non-INVITE server transactions over UDP, kept as the bytes of their answer until Timer J.

RFC 3261 17.2.2: in state "Completed" all such a transaction still does is answer a retransmitted
request with the same final response, for Timer J's 64*T1. Keeping it as key -> (deadline, what to send)
instead of a whole transaction (request, response, parsed headers: ~50 objects each) matters at 1,000
REGISTERs/s, where 64,000 of them are alive. Timer J is the same for all, so deadlines come in order and
a deque is their timer queue. Beyond ``limit`` the oldest go first, which only stops absorbing their (by
then unlikely) retransmissions.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

Key = tuple[str, ...]
T = TypeVar("T")


class CompletedAnswers(Generic[T]):
    """key -> the answer to send again, until its deadline; ``T`` is what the endpoint transmits."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._answers: dict[Key, tuple[float, T]] = {}
        self._order: deque[tuple[float, Key]] = deque()

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: Key) -> T | None:
        done = self._answers.get(key)
        return done[1] if done is not None else None

    def add(self, key: Key, deadline: float, answer: T) -> None:
        self._answers[key] = (deadline, answer)
        self._order.append((deadline, key))
        if len(self._order) > self._limit:
            self._drop_first()

    def next_deadline(self) -> float | None:
        return self._order[0][0] if self._order else None

    def expire(self, now: float) -> None:
        order = self._order
        while order and order[0][0] <= now:
            self._drop_first()

    def _drop_first(self) -> None:
        deadline, key = self._order.popleft()
        done = self._answers.get(key)
        if done is not None and done[0] == deadline:
            del self._answers[key]
