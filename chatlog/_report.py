"""chatlog's own voice: short, rate-limited lines on stderr (never through `logging`)."""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections.abc import Callable

from chatlog.platforms._base import redact


class Reporter:
    """Writes ``chatlog: <where>: <what>`` lines to stderr, at most once per key per `interval_s`.

    Secrets are removed from every line before it is written. Writing never raises. Fork-safe: a
    forked child gets a fresh lock (the parent's could be held by a thread the child does not have).
    """

    def __init__(
        self,
        where: str,
        secrets: tuple[str, ...] = (),
        *,
        interval_s: float = 60.0,
        max_lines_per_minute: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`where` names the destination, already masked (``dingtalk://***``)."""
        self._where = where
        self._secrets = secrets
        self._interval_s = interval_s
        self._max_lines = max_lines_per_minute
        self._clock = clock
        self._last_by_key: dict[str, float] = {}
        self._recent: list[float] = []
        self._lock = threading.Lock()
        self.suppressed = 0
        """Lines not written because of the rate limits."""
        _live_reporters.add(self)

    def report(self, key: str, message: str, *, once: bool = False, every_s: float | None = None) -> bool:
        """Write `message` unless `key` was reported within the interval (`every_s` when given; ever,
        with `once`)."""
        now = self._clock()
        interval = self._interval_s if every_s is None else every_s
        with self._lock:
            last = self._last_by_key.get(key)
            if last is not None and (once or 0.0 <= now - last < interval):
                self.suppressed += 1
                return False
            self._recent = [t for t in self._recent if 0.0 <= now - t < 60.0]
            if len(self._recent) >= self._max_lines:
                self.suppressed += 1
                return False
            self._last_by_key[key] = now
            self._recent.append(now)
        return write_stderr(redact(f"chatlog: {self._where}: {message}", self._secrets))


_live_reporters: weakref.WeakSet[Reporter] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for reporter in list(_live_reporters):
        reporter._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def write_stderr(line: str) -> bool:
    """Write one line to the current ``sys.stderr``; False when that is impossible."""
    try:
        stream = sys.stderr
        if stream is None:
            return False
        stream.write(line.rstrip("\n") + "\n")
        stream.flush()
        return True
    except Exception:
        return False
