"""`MemoryStore`: the fleet store of one process (``state="memory"``), and the protocol's reference.

A handler with ``state="memory"`` does not go through a store at all (today's per-process behaviour:
a one-member fleet would only add a round of latency); this class states the protocol's semantics in
plain Python, for the tests every store must pass and for tools that want a store without a file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from chatlog.state import store
from chatlog.state.store import Delta, HandOver, Member, PendingGroup, Sent, Status


@dataclass(slots=True)
class _Group:
    level: int
    first_seen: float
    last_seen: float
    sample: str
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    shown_at: float | None = None


@dataclass(slots=True)
class _Scope:
    masked: str = ""
    members: dict[str, Member] = field(default_factory=dict)
    groups: dict[str, _Group] = field(default_factory=dict)
    credits: dict[str, list[int]] = field(default_factory=dict)
    """member id → [delivered, dropped, muted]."""
    leader: str | None = None
    lease_until: float = 0.0
    sends: list[float] = field(default_factory=list)
    quota: dict[str, int] = field(default_factory=dict)
    last_send: float | None = None
    last_error: str = ""
    last_error_at: float | None = None


def budget_wait(sends: Sequence[float], limits: Sequence[tuple[int, float]], now: float, count: int) -> float:
    """Seconds until `count` more sends at `now` keep every ``(limit, window_s)`` (0.0: they fit now);
    `sends` are the recorded send times, any order; a send stamped after `now` (another process's
    clock, a little ahead) is inside the window too, or processes together would exceed the limit."""
    wait = 0.0
    for limit, window in limits:
        inside = sorted(t for t in sends if now - t < window)
        excess = len(inside) + count - max(1, limit)
        if excess > 0:
            wait = max(wait, inside[min(excess, len(inside)) - 1] + window - now)
    return wait


class MemoryStore:
    """Every scope in this process's memory; thread-safe; each method under one lock (atomic)."""

    masked = "memory"

    def __init__(self) -> None:
        """An empty store with a fresh epoch."""
        self._lock = threading.Lock()
        self._scopes: dict[str, _Scope] = {}
        self.epoch = os.urandom(8).hex()

    def __repr__(self) -> str:
        return "MemoryStore()"

    def _scope(self, scope: str) -> _Scope:
        return self._scopes.setdefault(scope, _Scope())

    def describe(self, scope: str, masked: str, now: float) -> None:
        """See `Store.describe`."""
        with self._lock:
            self._scope(scope).masked = masked

    def hand_over(self, scope: str, member: Member, deltas: Sequence[Delta], now: float) -> HandOver:
        """See `Store.hand_over`."""
        with self._lock:
            data = self._scope(scope)
            data.members[member.id] = Member(member.id, member.host, member.pid, now)
            for delta in deltas:
                _merge(data, member.id, delta)
            mine = {fp: g.counts.get(member.id, 0) for fp, g in data.groups.items()}
            outstanding = {fp: n for fp, n in mine.items() if n}
            delivered, dropped, muted = data.credits.get(member.id, [0, 0, 0])
            live = sum(1 for m in data.members.values() if now - m.last_seen < store.MEMBER_LIVE_S)
            leader = data.leader if data.leader is not None and data.lease_until > now else None
            pending = sum(sum(g.counts.values()) for g in data.groups.values())
            used = sum(1 for t in data.sends if abs(now - t) < store.BUDGET_SPAN_S)
            return HandOver(self.epoch, outstanding, delivered, dropped, muted, live, leader, pending, used)

    def lease(self, scope: str, member_id: str, ttl: float, now: float) -> bool:
        """See `Store.lease`."""
        with self._lock:
            data = self._scope(scope)
            if data.leader in (None, member_id) or data.lease_until <= now:
                data.leader, data.lease_until = member_id, now + ttl
                return True
            return False

    def release(self, scope: str, member_id: str) -> None:
        """See `Store.release`."""
        with self._lock:
            data = self._scope(scope)
            if data.leader == member_id:
                data.leader, data.lease_until = None, 0.0
            data.members.pop(member_id, None)

    def pending(self, scope: str) -> list[PendingGroup]:
        """See `Store.pending`."""
        with self._lock:
            groups = [PendingGroup(fp, g.level, g.first_seen, g.last_seen, g.total, g.sample,
                                   {m: n for m, n in g.counts.items() if n}, g.shown_at)
                      for fp, g in self._scope(scope).groups.items() if any(g.counts.values())]
        return sorted(groups, key=lambda g: (-g.level, -g.count, g.first_seen))

    def settle(self, scope: str, member_id: str, sent: Sent, now: float, *, delivered: bool,
               shown: Collection[str], muted: bool = False) -> bool:
        """See `Store.settle`."""
        kind = 0 if delivered else 2 if muted else 1
        with self._lock:
            data = self._scope(scope)
            if data.leader not in (None, member_id) and data.lease_until > now:
                return False
            for fp, counts in sent.items():
                group = data.groups.get(fp)
                if group is None:
                    continue
                for member_id, n in counts.items():
                    taken = min(n, group.counts.get(member_id, 0))
                    if taken <= 0:
                        continue
                    group.counts[member_id] -= taken
                    data.credits.setdefault(member_id, [0, 0, 0])[kind] += taken
                if fp in shown and delivered:
                    group.shown_at = now
            if delivered:
                data.last_send = now
            _forget_old(data, now)
            return True

    def take_budget(self, scope: str, limits: Sequence[tuple[int, float]], now: float, count: int = 1,
                    *, force: bool = False) -> float:
        """See `Store.take_budget`."""
        with self._lock:
            data = self._scope(scope)
            data.sends = [t for t in data.sends if abs(now - t) < store.BUDGET_SPAN_S]
            wait = 0.0 if force else budget_wait(data.sends, limits, now, count)
            if wait == 0.0:
                data.sends.extend([now] * count)
            return wait

    def count_sent(self, scope: str, period_key: str, n: int = 1) -> int:
        """See `Store.count_sent`."""
        with self._lock:
            quota = self._scope(scope).quota
            quota[period_key] = quota.get(period_key, 0) + n
            return quota[period_key]

    def note_error(self, scope: str, error: str, now: float) -> None:
        """See `Store.note_error`."""
        with self._lock:
            data = self._scope(scope)
            data.last_error, data.last_error_at = error, now

    def status(self, scope: str, now: float) -> Status:
        """See `Store.status`."""
        with self._lock:
            data = self._scope(scope)
            live = sorted((m for m in data.members.values() if now - m.last_seen < store.MEMBER_LIVE_S),
                          key=lambda m: -m.last_seen)
            held = data.leader is not None and data.lease_until > now
            pending = [g for g in data.groups.values() if any(g.counts.values())]
            return Status(scope, data.masked, tuple(live), data.leader if held else None,
                          data.lease_until if held else None, len(pending),
                          sum(sum(g.counts.values()) for g in pending),
                          sum(1 for t in data.sends if abs(now - t) < store.BUDGET_SPAN_S),
                          data.last_send, data.last_error, data.last_error_at)

    def scopes(self) -> list[str]:
        """See `Store.scopes`."""
        with self._lock:
            return sorted(self._scopes)

    def close(self) -> None:
        """Nothing to let go of."""


def _merge(data: _Scope, member_id: str, delta: Delta) -> None:
    group = data.groups.get(delta.fingerprint)
    if group is None:
        group = data.groups[delta.fingerprint] = _Group(delta.level, delta.first_seen, delta.last_seen,
                                                        delta.sample or "")
    elif not group.sample and delta.sample:
        group.sample = delta.sample
    if not any(group.counts.values()):
        group.first_seen = delta.first_seen  # the window of a new batch of this group starts here
    group.first_seen = min(group.first_seen, delta.first_seen)
    group.last_seen = max(group.last_seen, delta.last_seen)
    group.level = max(group.level, delta.level)
    group.total += delta.count
    group.counts[member_id] = group.counts.get(member_id, 0) + delta.count


def _forget_old(data: _Scope, now: float) -> None:
    for fp, group in list(data.groups.items()):
        if not any(group.counts.values()) and now - group.last_seen > store.FORGET_AFTER_S:
            del data.groups[fp]
    for member_id, member in list(data.members.items()):
        if now - member.last_seen > store.FORGET_AFTER_S:
            del data.members[member_id]
