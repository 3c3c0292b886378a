"""The flush() calls a dispatcher's thread answers: each a deadline and the event that releases it.

`Dispatcher.flush` adds one and waits on its event; the thread answers them all once everything
pending was sent (or nothing can be sent until the next probe), and forgets each one whose deadline
passed (that flush timed out on its own, and knows it did). A clock step back moves the deadlines.
"""

from __future__ import annotations

import math
import threading


class FlushWaiters:
    """The flushes waiting for the dispatcher's thread, guarded by the dispatcher's lock."""

    def __init__(self, lock: threading.Lock) -> None:
        """`lock` is the dispatcher's: the thread and the callers of flush() share it."""
        self._lock = lock
        self._waiting: list[tuple[float, threading.Event]] = []

    def __bool__(self) -> bool:
        """True while a flush waits (a round then files every count and sends without group_wait)."""
        return bool(self._waiting)

    def add(self, deadline: float, done: threading.Event) -> None:
        """One flush waits until `deadline` (dispatcher clock) for `done`."""
        with self._lock:
            self._waiting.append((deadline, done))

    def answer_all(self) -> None:
        """Everything was sent, or nothing can be: release every waiting flush."""
        with self._lock:
            for _, done in self._waiting:
                done.set()
            self._waiting = []

    def forget_expired(self, now: float) -> None:
        """Drop the flushes past their deadline without answering them."""
        with self._lock:
            self._waiting = [(deadline, done) for deadline, done in self._waiting if now < deadline]

    def seconds_to_next(self, now: float) -> float:
        """Seconds until the nearest deadline (``inf`` when none waits)."""
        with self._lock:
            return min((deadline - now for deadline, _ in self._waiting), default=math.inf)

    def shift(self, delta: float) -> None:
        """Move every deadline by `delta` (the clock stepped back by as much)."""
        with self._lock:
            self._waiting = [(deadline + delta, done) for deadline, done in self._waiting]
