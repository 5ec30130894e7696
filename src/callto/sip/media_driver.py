"""The asyncio side of the B2BUA's media effects: ask rtpengine, feed the answer back with ``now``.

Owns :class:`MediaDriver`, which the switch attaches to its B2BUA: when the B2BUA queues an effect
(:mod:`callto.sip.media_effects`) the driver is told, drains the queue on the next loop turn, runs each
effect as a task against the media service (``callto.media.rtpengine.RtpEngine`` satisfies
:class:`MediaService`), and calls ``b2bua.media_ready`` / ``media_failed`` with the clock's ``now``, then
``wake`` so the endpoint's output leaves. The B2BUA itself never awaits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from callto.sip.media import Flags
from callto.sip.media_effects import MediaAnswerNeeded, MediaEffect, MediaOfferNeeded, MediaReleaseNeeded

if TYPE_CHECKING:
    from callto.sip.b2bua import B2BUA

log = logging.getLogger(__name__)


class MediaService(Protocol):
    """The media relay's asynchronous client (rtpengine's ng protocol)."""

    reason: str

    def available(self) -> bool: ...

    async def offer(self, call_id: str, from_tag: str, sdp: str, flags: Flags) -> str: ...

    async def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: str, flags: Flags) -> str: ...

    async def delete(self, call_id: str, from_tag: str) -> Any: ...


class MediaDriver:
    """Carries out the media effects of one B2BUA on the running loop."""

    def __init__(
        self,
        media: MediaService,
        clock: Callable[[], float],
        wake: Callable[[], None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.media = media
        self.clock = clock
        self.wake = wake
        self.spawn = spawn
        self.b2bua: B2BUA | None = None
        self._scheduled = False

    def attach(self, b2bua: B2BUA) -> None:
        self.b2bua = b2bua
        b2bua.media_requests.notify = self._kick

    def _kick(self) -> None:
        # called from inside the B2BUA: drain after it returns, never re-enter it
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.drain)

    def drain(self) -> None:
        self._scheduled = False
        b2bua = self.b2bua
        if b2bua is None:
            return
        while (effect := b2bua.next_media_request()) is not None:
            self.spawn(self._run(b2bua, effect))

    async def _run(self, b2bua: B2BUA, effect: MediaEffect) -> None:
        media = self.media
        if isinstance(effect, MediaReleaseNeeded):
            try:
                await media.delete(effect.call_id, effect.from_tag)
            except Exception as exc:
                log.debug("rtpengine delete for %s: %s", effect.call_id, exc)
            return
        try:
            if isinstance(effect, MediaOfferNeeded):
                sdp = await media.offer(effect.call_id, effect.from_tag, effect.sdp, effect.flags)
            else:
                assert isinstance(effect, MediaAnswerNeeded)
                sdp = await media.answer(effect.call_id, effect.from_tag, effect.to_tag, effect.sdp, effect.flags)
        except Exception as exc:
            log.warning("rtpengine %s for call %s failed: %s", type(effect).__name__, effect.call_id, exc)
            b2bua.media_failed(effect.request_id, str(exc), self.clock())
        else:
            b2bua.media_ready(effect.request_id, sdp, self.clock())
        self.wake()
