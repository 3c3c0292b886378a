"""The fleet store: what every process attached to one destination shares (issue 11).

A *scope* is one destination (`scope_of`: a hash of platform and credentials, never the credentials).
Per scope the store keeps

- **members**: the processes attached (id ``host:pid:random``, host, pid, last seen);
- **pending groups**: per fingerprint, the records handed over and not yet settled, counted per
  member, with first/last seen, the most severe level, one opaque sample and when the group was last
  shown in full (the shared ``repeat_interval`` memory);
- **credits**: per member, how many of its records were settled as delivered, dropped or muted;
- **the lease**: which member sends for the scope, until when;
- **the budget**: the send times of the last 60 s, shared by every sender;
- **quota counters**, last send and last error (for ``chatlog status``).

Every method of a `Store` is atomic (one transaction, one Lua script or MULTI); a method that cannot
reach the store raises `StoreError`, and the caller (always a chatlog thread) falls back to sending
alone. Times are Unix seconds (``time.time()``): they are compared across processes and hosts.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from chatlog._record import Record
from chatlog.state.url import StateURL, mask_url, parse_state

if TYPE_CHECKING:
    from pathlib import Path

    from chatlog.platforms._base import Destination

__all__ = ["BUDGET_SPAN_S", "FORGET_AFTER_S", "MEMBER_LIVE_S", "Delta", "HandOver", "Member", "PendingGroup",
           "Sent", "StateURL", "Status", "Store", "StoreError", "host_of", "mask_url", "new_member_id",
           "open_store", "parse_state", "runtime_dir", "scope_of"]

MEMBER_LIVE_S = 30.0
"""A member not heard of for this long is not counted live (members heartbeat at least every 5 s)."""
BUDGET_SPAN_S = 60.0
"""The longest send window a store must remember (the platforms' per-minute limits)."""
FORGET_AFTER_S = 86_400.0
"""Groups with nothing pending, and members, unseen for a day are forgotten."""

class StoreError(Exception):
    """The store could not be reached or used (its message never holds a password)."""


def scope_of(destination: Destination) -> str:
    """The destination's key in every store: a hash of its class, masked URL and credentials."""
    import hashlib

    seed = "\n".join([type(destination).__name__, destination.masked(), *destination.secrets])
    return hashlib.sha256(("chatlog-scope\n" + seed).encode()).hexdigest()[:24]


def runtime_dir() -> Path:
    """Where chatlog keeps its files on this host: ``$XDG_RUNTIME_DIR/chatlog``, else
    ``<tempdir>/chatlog-<uid>`` (created owner-only by whoever writes there first)."""
    import tempfile
    from pathlib import Path

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.access(runtime, os.W_OK):
        return Path(runtime) / "chatlog"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"chatlog-{uid}"


def new_member_id(host: str) -> str:
    """``host:pid:random``: one process's id in the store (new in each process, after fork too)."""
    return f"{host}:{os.getpid()}:{os.urandom(4).hex()}"


def host_of(member_id: str) -> str:
    """The host part of a member id."""
    return member_id.rsplit(":", 2)[0]


class Member(Record):
    """One process attached to a scope."""

    id: str
    host: str
    pid: int
    last_seen: float = 0.0


class Delta(Record):
    """What one member counted of one group since its last hand-over."""

    fingerprint: str
    """Stable across processes and hosts (`chatlog.fleet.fingerprint_of`)."""
    count: int
    first_seen: float
    last_seen: float
    level: int
    sample: str | None
    """Opaque text (JSON) the leader renders; sent with a group's first hand-over only. The store keeps
    the first sample it gets for a fingerprint and ignores later ones."""


class HandOver(Record):
    """What `Store.hand_over` answers: the member's standing after the merge, read in the same step."""

    epoch: str
    """Names the store's data: a new epoch means everything handed over before was lost with it."""
    outstanding: dict[str, int]
    """This member's records per fingerprint that the store holds, not yet settled."""
    delivered: int
    """This member's records settled as delivered, ever (in this epoch)."""
    dropped: int
    """This member's records settled as refused by the platform, ever (in this epoch)."""
    muted: int
    """This member's records settled as kept out of messages by a ChatOps mute, ever (in this epoch)."""
    live_members: int
    leader: str | None
    """The member holding an unexpired lease, if any."""
    pending_records: int
    """Records pending in the scope, from every member."""
    budget_used: int = 0
    """Sends within the last `BUDGET_SPAN_S` (what is left of the budget if the store fails next)."""


class PendingGroup(Record):
    """One group as the leader reads it: every member's unsettled records of one fingerprint."""

    fingerprint: str
    level: int
    first_seen: float
    last_seen: float
    total: int
    """Records ever handed over for this group (while the store remembered it)."""
    sample: str
    counts: dict[str, int]
    """Unsettled records per member id."""
    shown_at: float | None
    """When a message last showed this group in full (any sender), or None."""

    @property
    def count(self) -> int:
        """Unsettled records of the group, fleet-wide."""
        return sum(self.counts.values())


class Status(Record):
    """One scope as ``chatlog status`` prints it."""

    scope: str
    masked: str
    members: tuple[Member, ...]
    """Live members, most recently seen first."""
    leader: str | None
    lease_until: float | None
    pending_groups: int
    pending_records: int
    budget_used: int
    """Sends within the last `BUDGET_SPAN_S`."""
    last_send: float | None
    last_error: str
    last_error_at: float | None


Sent = Mapping[str, Mapping[str, int]]
"""What a message carried: per fingerprint, per member id, how many records."""


class Store(Protocol):
    """The shared state of every process attached to the same destinations. Every method is atomic;
    every method raises `StoreError` when the store cannot be used, and nothing else."""

    masked: str
    """Where the store is, for messages (no password)."""

    def describe(self, scope: str, masked: str, now: float) -> None:
        """Remember the destination's masked URL for `status` (called once per process and epoch)."""

    def hand_over(self, scope: str, member: Member, deltas: Sequence[Delta], now: float) -> HandOver:
        """Heartbeat `member` and merge `deltas` into the pending groups (counts add up per member;
        first seen is the minimum, last seen the maximum, level the maximum; a sample only where the
        group has none). Returns the member's standing after the merge."""

    def lease(self, scope: str, member_id: str, ttl: float, now: float) -> bool:
        """Take the scope's lease when it is free or expired, or renew it when `member_id` holds it,
        until ``now + ttl``. True when `member_id` holds it now."""

    def release(self, scope: str, member_id: str) -> None:
        """Give the lease up if `member_id` holds it, and forget the member (its pending records stay:
        the next leader sends them)."""

    def pending(self, scope: str) -> list[PendingGroup]:
        """Every group of the scope with unsettled records (fleet-wide), most severe first."""

    def settle(self, scope: str, member_id: str, sent: Sent, now: float, *, delivered: bool,
               shown: Collection[str], muted: bool = False) -> bool:
        """A message `member_id` sent, carrying `sent`, was answered: subtract exactly those counts
        (never below zero), credit them to each member as delivered (or, with ``delivered=False``,
        dropped: the platform refused the content; with ``muted=True`` too, muted: kept out of the
        message by a ChatOps mute), mark the `shown` fingerprints shown in full at `now` and remember
        the send (delivered only). Applied only while no other member holds the lease; False (and
        nothing changed) otherwise: a leader that lost its lease mid-send never takes records it did
        not send (they are sent again by the new leader: a duplicate, never a loss)."""

    def take_budget(self, scope: str, limits: Sequence[tuple[int, float]], now: float, count: int = 1,
                    *, force: bool = False) -> float:
        """Reserve `count` sends at `now` if every ``(limit, window_s)`` stays within its limit over
        the sends already recorded; returns 0.0 when reserved, else the seconds until it would fit
        (nothing reserved). With `force`, record the sends without checking (sends made while the
        store was unreachable) and return 0.0."""

    def count_sent(self, scope: str, period_key: str, n: int = 1) -> int:
        """Add `n` to the counter of `period_key` (``"2026-12-01"``); returns the new value (n=0 reads)."""

    def note_error(self, scope: str, error: str, now: float) -> None:
        """Remember the scope's last error (already masked) for `status`."""

    def status(self, scope: str, now: float) -> Status:
        """The scope's members, lease, pending work, budget and last send/error."""

    def scopes(self) -> list[str]:
        """Every scope the store knows."""

    def close(self) -> None:
        """Let go of this process's connection (the data stays)."""


def open_store(state: str | None, *, warn: bool = True) -> Store:
    """The store `state` names (`parse_state`). A SQLite file that cannot be created falls back to
    memory with one line on stderr (`warn`); a Redis URL needs the ``redis`` extra (ImportError saying
    so when it is missing)."""
    parsed = parse_state(state)
    if parsed.kind == "memory":
        from chatlog.state.memory import MemoryStore

        return MemoryStore()
    if parsed.kind == "sqlite":
        from chatlog.state.sqlite import open_sqlite

        return open_sqlite(parsed, warn=warn)
    from chatlog.state.redis_store import RedisStore  # redis-py is imported when the store is made

    return RedisStore(parsed)
