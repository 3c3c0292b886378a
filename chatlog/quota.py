"""``quota="10000/month"`` (or ``"/day"``): how many messages one destination may send per calendar period.

At 80 % of the quota each message says how many are left; at 100 % nothing more is sent to that
destination until the period ends (UTC calendar days and months): its records keep being counted and
go out, summarised, when the next period starts; stderr says so once per period.

The count lives behind `SentCounter`, the ``count_sent(scope, period_key, n)`` method of the fleet
store (`chatlog.state.store`), so every process sending to one destination can share it. Until a
handler is given a store, `LOCAL` counts in this process: the seam is `Quota`'s `counter` argument.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from chatlog._lazy import lazy_pattern
from chatlog._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, Protocol

    from chatlog.platforms._base import Destination

    class SentCounter(Protocol):
        """Counts messages per destination and period; the fleet store's method has this shape."""

        def count_sent(self, scope: str, period_key: str, n: int = 1) -> int:
            """Add `n` to the counter of `period_key`; returns the new value (``n=0`` reads)."""

EXAMPLE = "quota='10000/month' or quota='500/day'"
WARN_AT = 0.8
"""From this share of the quota on, every message says how many are left."""
_THIS = {"day": "today (UTC)", "month": "this month (UTC)"}
_SHAPE = lazy_pattern(r"(\d[\d_,]*)\s*/\s*(day|month)", re.IGNORECASE)


class LocalCounter:
    """`SentCounter` in this process's memory, shared by its handlers (not across processes)."""

    def __init__(self) -> None:
        """Every counter starts at 0."""
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def count_sent(self, scope: str, period_key: str, n: int = 1) -> int:
        """Add `n` to the counter of `period_key`; returns the new value (``n=0`` reads)."""
        with self._lock:
            # Only the current period matters: older keys of the scope are forgotten.
            for key in [key for key in self._counts if key[0] == scope and key[1] != period_key]:
                del self._counts[key]
            value = self._counts.get((scope, period_key), 0) + n
            self._counts[scope, period_key] = value
            return value


LOCAL = LocalCounter()
"""The process's counter, used while no fleet store is configured."""


class QuotaPlan(Record):
    """``quota=`` checked, and where its count lives."""

    limit: int
    period: Literal["day", "month"]
    counter: SentCounter = LOCAL
    """The seam for a fleet: a store's ``count_sent`` shares the count between processes."""
    wall_clock: Callable[[], float] = time.time
    """Unix seconds: which period it is (tests pass their own)."""


def parse_quota(value: object) -> QuotaPlan | None:
    """``quota=`` as a plan (None: no quota); ValueError naming the problem, with `EXAMPLE`."""
    if value is None:
        return None
    found = _SHAPE.fullmatch(value.strip()) if isinstance(value, str) else None
    limit = int(found.group(1).replace("_", "").replace(",", "")) if found else 0
    if found is None or limit <= 0:
        raise ValueError(f"quota must be a number of messages per day or month, e.g. {EXAMPLE}; "
                         f"got {value!r}")
    period: Literal["day", "month"] = "day" if found.group(2).lower() == "day" else "month"
    return QuotaPlan(limit, period)


def period_of(period: Literal["day", "month"], wall: float) -> tuple[str, float]:
    """The calendar period (UTC) holding Unix time `wall`: its key (``"2026-12"``, ``"2026-12-01"``) and
    when it ends (Unix seconds)."""
    from datetime import datetime, timedelta, timezone

    at = datetime.fromtimestamp(wall, timezone.utc)
    if period == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), (start + timedelta(days=1)).timestamp()
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = divmod(start.year * 12 + start.month, 12)  # the next month, as (year, 0-based month)
    end = start.replace(year=year, month=month + 1)
    return start.strftime("%Y-%m"), end.timestamp()


class Quota:
    """One destination's quota, used on its dispatcher thread: the wait before the next send, the note
    a message carries near the limit, and the count of what was sent."""

    def __init__(self, plan: QuotaPlan, destination: Destination,
                 report: Callable[[str, str], object]) -> None:
        """`report(key, message)` writes one stderr line (once per key)."""
        self.plan = plan
        self._destination = destination
        self._report = report
        self._counter = plan.counter
        self._wall = plan.wall_clock
        self._scope = ""

    @property
    def scope(self) -> str:
        """The destination's key in the counter (computed on first use, on chatlog's thread)."""
        if not self._scope:
            from chatlog.state.honour import scope_of

            self._scope = scope_of(self._destination)
        return self._scope

    def share(self, counter: SentCounter, scope: str) -> None:
        """Count in `counter` under `scope` from now on: the fleet store, so every process of the
        destination shares the count (a store that fails: this process counts alone again, said once)."""
        self._counter, self._scope = counter, scope

    def _count(self, period_key: str, n: int) -> int:
        key = f"quota:{period_key}"  # beside the fleet's own counters in the store
        try:
            return self._counter.count_sent(self.scope, key, n)
        except Exception as exc:  # the store's StoreError: the quota still holds, counted here
            self._report("quota-store", f"the quota is counted in this process only: the shared store "
                         f"failed ({type(exc).__name__})")
            self._counter = LOCAL
            return LOCAL.count_sent(self.scope, key, n)

    def wait_s(self) -> float:
        """0.0 while messages may go out; else the seconds until the period ends (reported once)."""
        key, ends = period_of(self.plan.period, self._wall())
        used_up = self.used_up()
        if not used_up:
            return 0.0
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ends))
        self._report(f"quota:{key}", f"{used_up}: nothing more is sent to this destination until {when}; "
                     "records keep being counted and go out then")
        return max(ends - self._wall(), 1.0)

    def used_up(self) -> str:
        """``"the quota of 500 messages a day is used up"`` when it is, else ``""``."""
        key, _ = period_of(self.plan.period, self._wall())
        if self._count(key, 0) < self.plan.limit:
            return ""
        return f"the quota of {self.plan.limit:,} messages a {self.plan.period} is used up"

    def note(self, requests: int) -> str:
        """``"1,980 of 10,000 messages left this month"`` once the quota is 80 % used (after `requests`
        more), else ``""``."""
        key, _ = period_of(self.plan.period, self._wall())
        used = self._count(key, 0) + requests
        if used < WARN_AT * self.plan.limit:
            return ""
        left = max(self.plan.limit - used, 0)
        return f"{left:,} of {self.plan.limit:,} messages left {_THIS[self.plan.period]}"

    def sent(self, requests: int) -> None:
        """`requests` messages reached the platform."""
        key, _ = period_of(self.plan.period, self._wall())
        self._count(key, requests)
