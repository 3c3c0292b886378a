"""When an incident is over: a state machine on plain floats beside `chatlog.timing`'s `BatchSchedule`.

An incident opens with the first record at or above `Incident.level` and is over once no such record
has been filed for ``resolve_after`` seconds, and every one of them reached the chat. The dispatcher
then sends one all-clear message (`AllClear`, carried by a `Digest` with no records) through its
normal send path, and forgets the incident once it was delivered: the next such record opens a new one.
"""

from __future__ import annotations

import logging
import math

from chatlog._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatlog.digest import Digest

RESOLVE_EXAMPLE = "resolve_after=600 (seconds; None turns the all-clear off), resolve_level='ERROR'"


class AllClear(Record):
    """What an all-clear message says: "no ERROR for 10 min after 1,482 records in 7 min (3 groups)"."""

    level_name: str
    quiet_s: float
    """How long nothing at the level was logged (``resolve_after``)."""
    records: int
    """Records at or above the level that the incident's messages showed."""
    duration_s: float
    """From the incident's first such record to its last."""
    groups: int
    ends_at: float
    """When the incident's last such record was filed (the dispatcher's clock)."""


class Incident:
    """One destination's current incident, told every record filed and every group delivered.

    All times are the dispatcher's clock (seconds). With ``resolve_after=None`` it never opens.
    """

    def __init__(self, level: int = logging.ERROR, resolve_after: float | None = None) -> None:
        """`level`: records at or above it open and extend the incident."""
        self.level = level
        self.resolve_after = resolve_after
        self._reset()

    def _reset(self, started_at: float | None = None) -> None:
        self.started_at = started_at
        self.last_at = started_at
        self.records = 0
        self._group_ids: set[str] = set()
        self._merged = 0

    def record_filed(self, now: float, level: int) -> None:
        """A record of `level` was filed at `now`."""
        if level < self.level or self.resolve_after is None:
            return
        if self.started_at is None:
            self.started_at = now
        self.last_at = now

    def shown(self, level: int, records: int, group_id: str, merged_groups: int = 0) -> None:
        """A delivered message showed `records` of one group (`merged_groups`: an overflow bucket's)."""
        if level < self.level or self.started_at is None:
            return
        self.records += records
        if group_id:
            self._group_ids.add(group_id)
        else:
            self._merged = max(self._merged, merged_groups)

    def due_at(self) -> float:
        """When the all-clear is due (``inf``: no incident open)."""
        if self.last_at is None or self.resolve_after is None:
            return math.inf
        return self.last_at + self.resolve_after

    def all_clear(self, now: float, *, unsent_at_level: bool) -> AllClear | None:
        """The all-clear to send at `now`; None when not due, while records at the level still wait
        to be sent (`unsent_at_level`), or when no message showed any (muted): that incident is
        forgotten."""
        if now < self.due_at() or unsent_at_level or self.last_at is None or self.started_at is None:
            return None
        if not self.records:
            self._reset()
            return None
        return AllClear(logging.getLevelName(self.level), float(self.resolve_after or 0.0), self.records,
                        self.last_at - self.started_at, len(self._group_ids) + self._merged, self.last_at)

    def resolved(self, sent: AllClear) -> None:
        """The all-clear `sent` was delivered (or refused: it is not sent twice). A record filed since it
        was made opens the next incident."""
        newer = self.last_at if self.last_at is not None and self.last_at > sent.ends_at else None
        self._reset(newer)

    def settled(self, digest: Digest, *, shown: bool = True, at: float | None = None) -> None:
        """A message was delivered (`shown`) or refused: count the groups it showed, and forget the
        incident when it was the all-clear (never sent twice). With `at` (a fleet's message, whose
        records other processes filed) its groups at the level also open or extend the incident then."""
        if digest.all_clear is not None:
            self.resolved(digest.all_clear)
        for group in digest.groups if shown else ():
            if at is not None:
                self.record_filed(at, group.sample.level)
            self.shown(group.sample.level, group.count, group.group_id, group.merged_groups)

    def forget(self) -> None:
        """Drop the incident without an all-clear (another process sends the fleet's)."""
        self._reset()

    def shift(self, delta: float) -> None:
        """Move the remembered times by `delta` (negative after the clock stepped back)."""
        if self.started_at is not None:
            self.started_at += delta
        if self.last_at is not None:
            self.last_at += delta


def resolve_after_seconds(value: object) -> float | None:
    """``resolve_after=`` checked: positive seconds, or None (no all-clear)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"resolve_after must be a number of seconds or None, e.g. {RESOLVE_EXAMPLE}; "
                        f"got {type(value).__name__}")
    try:
        seconds = float(value)  # dictConfig and YAML may give "600"
    except ValueError:
        raise ValueError(f"resolve_after must be a number of seconds or None, e.g. {RESOLVE_EXAMPLE}; "
                         f"got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"resolve_after must be a positive number of seconds or None, e.g. "
                         f"{RESOLVE_EXAMPLE}; got {value!r}")
    return seconds


def level_number(name: str, value: object, example: str) -> int:
    """A level option (``"ERROR"``, ``logging.ERROR``) as its number; ValueError naming `name`."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    number = logging.getLevelName(value.upper()) if isinstance(value, str) else None
    if not isinstance(number, int):
        raise ValueError(f"{name} must be a level such as 'ERROR' or 'CRITICAL', e.g. {example}; "
                         f"got {value!r}")
    return number
