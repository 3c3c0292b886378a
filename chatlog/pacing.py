"""How fast a destination may be sent to: the platform's send window and the backoff after failures.

Both are plain values on floats (the dispatcher's clock), tested without threads or sleeping.
"""

from __future__ import annotations

import math
import os
from collections import deque

from chatlog._record import Record


class SendWindow:
    """Sliding-window rate limiter: never more than the limits within any 60 s or 1 s window.

    A token bucket would allow a full burst plus a minute's refill inside one 60 s window, which
    is exactly what DingTalk punishes with a 10-minute block; a window of send times cannot.
    """

    def __init__(self, per_minute: int, per_second: float | None) -> None:
        """Limits as in `Limits`."""
        self._per_minute = max(1, per_minute)
        self._per_second = per_second
        self._sent: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until a send is allowed (0.0 when allowed now)."""
        sent = self._sent
        while sent and (now - sent[0] >= 60.0 or sent[0] > now):
            sent.popleft()  # also forgets sends "in the future" after the clock jumped back
        waits = [0.0]
        if len(sent) >= self._per_minute:
            waits.append(sent[-self._per_minute] + 60.0 - now)
        if self._per_second is not None:
            burst = max(1, int(self._per_second))
            if len(sent) >= burst:
                waits.append(sent[-burst] + 1.0 - now)
        return max(waits)

    def record(self, now: float) -> None:
        """Remember one send at `now`."""
        self._sent.append(now)


class Backoff(Record):
    """Where a destination stands after failed sends: how many in a row, and until when to hold off.

    `retry_at` is our own exponential backoff; `paused_until` is what the platform asked for (a
    "too fast" answer). `flush()` may skip the first (`retry_now`), never the second.
    """

    failures: int = 0
    retry_at: float = -math.inf
    paused_until: float = -math.inf

    def after_failure(self, now: float, *, retry_after: float, max_backoff: float, jitter: float) -> Backoff:
        """The backoff after one more failure at `now`: ``2 ** failures`` seconds (capped at `max_backoff`)
        times `jitter` (a draw from 0.5..1.0), or the platform's `retry_after` when that is longer."""
        failures = self.failures + 1
        delay = max(min(max_backoff, 2.0 ** (failures - 1)) * jitter, retry_after)
        paused_until = now + retry_after if retry_after else self.paused_until
        return Backoff(failures, now + delay, paused_until)

    def after_success(self) -> Backoff:
        """The platform took a message: the failure streak is over (a pause it asked for still holds)."""
        return Backoff(0, -math.inf, self.paused_until)

    def retry_now(self) -> Backoff:
        """Skip our own backoff (``flush()`` means "try now"); a platform's pause still holds."""
        return Backoff(self.failures, -math.inf, self.paused_until)

    def ready_at(self) -> float:
        """The earliest time a send may start."""
        return max(self.retry_at, self.paused_until)

    def shifted(self, delta: float) -> Backoff:
        """The same backoff on a clock that moved by `delta`."""
        return Backoff(self.failures, self.retry_at + delta, self.paused_until + delta)


def jitter() -> float:
    """A draw from 0.5..1.0 for `Backoff.after_failure`, from ``os.urandom``: no `random` to import (at
    ``import chatlog``, or later on chatlog's thread, where an import could be under way at a fork)."""
    return 0.5 + int.from_bytes(os.urandom(4), "big") / (2 * 0xFFFFFFFF)
