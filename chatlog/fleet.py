"""One process's part in a fleet of processes that share a destination through a store (issue 11).

Every round a member hands its grouped records (never raw records) to the store (`Fleet.sync`), and
learns in the same step what became of the records it handed over before: delivered by whoever
sent them, refused, muted, or still pending. One member holds the destination's lease: it reads every
member's pending groups, builds one digest for the fleet, reserves the send in the shared budget and
settles exactly what the message carried. When the store fails, the process alerts alone with its
share of the budget (the limit divided by the fleet size it last saw) until the store is back.

All of it runs on the dispatcher's thread: the application thread never waits for the store.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

from chatlog._record import replace
from chatlog._report import Reporter
from chatlog.digest import Context, Digest, GroupTable, Mentions, Taken
from chatlog.fleet_digest import FleetDigest, deltas_of, fingerprint_of, fleet_digest, group_id_of
from chatlog.pacing import SendWindow
from chatlog.platforms._base import Destination
from chatlog.state.memory import MemoryStore
from chatlog.state.store import (
    HandOver,
    Member,
    PendingGroup,
    StateURL,
    Store,
    StoreError,
    new_member_id,
    open_store,
    scope_of,
)
from chatlog.timing import BatchSchedule, Timing

LEASE_TTL_S = 10.0
"""How long a leader's lease lasts without renewal: the longest a dead leader's records wait."""
LEASE_MARGIN_S = 2.0
"""A leader sends only while its lease has at least this long to run."""
HANDOVER_S = 1.0
"""A member with records hands them over at least this often: the most SIGKILL can cost."""
IDLE_SYNC_S = 3.0
"""A member with nothing to do still heartbeats this often (and takes the lease of a dead leader)."""
DROPPED_KEY, DROPPED_SHOWN_KEY = "dropped", "dropped-shown"
"""Counters (`Store.count_sent`) of the fleet's records dropped for a full buffer, and of those a message
has reported: the leader's next message says the difference."""
PAUSED_KEY = "paused-until"
"""Counter holding the Unix second until which the platform asked the fleet to pause (a block)."""
FAILURES_TO_FALL_BACK = 3
"""Store failures in a row after which the process alerts alone."""
SAMPLE_AGAIN_S = 3600.0
"""A group's sample is handed over again after this long (the store may have forgotten the group)."""


class Fleet:
    """A member of the fleet of one destination; every method runs on the dispatcher thread."""

    def __init__(self, store: Store, scope: str, masked: str, *, limits: tuple[int, float | None],
                 timing: Timing, reporter: Reporter, host: str, handover_s: float = HANDOVER_S,
                 lease_ttl: float = LEASE_TTL_S, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        """`limits` are the platform's (per minute, per second); `wall` gives Unix seconds (the store's
        clock, shared across processes); the dispatcher's own clock drives the batch schedule."""
        self.store, self.scope, self._masked = store, scope, masked
        self.member = Member(new_member_id(host), host, os.getpid())
        self._per_minute, self._per_second = limits
        self._timing, self._reporter, self._wall, self._now = timing, reporter, wall, clock
        self._handover_s, self._lease_ttl = handover_s, lease_ttl
        self.shared = True
        """The store worked on the last try (False: this process alerts alone)."""
        self.leader = False
        self.delivered = 0
        """Records of this process in messages the platform accepted, whoever sent them."""
        self.dropped = 0
        """Records of this process in messages the platform refused for their content."""
        self.muted = 0
        """Records of this process the leader kept out of messages: their group was muted (ChatOps)."""
        self.outstanding: dict[str, int] = {}
        """This process's records the store holds, not yet settled (per fingerprint)."""
        self.pending_records = 0
        """Records pending in the store, every member's (as last read)."""
        self.fleet_size = 1
        self._known: dict[str, Taken] = {}
        self._sampled: dict[str, float] = {}
        self._epoch: str | None = None
        self._credits_seen = (0, 0, 0)
        self._described = False
        self._last_sync = -float("inf")
        self._in_transit = 0
        self._budget_seen = (0, 0.0)
        """Sends in the shared budget's last minute, and when that was read (for a fallback)."""
        self._lease_until = -float("inf")
        """When the lease this process last took or renewed ends (dispatcher clock)."""
        self._hold_until = -float("inf")
        """The shared budget is used up until then (dispatcher clock)."""
        self.flight: FleetDigest | None = None
        """The fleet message out now, with what it carries."""
        self._schedule = BatchSchedule(timing.group_wait, timing.group_interval)
        self._seen: dict[str, int] = {}
        self.solo_window = SendWindow(self._per_minute, self._per_second)
        """The send window while alone (its share of the budget once the store failed)."""
        self._solo_sends: list[float] = []
        self._failures = 0
        """Store operations failed in a row."""

    @property
    def own_pending(self) -> int:
        """This process's records the store holds, not yet settled, and those on their way to it."""
        return sum(self.outstanding.values()) + self._in_transit

    def carries(self, digest: Digest) -> bool:
        """True when `digest` is the fleet message out now (its answer settles in the store)."""
        return self.flight is not None and self.flight.digest is digest

    def sync_in(self, now: float, *, local_records: bool) -> float:
        """Seconds until the next `sync` is due (dispatcher clock): every `handover_s` while there is
        work here or in the store, else every `IDLE_SYNC_S` (a heartbeat)."""
        busy = local_records or self.pending_records or self.leader
        return max(0.0, self._last_sync + (self._handover_s if busy else IDLE_SYNC_S) - now)

    def sync(self, groups: GroupTable, lock: threading.Lock, now: float, *, force: bool = False) -> None:
        """Hand over what `groups` holds unsent, heartbeat, read what became of earlier hand-overs,
        take or renew the lease when there is work; when `sync_in` says so, or now with `force`."""
        if not force and self.sync_in(now, local_records=bool(groups.unsent)) > 0:
            return
        self._last_sync = now
        with lock:  # what stats() sees moves from unsent to in transit to the store's count at once
            taken = groups.take_unsent(now)
            self._in_transit = sum(item.summary.count for item in taken)
        wall = self._wall()
        try:
            answer = self._hand_over(taken, wall)
        except StoreError as exc:
            with lock:
                groups.give_back(taken)
                self._in_transit = 0
            self._failed(exc)
            return
        with lock:
            self._absorb(answer, taken, groups, wall)
        if not self.shared:  # after the hand-over: a failure from here on must not give records back
            self._back(wall)
        self._lead(answer, now, wall)

    def _hand_over(self, taken: list[Taken], wall: float) -> HandOver:
        if not self._described:
            self.store.describe(self.scope, self._masked, wall)
        fresh = {fp for fp in map(fingerprint_of, (t.key for t in taken))
                 if wall - self._sampled.get(fp, -SAMPLE_AGAIN_S) >= SAMPLE_AGAIN_S}
        answer = self.store.hand_over(self.scope, self.member, deltas_of(taken, fresh), wall)
        self._described, self._failures = True, 0
        for fp in fresh:
            self._sampled[fp] = wall
        return answer

    def _absorb(self, answer: HandOver, taken: list[Taken], groups: GroupTable, wall: float) -> None:
        """Take in the member's standing (under the dispatcher's lock); if the store lost its data,
        take back what it held to hand it over again."""
        if self._epoch is not None and answer.epoch != self._epoch:
            lost = [replace(self._known[fp], summary=replace(self._known[fp].summary, count=n))
                    for fp, n in self.outstanding.items() if fp in self._known]
            groups.give_back(lost)
            self._reporter.report("store-lost", f"the shared store {self.store.masked} lost its data; "
                                  f"{sum(t.summary.count for t in lost)} records handed over before are "
                                  "handed over again (a message may repeat them)", every_s=0.0)
            self._credits_seen, self._sampled, self._described = (0, 0, 0), {}, False
        self._epoch = answer.epoch
        seen_delivered, seen_dropped, seen_muted = self._credits_seen
        self.delivered += max(0, answer.delivered - seen_delivered)
        self.dropped += max(0, answer.dropped - seen_dropped)
        self.muted += max(0, answer.muted - seen_muted)
        self._credits_seen = (answer.delivered, answer.dropped, answer.muted)
        for item in taken:
            self._known[fingerprint_of(item.key)] = item
        self.outstanding = dict(answer.outstanding)
        self._known = {fp: t for fp, t in self._known.items() if fp in self.outstanding}
        self._in_transit = 0
        self.pending_records = answer.pending_records
        self.fleet_size = max(1, answer.live_members)
        self._budget_seen = (answer.budget_used, wall)

    def _lead(self, answer: HandOver, now: float, wall: float) -> None:
        """Hold the lease while there is work and nobody else holds it; the leader reads the pending
        groups and tells its schedule of every group that grew."""
        if answer.leader not in (None, self.member.id) or not (answer.pending_records or self.leader):
            self._lose_lead()
            return
        try:
            was_leader = self.leader
            self.leader = self.store.lease(self.scope, self.member.id, self._lease_ttl, wall)
            pending = self.store.pending(self.scope) if self.leader else []
            if self.leader and not was_leader:  # a pause the platform asked of the previous leader holds
                paused = self.store.count_sent(self.scope, PAUSED_KEY, 0)
                self._hold_until = max(self._hold_until, now + paused - wall)
        except StoreError as exc:
            self._failed(exc)
            return
        if not self.leader:
            self._lose_lead()
            return
        self._lease_until = now + self._lease_ttl
        grown = [g for g in pending if g.count > self._seen.get(g.fingerprint, 0)]
        if grown:
            self._schedule.record_filed(now, max(g.level for g in grown))
        self._seen = {g.fingerprint: g.count for g in pending}
        if not pending:
            self._schedule.first_unsent_at = None

    def _lose_lead(self) -> None:
        if self.leader or self._seen:
            self._schedule = BatchSchedule(self._timing.group_wait, self._timing.group_interval)
            self._seen = {}
        self.leader = False

    def held(self, now: float) -> bool:
        """True while the shared budget or a platform's pause holds the fleet's next message back."""
        return now < self._hold_until

    def due_at(self, *, forced: bool, ready_at: float) -> float:
        """When the leader's next message is due (``inf``: not the leader, or nothing pending)."""
        if not (self.shared and self.leader and self._seen):
            return float("inf")
        ready = max(ready_at, self._hold_until)
        return ready if forced else max(self._schedule.due_at(), ready)

    def build(self, context: Context, mentions: Mentions, batch: str,
              muted: Callable[[str, int], bool] | None = None) -> FleetDigest | None:
        """The fleet's digest of everything pending now (None: nothing, or the store failed). Groups
        `muted` accepts (group id, count) are settled as muted (in their members' counts too).
        Nothing on a lease about to end (its renewal failed): the next leader could send the same."""
        if self._now() >= self._lease_until - LEASE_MARGIN_S:
            return None
        try:
            pending: list[PendingGroup] = self.store.pending(self.scope)
            if muted is not None:
                quiet = [g for g in pending if muted(group_id_of(g.sample), g.count)]
                if quiet:
                    self.store.settle(self.scope, self.member.id, {g.fingerprint: g.counts for g in quiet},
                                      self._wall(), delivered=False, shown=(), muted=True)
                    pending = [g for g in pending if g not in quiet]
            dropped = self._dropped_untold() if pending else 0
        except StoreError as exc:
            self._failed(exc)
            return None
        if not pending:
            self._seen = {}
            self._schedule.first_unsent_at = None
            return None
        return fleet_digest(pending, now=self._wall(), repeat_interval=self._timing.repeat_interval,
                            context=context, mentions=mentions, batch=batch, dropped=dropped)

    def take_budget(self, sends: int, now: float) -> float:
        """Reserve `sends` in the shared budget: 0.0 when reserved, else seconds to wait (inf: the
        store failed, this process is alone now)."""
        limits = [(self._per_minute, 60.0)]
        if self._per_second is not None:
            limits.append((max(1, int(self._per_second)), 1.0))
        try:
            wait = self.store.take_budget(self.scope, limits, self._wall(), sends)
        except StoreError as exc:
            self._failed(exc)
            return float("inf")
        self._hold_until = now + wait
        return wait

    def settle(self, sent: FleetDigest, now: float, *, delivered: bool) -> None:
        """The answer to a fleet message: settle what it carried (the dispatcher counts the send)."""
        try:
            applied = self.store.settle(self.scope, self.member.id, sent.sent, self._wall(),
                                        delivered=delivered, shown=sent.shown if delivered else ())
        except StoreError as exc:
            self._failed(exc)
            return
        if not applied:
            self._reporter.report("lease-lost", "this process lost the destination's lease while sending; "
                                  "the new leader sends these records again")
            return
        if delivered and sent.digest.dropped:
            with contextlib.suppress(StoreError):  # else the next message says it again
                self.store.count_sent(self.scope, DROPPED_SHOWN_KEY, sent.digest.dropped)
        for fp, counts in sent.sent.items():
            self._seen[fp] = max(0, self._seen.get(fp, 0) - sum(counts.values()))
        self._seen = {fp: n for fp, n in self._seen.items() if n}
        self._schedule.delivered(now, sent.digest.level, unsent_left=bool(self._seen))
        self._last_sync = -float("inf")  # read what the message settled of this process's records at once

    def paused(self, seconds: float) -> None:
        """The platform asked for a pause ("too fast"): whoever leads next waits for it too."""
        with contextlib.suppress(StoreError):  # this leader's own backoff still holds
            until = int(self._wall() + seconds) + 1
            current = self.store.count_sent(self.scope, PAUSED_KEY, 0)
            if until > current:
                self.store.count_sent(self.scope, PAUSED_KEY, until - current)

    def refused(self, now: float) -> None:
        """A fleet message was refused for its content: the interval still applies to the next one."""
        self._schedule.refused(now, unsent_left=bool(self._seen))

    def tell_dropped(self, n: int) -> bool:
        """`n` more records of this process were dropped (buffer full): the fleet's next message says
        so. False when the store could not take it (the process's own next message will)."""
        try:
            self.store.count_sent(self.scope, DROPPED_KEY, n)
        except StoreError:
            return False
        return True

    def _dropped_untold(self) -> int:
        """Records the fleet dropped that no message has reported yet (read by the leader)."""
        return max(0, self.store.count_sent(self.scope, DROPPED_KEY, 0)
                   - self.store.count_sent(self.scope, DROPPED_SHOWN_KEY, 0))

    def sent_alone(self) -> None:
        """This process sent a message of its own while the store failed (recorded when it is back)."""
        self._solo_sends.append(self._wall())

    def leave(self) -> None:
        """The process closes: give up the lease (its records stay in the store for the others)."""
        with contextlib.suppress(StoreError):  # else the lease expires on its own
            self.store.release(self.scope, self.member.id)
        self.leader = False

    def _failed(self, exc: StoreError) -> None:
        """The store failed: skip this round; alone from the third failure in a row on (a lock held
        past the busy timeout by a descheduled process is not an outage)."""
        self._failures += 1
        if self._failures < FAILURES_TO_FALL_BACK:
            return
        if self.shared:
            share = max(1, self._per_minute // self.fleet_size)
            self.solo_window = SendWindow(share, self._per_second)
            used, seen_at = self._budget_seen
            left = max(0, self._per_minute - used) // self.fleet_size
            for _ in range(max(0, share - left)):  # the fleet's sends of that minute still count
                self.solo_window.record(self._clock_of(seen_at))
            self._reporter.report("store", f"cannot use the shared store ({exc}); this process alerts on "
                                  f"its own with {share} of the {self._per_minute} messages a minute "
                                  f"({self.fleet_size} processes were sharing them) until it is back",
                                  every_s=0.0)
            self.note_error(str(exc))
        self.shared = False
        self._lose_lead()

    def _back(self, wall: float) -> None:
        """The store works again: the sends made alone count in the shared budget from now on."""
        self.shared = True
        recent = [at for at in self._solo_sends if 0.0 <= wall - at < 60.0]
        with contextlib.suppress(StoreError):  # at worst the budget misses a few sends for a minute
            for at in recent:
                self.store.take_budget(self.scope, [(self._per_minute, 60.0)], at, force=True)
        self._solo_sends = []
        self._reporter.report("store-back", f"the shared store {self.store.masked} works again; alerts "
                              "are shared with the other processes", every_s=0.0)

    def _clock_of(self, wall: float) -> float:
        """A Unix time on the dispatcher's clock (the send window runs on it)."""
        return self._now() - (self._wall() - wall)

    def note_error(self, error: str) -> None:
        """Remember the destination's last error in the store, for ``chatlog status``."""
        with contextlib.suppress(StoreError):
            self.store.note_error(self.scope, error, self._wall())


def open_fleet(state: StateURL, destination: Destination, timing: Timing, reporter: Reporter,
               clock: Callable[[], float], host: str) -> Fleet | None:
    """The fleet `state` names, for `destination` (on the dispatcher's thread: opening is I/O); None
    for a process of its own (``memory``, or a store that cannot be opened: said once on stderr)."""
    try:
        store = open_store(state.url if state.kind == "redis" else _sqlite_url(state))
    except Exception as exc:  # a missing extra or a bad URL part: alert alone, say why
        reporter.report("store", f"cannot open the shared store {state.masked} "
                        f"({type(exc).__name__}: {exc}); this process alerts on its own", every_s=0.0)
        return None
    if isinstance(store, MemoryStore):
        return None
    limits = destination.limits
    return Fleet(store, scope_of(destination), destination.masked(), limits=(limits.per_minute,
                 limits.per_second), timing=timing, reporter=reporter, host=host,
                 handover_s=timing.handover_interval, clock=clock)


def _sqlite_url(state: StateURL) -> str | None:
    return f"sqlite://{state.path}" if state.path else None
