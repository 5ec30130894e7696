"""Media as effects: what the B2BUA asks of the media relay, and how the answer comes back.

Owns the effects (:class:`MediaOfferNeeded`, :class:`MediaAnswerNeeded`, :class:`MediaReleaseNeeded`)
and :class:`MediaRequests`, the queue of effects plus the continuation each offer/answer waits with.
Nothing here performs I/O or reads a clock: the B2BUA puts an effect in the queue, its driver takes it
with :meth:`MediaRequests.next` (``B2BUA.next_media_request``), asks rtpengine, and feeds the result back
with ``B2BUA.media_ready(request_id, sdp, now)`` or ``B2BUA.media_failed(request_id, reason, now)``; the
continuation then runs with that ``now``. :mod:`callto.sip.media_driver` is the asyncio driver; the core
tests answer the effects by hand.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from callto.sip.media import Flags

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MediaOfferNeeded:
    """Rewrite the offer ``sdp`` that ``from_tag``'s leg of ``call_id`` made (rtpengine ``offer``)."""

    request_id: int
    call_id: str
    from_tag: str
    sdp: str
    flags: Flags


@dataclass(frozen=True, slots=True)
class MediaAnswerNeeded:
    """Rewrite the answer ``sdp`` of ``to_tag``'s leg to ``from_tag``'s offer (rtpengine ``answer``)."""

    request_id: int
    call_id: str
    from_tag: str
    to_tag: str
    sdp: str
    flags: Flags


@dataclass(frozen=True, slots=True)
class MediaReleaseNeeded:
    """The call's relay session is no longer needed (rtpengine ``delete``); nothing is fed back."""

    call_id: str
    from_tag: str


MediaEffect = MediaOfferNeeded | MediaAnswerNeeded | MediaReleaseNeeded
# what an offer/answer waits with: (the rewritten SDP, or None and why not, now)
MediaContinuation = Callable[[str | None, str, float], None]


class MediaRelayStatus(Protocol):
    """Whether a media relay can be asked now (a synchronous look at its state, no I/O)."""

    reason: str

    def available(self) -> bool: ...


class MediaRequests:
    """The effects waiting for the driver and the continuations waiting for their answers."""

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self._queue: deque[MediaEffect] = deque()
        self._waiting: dict[int, MediaContinuation] = {}
        self._ids = itertools.count(1)
        self.notify = notify  # told (synchronously) that an effect is queued: the driver drains later

    def offer(self, call_id: str, from_tag: str, sdp: str, flags: Flags, then: MediaContinuation) -> int:
        request_id = next(self._ids)
        self._waiting[request_id] = then
        self._put(MediaOfferNeeded(request_id, call_id, from_tag, sdp, flags))
        return request_id

    def answer(
        self, call_id: str, from_tag: str, to_tag: str, sdp: str, flags: Flags, then: MediaContinuation
    ) -> int:
        request_id = next(self._ids)
        self._waiting[request_id] = then
        self._put(MediaAnswerNeeded(request_id, call_id, from_tag, to_tag, sdp, flags))
        return request_id

    def release(self, call_id: str, from_tag: str) -> None:
        self._put(MediaReleaseNeeded(call_id, from_tag))

    def next(self) -> MediaEffect | None:
        return self._queue.popleft() if self._queue else None

    def pending(self) -> int:
        """How many offers/answers still wait for their result."""
        return len(self._waiting)

    def resolve(self, request_id: int, sdp: str | None, reason: str, now: float) -> bool:
        """Run the continuation of ``request_id``; False when it is unknown (answered twice)."""
        then = self._waiting.pop(request_id, None)
        if then is None:
            log.debug("media result for unknown request %s", request_id)
            return False
        then(sdp, reason, now)
        return True

    def _put(self, effect: MediaEffect) -> None:
        self._queue.append(effect)
        if self.notify is not None:
            self.notify()
