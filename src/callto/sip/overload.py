"""Load shedding for the switch: when its event loop lags, new work is refused before old work is dropped.

Sans-IO: the driver measures how late its periodic tick ran (the loop's lag) and feeds it in with
:meth:`LoadShedder.note_lag`; :meth:`LoadShedder.sheds` says whether a request must be answered 503 with
``Retry-After`` now. Only requests that start something new are shed -- an out-of-dialog REGISTER,
INVITE, SUBSCRIBE or OPTIONS (no To tag) -- so calls in progress (re-INVITE, BYE, ACK, CANCEL, NOTIFY
inside a dialog) and every response keep being served while the loop catches up. A 503 costs a parse
and one small answer, far less than a digest check or a call set-up, and it reaches the phone before
its retransmission would, where a datagram the kernel drops costs a retransmission on both sides.

Shedding starts when the smoothed lag passes ``start_lag`` (or the UDP receive queue is ``start_backlog`` full: a
flood fills the kernel's queue before it delays timers) and stops once both stayed under ``stop_lag`` /
``stop_backlog`` for ``hold`` seconds, so the switch does not flap between the two at the edge of its capacity.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from callto.sip.message import Request

NEW_WORK = frozenset(("REGISTER", "INVITE", "SUBSCRIBE", "OPTIONS", "MESSAGE", "PUBLISH"))


@dataclass(frozen=True)
class OverloadConfig:
    tick: float = 0.05  # seconds between the driver's lag probes
    # the lag is smoothed (exponential average, this weight for each probe) so one stall -- a GC pause, a
    # machine busy elsewhere -- does not turn phones away; a loop that stays late does
    smoothing: float = 0.25
    start_lag: float = 0.2  # the loop runs this late (smoothed): start shedding
    stop_lag: float = 0.05  # ... and stop after the lag stayed under this for ``hold`` seconds
    start_backlog: float = 0.5  # or the UDP receive queue is this full (of its buffer)
    stop_backlog: float = 0.1
    hold: float = 1.0
    # one probe counts for at most this much lag (default: twice ``start_lag``), so a single stall of any
    # length -- a server busy starting, a machine starved for a second -- cannot start shedding on its
    # own: it takes several late probes in a row, a loop that stays behind
    max_sample: float | None = None
    retry_after: int = 5  # seconds, in the 503's Retry-After (RFC 3261 21.5.4)


class LoadShedder:
    """Decides, from the loop lag fed in, which new requests get 503; counts what it shed per method."""

    def __init__(self, config: OverloadConfig | None = None) -> None:
        self.config = config or OverloadConfig()
        self.shedding = False
        self.lag = 0.0
        self.backlog = 0.0
        self.shed: Counter[str] = Counter()  # method -> requests answered 503 since start (for /metrics)
        self.episodes = 0  # how many times shedding started
        self._calm_since: float | None = None

    def note_lag(self, lag: float, now: float, backlog: float = 0.0) -> None:
        """``lag``: seconds the driver's probe ran late; ``backlog``: how full the receive queue is (0..1)."""
        cfg = self.config
        ceiling = cfg.max_sample if cfg.max_sample is not None else 2 * cfg.start_lag
        lag = self.lag = self.lag + cfg.smoothing * (min(lag, ceiling) - self.lag)
        self.backlog = backlog
        if lag >= cfg.start_lag or backlog >= cfg.start_backlog:
            if not self.shedding:
                self.episodes += 1
            self.shedding = True
            self._calm_since = None
        elif self.shedding:
            if lag > cfg.stop_lag or backlog > cfg.stop_backlog:
                self._calm_since = None
            elif self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= cfg.hold:
                self.shedding = False
                self._calm_since = None

    def sheds(self, request: Request) -> bool:
        """True when ``request`` must be answered 503 now (and counted)."""
        if not self.shedding or request.method not in NEW_WORK or request.to.tag is not None:
            return False
        self.shed[request.method] += 1
        return True

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.config.retry_after))]
