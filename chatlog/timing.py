"""When the next message is due: a state machine on plain floats, with no thread and no clock of its own.

The dispatcher tells it what happened (a record arrived, a message was delivered or refused, the
clock stepped back) and asks when the unsent records are due. Alertmanager's rules, plus one:
records more severe than the last delivered message wait only ``group_wait``.
"""

from __future__ import annotations

import logging
import math

from chatlog._record import Record


class Timing(Record):
    """When batches go out, in seconds (DESIGN section 4: Alertmanager's knobs), and the handler's bounds."""

    group_wait: float = 5.0
    group_interval: float = 60.0
    repeat_interval: float = 3600.0
    close_timeout: float = 5.0
    max_queue: int = 10_000
    max_groups: int = 200
    poll_interval: float = 0.05
    """While records keep arriving, the dispatcher files them at most this long after they were logged."""
    max_backoff: float = 300.0
    request_timeout: float = 10.0
    handover_interval: float = 1.0
    """A process sharing a destination (``state=``) hands its records to the store at least this often:
    the most a SIGKILL can cost."""


class BatchSchedule:
    """The batch timing of one destination: when the unsent records are due.

    - the first record after a quiet period waits ``group_wait`` (related records join it);
    - after a delivered message, new records wait until ``group_interval`` after it;
    - a record more severe than the last delivered message waits only ``group_wait``;
    - when the clock steps back, every remembered time moves back with it (`shift`).
    """

    def __init__(self, group_wait: float, group_interval: float) -> None:
        """Intervals in the clock's units (seconds)."""
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.first_unsent_at: float | None = None
        """When the oldest unsent record was filed (None: nothing unsent)."""
        self.last_delivery_at: float | None = None
        self.delivered_level = logging.NOTSET
        """Most severe level of the last delivered message."""
        self.escalated_at: float | None = None
        """When a record more severe than `delivered_level` arrived since that message."""

    def record_filed(self, now: float, level: int) -> None:
        """A record joined the unsent ones at `now`."""
        if self.first_unsent_at is None:
            self.first_unsent_at = now
        if self.escalated_at is None and self.last_delivery_at is not None and level > self.delivered_level:
            self.escalated_at = now

    def due_at(self) -> float:
        """When the unsent records should go out (``inf`` when there are none)."""
        if self.first_unsent_at is None:
            return math.inf
        due = self.first_unsent_at + self.group_wait
        if self.last_delivery_at is not None:
            due = max(due, self.last_delivery_at + self.group_interval)
        if self.escalated_at is not None:  # worse news than the last message: do not hold it back
            due = min(due, self.escalated_at + self.group_wait)
        return due

    def delivered(self, now: float, level: int, *, unsent_left: bool) -> None:
        """A message reached the chat at `now`; its most severe record had `level`."""
        self.last_delivery_at = now
        self.delivered_level = level
        self.escalated_at = None
        if not unsent_left:
            self.first_unsent_at = None

    def refused(self, now: float, *, unsent_left: bool) -> None:
        """The platform refused one message's content: its records are gone, the interval still applies."""
        self.last_delivery_at = now
        if not unsent_left:
            self.first_unsent_at = None

    def discarded(self) -> None:
        """Every unsent record was given up (the destination cannot take them)."""
        self.first_unsent_at = None

    def shift(self, delta: float) -> None:
        """Move every remembered time by `delta` (negative after the clock stepped back)."""
        if self.first_unsent_at is not None:
            self.first_unsent_at += delta
        if self.last_delivery_at is not None:
            self.last_delivery_at += delta
        if self.escalated_at is not None:
            self.escalated_at += delta


class ClockWatch:
    """Notices the clock stepping back between two readings, so deadlines can move with it.

    A wait keeps its length instead of growing by the jump; a step forward needs nothing (deadlines
    just pass).
    """

    def __init__(self) -> None:
        """No reading yet."""
        self.last_reading: float | None = None

    def step_back(self, now: float) -> float:
        """The shift for every deadline: ``now - last`` (negative) when the clock went back since the last
        reading, else 0.0. Remembers `now`."""
        last, self.last_reading = self.last_reading, now
        if last is None or now >= last:
            return 0.0
        return now - last
