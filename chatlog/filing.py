"""Filing records into their groups: the dispatcher's half of the hot path.

`Filing` takes captured records off the buffer and counted records off the tallies, fingerprints
them, and counts them in the `GroupTable`; the `BatchSchedule` hears of every record filed. A round
is bounded by time, so however fast records arrive the dispatcher gets back to sending.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection

from chatlog.capture import Captured, created_of, for_filing, level_of, sample
from chatlog.digest import GroupTable
from chatlog.entry import Entry
from chatlog.tally import Tallies
from chatlog.timing import BatchSchedule

DRAIN_BATCH = 256
"""Records filed per hold of the GIL: about half a millisecond of work, then `time.sleep(0)` lets a
waiting application thread run; without it, a log call made while the dispatcher drains waits for the
interpreter's 5 ms switch interval. Past half of ``max_queue`` the dispatcher catches up without
yielding: in a storm, dropping records is worse than a slower call."""


_UNREADABLE = (logging.ERROR, "?", "<unreadable record>", "", "")


class Filing:
    """Counts queued and tallied records in their groups; `processed` is how many it has filed."""

    def __init__(self, groups: GroupTable, schedule: BatchSchedule, tallies: Tallies,
                 lock: threading.Lock, clock: Callable[[], float], *, own: Collection[int] = (),
                 catch_up: int = 0, poll_interval: float = 0.0) -> None:
        """Every record filed is counted in `groups` and told to `schedule`, under `lock`; records made
        on `own` threads are skipped; below `catch_up` queued records a time-bounded drain yields the
        GIL between batches; the tallies are read once per `poll_interval` (`round`)."""
        self.groups = groups
        self.schedule = schedule
        self.tallies = tallies
        self._lock = lock
        self._clock = clock
        self._own = own
        self._catch_up = catch_up
        self._poll_interval = poll_interval
        self._next_collect = 0.0
        """When the next round reads the tallies (`time.monotonic()`)."""
        self.processed = 0

    def round(self, buffer: deque[Captured], *, budget_s: float | None, flushing: bool) -> tuple[bool, int]:
        """One dispatcher round's filing: `drain` for at most `budget_s` (None: all, every count too),
        reading the tallies once per poll interval, and on every round while a flush waits."""
        collect = budget_s is None or flushing or time.monotonic() >= self._next_collect
        emptied, filed = self.drain(buffer, budget_s=budget_s, collect=collect)
        if collect:
            self._next_collect = time.monotonic() + self._poll_interval
        return emptied, filed

    def drain(self, buffer: deque[Captured], *, budget_s: float | None,
              collect: bool = True) -> tuple[bool, int]:
        """File what `buffer` holds for at most `budget_s` seconds (None: until it is empty, without
        yielding), skipping records made on the own threads; then, with `collect`, what the tallies
        counted (reading every counter costs about a microsecond per key: not on every round).

        Returns whether the buffer was emptied and how many records were filed.
        """
        stop_at = math.inf if budget_s is None else time.perf_counter() + budget_s
        filed = 0
        while buffer:
            if budget_s is not None:
                if time.perf_counter() >= stop_at:
                    break
                if len(buffer) < self._catch_up:
                    time.sleep(0)  # hands the GIL to the application thread when it waits for it
            with self._lock:
                filed += self.file(buffer, min(len(buffer), DRAIN_BATCH), self._clock())
        if collect:
            with self._lock:
                filed += self.file_counted(self._clock())
        return not buffer, filed

    def file(self, buffer: deque[Captured], n: int, now: float) -> int:
        """Count the next `n` captured records of `buffer` in their groups (a group's first record becomes
        its sample), skipping records made on the own threads (httpx logging our requests: never fed
        back); returns how many were filed. One call for the batch: this loop is the dispatcher's cost
        per record, so what does not depend on the record is looked up once."""
        groups, tallies, own = self.groups, self.tallies, self._own
        count, counters, popleft = groups.count, tallies.counters, buffer.popleft
        filed, worst = 0, logging.NOTSET
        try:
            for _ in range(n):
                item = popleft()
                try:
                    thread, key, level, created, tally_key, has_template = for_filing(item)
                except BaseException:  # a record we cannot read still counts
                    thread, key, level, created = None, _UNREADABLE, logging.ERROR, 0.0
                    tally_key, has_template = None, True
                if thread in own:
                    continue
                filed += 1
                if level > worst:
                    worst = level
                if not count(key, created, level):  # a known group's record needs no sample: no closure
                    groups.add(key, created, _sampler(item), level)
                # Most records' keys are not counted (yet): `link` is for those that are.
                if tally_key is not None and (tally_key in counters if has_template
                                              else tallies.seen_without_arguments(tally_key)):
                    tallies.link(tally_key, key, groups.sample_of(key), level, now)
        finally:  # what was counted is told, whatever happened after it
            if filed:
                self.processed += filed
                self.schedule.record_filed(now, worst)  # one `now` for the batch: its worst level is enough
        return filed

    def file_counted(self, now: float) -> int:
        """Count what the application only counted (`chatlog.tally`) in its groups (hold the lock)."""
        filed = 0
        created = time.time()
        for tally, count in self.tallies.collect(now):
            self.processed += count
            filed += count
            self.schedule.record_filed(now, tally.level)
            self.groups.add(tally.fingerprint, created, _given(tally.sample), tally.level, count=count)
        return filed


def _given(entry: Entry | None) -> Callable[[], Entry | None]:
    return lambda: entry


def _sampler(item: Captured) -> Callable[[], Entry]:
    return lambda: _safe_sample(item)


def _safe_sample(item: Captured) -> Entry:
    try:
        return sample(item)
    except BaseException as exc:  # the record still counts, with what could be read
        return Entry(created=created_of(item), level=level_of(item), level_name="?", logger="?",
                     message=f"[chatlog could not read this record: {type(exc).__name__}]",
                     pathname="?", lineno=0, func="?")
