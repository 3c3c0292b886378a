"""``escalate=``: a group at the level, still firing and not acknowledged after a delay, goes to another
destination (the on-call person or chat), once per group per ``repeat_interval``.

`Escalation` decides, on plain floats, each time a message was delivered (a group still firing is in
every message the dispatcher delivers, at least once per ``group_interval``); `Escalator` sends what
it decided through a dispatcher of its own, built on first use, so the escalation destination has
the same rate limits, retries and rendering as any other and the handler's accounting is untouched.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping

from chatlog._lazy import lazy_pattern
from chatlog._record import Record
from chatlog.capture import Captured, capture_values
from chatlog.destinations import resolve
from chatlog.digest import Context, Digest, GroupSummary, Mentions
from chatlog.incident import level_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatlog.courier import HttpOptions
    from chatlog.dispatcher import Dispatcher, Timing

EXAMPLE = ('escalate={"after": "15m", "to": "feishu-app://APP_ID:SECRET@open_id/ou_oncall", '
           '"level": "CRITICAL"}')
_KEYS = ("after", "to", "level")
_PART = lazy_pattern(r"(\d+(?:\.\d+)?)([smhd])", re.IGNORECASE)
_PARTS = lazy_pattern(r"(?:\d+(?:\.\d+)?[smhd])+", re.IGNORECASE)
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class EscalatePlan(Record):
    """``escalate=`` checked: the delay, the destination string (resolved once here) and the level."""

    after_s: float
    to: str
    level: int


def parse_escalate(value: object) -> EscalatePlan | None:
    """``escalate=`` as a plan (None: off); ValueError/TypeError naming the problem, with `EXAMPLE`."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"escalate must be a dict, e.g. {EXAMPLE}; got {type(value).__name__}")
    unknown = sorted(str(key) for key in value if key not in _KEYS)
    if unknown:
        raise ValueError(f"escalate has unknown key(s) {', '.join(unknown)}: it takes {', '.join(_KEYS)}, "
                         f"e.g. {EXAMPLE}")
    to = value.get("to")
    if not isinstance(to, str) or not to.strip():
        raise ValueError(f"escalate needs 'to', the destination to escalate to, e.g. {EXAMPLE}")
    try:
        resolve(to)
    except ValueError as exc:
        raise ValueError(f"escalate['to'] is not a destination: {exc}. The whole option: {EXAMPLE}") from None
    return EscalatePlan(duration_seconds("escalate['after']", value.get("after", "15m")), to,
                        level_number("escalate['level']", value.get("level", "CRITICAL"), EXAMPLE))


def duration_seconds(name: str, value: object) -> float:
    """``"15m"``, ``"90s"``, ``"1h30m"``, ``"1d"`` or a number of seconds, as positive seconds."""
    seconds: float | None = None
    text = value.replace(" ", "") if isinstance(value, str) else ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif text.isdigit():
        seconds = float(text)
    elif _PARTS.fullmatch(text):
        seconds = sum(float(n) * _UNIT_S[unit.lower()] for n, unit in _PART.findall(text))
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a duration such as '15m', '90s', '1h30m' or seconds, "
                         f"e.g. {EXAMPLE}; got {value!r}")
    return seconds


class Escalation:
    """Which groups to escalate: at the level for `after_s` since their first message, in the message
    delivered now, not acknowledged, and not escalated within `repeat_s`. Times are the dispatcher's."""

    def __init__(self, after_s: float, repeat_s: float, gap_s: float) -> None:
        """A group missing from messages for more than `gap_s` stopped firing: its clock starts again."""
        self.after_s = after_s
        self.repeat_s = repeat_s
        self.gap_s = gap_s
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._sent: dict[str, float] = {}

    def due(self, now: float, firing: Iterable[str], acked: Callable[[str], bool]) -> list[str]:
        """The group ids of `firing` (in the message delivered at `now`) to escalate now."""
        self._forget(now)
        chosen = []
        for group_id in firing:
            first = self._first.setdefault(group_id, now)
            self._last[group_id] = now
            sent = self._sent.get(group_id)
            if now - first < self.after_s or (sent is not None and 0.0 <= now - sent < self.repeat_s):
                continue
            if not acked(group_id):
                self._sent[group_id] = now
                chosen.append(group_id)
        return chosen

    def _forget(self, now: float) -> None:
        for group_id, last in list(self._last.items()):
            if not 0.0 <= now - last <= self.gap_s:
                del self._first[group_id], self._last[group_id]
        self._sent = {key: at for key, at in self._sent.items() if 0.0 <= now - at < self.repeat_s}


class Escalator:
    """Sends the groups `Escalation` picks to the plan's destination (its own dispatcher and thread)."""

    def __init__(self, plan: EscalatePlan, timing: Timing, context: Context, http: HttpOptions | None = None,
                 *, clock: Callable[[], float] = time.monotonic, start: bool = True) -> None:
        """`timing` is the handler's (its ``repeat_interval`` and ``group_interval`` apply); `clock` and
        `start` go to the dispatcher it builds (tests: ``start=False``, then `step`)."""
        self.plan = plan
        self._timing, self._context, self._http = timing, context, http
        self._clock, self._start = clock, start
        gap_s = plan.after_s + 2 * timing.group_interval  # longer than any pause between its messages
        self._state = Escalation(plan.after_s, timing.repeat_interval, gap_s)
        self._dispatcher: Dispatcher | None = None

    def delivered(self, now: float, digest: Digest, acked: Callable[[str], bool]) -> int:
        """A message went out at `now`: queue its groups due for escalation; returns how many."""
        firing = {group.group_id: group for group in digest.groups
                  if group.group_id and group.sample.level >= self.plan.level}
        chosen = self._state.due(now, firing, acked)
        for group_id in chosen:
            self._target().queue(escalated(firing[group_id], self.plan.after_s))
        return len(chosen)

    def step(self) -> float:
        """One round of the escalation dispatcher (tests driving it with ``start=False``)."""
        return math.inf if self._dispatcher is None else self._dispatcher.step()

    def close(self, timeout: float) -> None:
        """Deliver what is pending within `timeout` and stop; a later escalation starts a new dispatcher."""
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.close(timeout)

    def _target(self) -> Dispatcher:
        if self._dispatcher is None:
            from chatlog._record import replace
            from chatlog.dispatcher import Dispatcher

            resolved = resolve(self.plan.to)
            # Every escalation is shown in full; the all-clear stays with the handler's own destination.
            timing = replace(self._timing, group_wait=1.0, repeat_interval=1.0, resolve_after=None)
            self._dispatcher = Dispatcher(resolved.destination, timing=timing, context=self._context,
                                          mentions=Mentions((), resolved.at), clock=self._clock,
                                          start=self._start, http=self._http)
        return self._dispatcher


def escalated(group: GroupSummary, after_s: float) -> Captured:
    """The record an escalation sends: the group's sample, saying that nobody acknowledged it."""
    from chatlog.platforms._text import duration

    sample = group.sample
    note = f"#{group.group_id} · {group.total:,} records since the first alert · not acknowledged"
    message = f"Not acknowledged for {duration(after_s) or f'{after_s:g}s'}: {sample.message}"
    return capture_values(message, time.time(), sample.level, sample.level_name, sample.logger, None,
                          sample.pathname, sample.lineno, sample.func, None, None, sample.traceback, None,
                          (("escalated", note), *sample.extra))
