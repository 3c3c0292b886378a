"""Counting a known group's records on the application thread with one atomic increment.

In a storm most records belong to a few groups. Capturing each one (formatting the message, copying
its values) costs the application thread and fills the buffer; once a group's first record is
captured, the rest only need counting. `Tallies.counters` maps a tally key (the ``%``-template
object, level, logger name, whether there were arguments, and for exceptions the type and innermost
frame: everything the fingerprint is made of, so one key is one group) to an ``itertools.count``.

The application thread calls ``next(counter)``: one C call, atomic under the GIL, from any number of
threads. Nothing else there is needed: no lock, no read-modify-write. The dispatcher reads a counter
by calling ``next()`` too; the value it gets is the number of calls before it (the application's and
its own), so the application's increments since the last reading are ``value - base`` and the next
base is ``value + 1``.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterator

from chatlog.entry import Entry

KEY_TEXT_LIMIT_CHARS = 500
"""A longer message is not counted by key (a key keeps its text alive; the fingerprint keeps 500 chars)."""
KEY_LIMIT = 1_000
"""Keys counted at once. A key costs a tuple and a counter; past the limit, records are captured."""
IDLE_KEY_S = 1.0
"""A key with no record for this long stops being counted (f-string messages make one key per record)."""
RETIRED_GRACE_S = 2.0
"""How long a retired counter is still read: a thread that looked it up just before it was retired may
be descheduled between the lookup and its increment."""


class Tally:
    """The dispatcher's side of one counter: what it has read, and the group it counts for."""

    __slots__ = ("active_at", "base", "counter", "fingerprint", "level", "owed", "retired_at", "sample")

    def __init__(self, counter: Iterator[int], active_at: float = 0.0) -> None:
        """`active_at`: when the key was seen first, on the dispatcher's clock."""
        self.counter = counter
        self.base = 0
        """What ``next(counter)`` returns when the application has not counted since the last reading."""
        self.fingerprint: Hashable = None
        """The group; None until the key's captured record has been filed."""
        self.sample: Entry | None = None
        """The group's sample, to start the group again if it was forgotten while the key was counted."""
        self.level = 0
        self.owed = 0
        """Records counted before the key's captured record was filed (it was still in the buffer)."""
        self.active_at = active_at
        """When the key last counted a record (or was seen first), on the dispatcher's clock."""
        self.retired_at: float | None = None

    def read(self) -> int:
        """The application's increments since the last reading."""
        value = next(self.counter)
        new, self.base = value - self.base, value + 1
        return new


class Tallies:
    """The counters the application thread increments, and the dispatcher's readings of them."""

    def __init__(self) -> None:
        """No key counted yet."""
        self.counters: dict[Hashable, Iterator[int]] = {}
        """Shared with the handler's hot path: it only calls ``get`` and ``setdefault`` on it."""
        self._tallies: dict[Hashable, Tally] = {}
        self._retired: list[Tally] = []
        self._seen_once: dict[Hashable, None] = {}

    def register(self, key: Hashable) -> None:
        """Count `key`'s next records instead of capturing them (application thread; bounded)."""
        if len(self.counters) < KEY_LIMIT:
            self.counters.setdefault(key, itertools.count())

    def seen_without_arguments(self, key: Hashable) -> bool:
        """A record without arguments was filed under `key` (dispatcher thread). Its text is its key: an
        f-string's is new every time and would only fill the table, so a key is counted from its second
        record on, once the text has proved to repeat. Returns whether `key` is counted."""
        seen = self._seen_once
        known = len(seen)
        seen[key] = None  # one look-up: the table grows only when the text is new
        if len(seen) == known:
            self.register(key)
            return key in self.counters
        if known >= KEY_LIMIT:
            seen.clear()
            seen[key] = None
        return False

    def link(self, key: Hashable, fingerprint: Hashable, sample: Entry | None, level: int,
             now: float) -> None:
        """The captured record of `key` was filed under `fingerprint` (dispatcher thread)."""
        tally = self._tally(key, now)
        if tally is not None and tally.fingerprint is None:
            tally.fingerprint, tally.sample, tally.level = fingerprint, sample, level

    def collect(self, now: float) -> Iterator[tuple[Tally, int]]:
        """``(tally, records counted since the last reading)`` for every linked key with news, retiring
        keys idle for `IDLE_KEY_S` (dispatcher thread, under the dispatcher's lock)."""
        for key in list(self.counters.copy()):
            tally = self._tally(key, now)
            if tally is None:
                continue
            new = tally.read() + tally.owed
            if tally.fingerprint is None:
                tally.owed = new
                continue
            tally.owed = 0
            if new:
                tally.active_at = now
                yield tally, new
            elif now - tally.active_at >= IDLE_KEY_S:
                self._retire(key, tally, now)
        yield from self._collect_retired(now)

    @property
    def owed(self) -> int:
        """Records counted whose group is not known yet (their key's captured record is still queued)."""
        return sum(tally.owed for tally in self._tallies.values())

    def clear(self) -> None:
        """Forget every key and reading (a forked child starts with none)."""
        self.counters.clear()
        self._tallies.clear()
        self._retired.clear()
        self._seen_once.clear()

    def _tally(self, key: Hashable, now: float) -> Tally | None:
        counter = self.counters.get(key)
        if counter is None:
            return None
        tally = self._tallies.get(key)
        if tally is None or tally.counter is not counter:
            tally = self._tallies[key] = Tally(counter, active_at=now)
        return tally

    def _retire(self, key: Hashable, tally: Tally, now: float) -> None:
        # Pop first, then keep reading: a thread may hold the counter it looked up a moment ago.
        self.counters.pop(key, None)
        del self._tallies[key]
        tally.retired_at = now
        self._retired.append(tally)

    def _collect_retired(self, now: float) -> Iterator[tuple[Tally, int]]:
        keep = []
        for tally in self._retired:
            new = tally.read()
            if new:
                yield tally, new
            assert tally.retired_at is not None
            if now - tally.retired_at < RETIRED_GRACE_S:
                keep.append(tally)
        self._retired = keep
