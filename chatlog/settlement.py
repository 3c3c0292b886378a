"""Settling a send: what the platform's answer to one message changes.

`chatlog.sending` hands every answer to `Settlement.settle`, on the dispatcher's thread: delivered
(counted, groups marked sent, backoff cleared, a suspension ended, the ChatOps store told), a retry
(records kept, backoff), refused for its content (records dropped and counted, later alerts still go
out) or a configuration error (records kept, `Suspension`).
"""

from __future__ import annotations

import threading

from chatlog import lifecycle
from chatlog._report import Reporter
from chatlog.digest import Digest, GroupTable
from chatlog.pacing import Backoff, jitter
from chatlog.platforms._base import Outcome
from chatlog.suspension import Suspension
from chatlog.timing import BatchSchedule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatlog.fleet import Fleet
    from chatlog.state.honour import Silencer


class Ledger:
    """What became of the records sent, in this process (read by `Dispatcher.stats`): records
    `delivered` (in messages the platform accepted) and `undeliverable` (in messages it refused for
    their content: counted as dropped), buffer overflows already told of in a delivered message
    (`dropped_reported`), messages `sent` and `failed`, and the `batches` settled for good (accepted
    or refused: the number in the next batch name)."""

    __slots__ = ("batches", "delivered", "dropped_reported", "failed", "sent", "undeliverable")

    def __init__(self) -> None:
        """Nothing sent yet."""
        self.delivered = self.undeliverable = self.dropped_reported = 0
        self.sent = self.failed = self.batches = 0


class Settlement:
    """Applies each answer to the accounting, the batch schedule, backoff and suspension."""

    def __init__(self, groups: GroupTable, schedule: BatchSchedule, lock: threading.Lock,
                 reporter: Reporter, silencer: Silencer | None, *, max_backoff: float) -> None:
        """`lock` is the dispatcher's (`stats()` reads the ledger under it); `silencer` the ChatOps side."""
        self.ledger = Ledger()
        self.backoff = Backoff()
        self.suspension = Suspension(reporter)
        self._groups, self._schedule, self._lock = groups, schedule, lock
        self._reporter, self._silencer, self._max_backoff = reporter, silencer, max_backoff
        self.fleet: Fleet | None = None
        """The fleet this process is a member of: a fleet message's records are settled in its store."""

    def try_now(self) -> None:
        """flush(): the next send may go now, even during a backoff (hold the lock)."""
        self.backoff = self.backoff.retry_now()

    def settle(self, digest: Digest, outcome: Outcome, now: float) -> None:
        """Apply the platform's answer to the message sent for `digest`."""
        fleet = self.fleet
        if fleet is not None and fleet.carries(digest):
            self._settle_fleet(fleet, digest, outcome, now)
            return
        with self._lock:
            if outcome.ok:
                self._count_delivered(digest, now)
            else:
                self.ledger.failed += 1
        if outcome.ok:
            if self.suspension:
                self.suspension.end()
            if self._silencer is not None:
                self._silencer.delivered(digest)  # store I/O: outside the lock stats() takes
        elif outcome.kind == "retry":
            self._retry(digest, outcome, now)
        elif outcome.kind == "rejected":
            self._reject(digest, outcome, now)
        else:
            self._suspend(outcome, now)

    def _settle_fleet(self, fleet: Fleet, digest: Digest, outcome: Outcome, now: float) -> None:
        """The answer to a message this process sent for the fleet: the store settles its records (and
        credits them to the members that logged them); the send is counted here."""
        sent, fleet.flight = fleet.flight, None
        final = outcome.ok or outcome.kind == "rejected"
        with self._lock:
            self.ledger.sent += outcome.ok
            self.ledger.failed += not outcome.ok
            if final:
                self.ledger.batches += 1
                self.backoff = self.backoff.after_success()
        if sent is not None and final:
            fleet.settle(sent, now, delivered=outcome.ok)  # store I/O: outside the lock stats() takes
        if outcome.ok:
            if self.suspension:
                self.suspension.end()
            if self._silencer is not None:
                self._silencer.delivered(digest)
            return
        fleet.note_error(outcome.reason or outcome.kind)
        if outcome.kind == "retry":
            self._retry(digest, outcome, now)
            if outcome.retry_after:
                fleet.paused(outcome.retry_after)
        elif outcome.kind == "rejected":
            fleet.refused(now)
            self._say_rejected(digest, outcome)
        else:
            self._suspend(outcome, now)

    def _count_delivered(self, digest: Digest, now: float) -> None:
        self._groups.mark_sent(digest, now)
        self.ledger.delivered += digest.total
        self.ledger.dropped_reported += digest.dropped
        self.ledger.sent += 1
        self.ledger.batches += 1
        self._schedule.delivered(now, digest.level, unsent_left=self._groups.unsent > 0)
        self.backoff = self.backoff.after_success()

    def _reject(self, digest: Digest, outcome: Outcome, now: float) -> None:
        """The platform refused this message's content: drop its records (counted), keep going."""
        with self._lock:
            self._groups.mark_sent(digest, now, shown=False)
            self.ledger.undeliverable += digest.total
            self.ledger.batches += 1
            self._schedule.refused(now, unsent_left=self._groups.unsent > 0)
            self.backoff = self.backoff.after_success()
        self._say_rejected(digest, outcome)

    def _say_rejected(self, digest: Digest, outcome: Outcome) -> None:
        self._reporter.report("rejected", f"{outcome.reason or 'the platform refused the message'}; "
                              f"its {digest.total} records are counted as dropped, later alerts still go out")

    def _retry(self, digest: Digest, outcome: Outcome, now: float) -> None:
        self.backoff = self.backoff.after_failure(
            now, retry_after=outcome.retry_after, max_backoff=self._max_backoff,
            jitter=jitter())
        self._reporter.report(
            "retry", f"sending failed: {outcome.reason}; {digest.total} records kept, "
            f"retrying in {self.backoff.retry_at - now:.0f} s",
        )

    def _suspend(self, outcome: Outcome, now: float) -> None:
        """A configuration error: keep the records, pause until the next probe, say so once an hour."""
        self.backoff = self.backoff.after_failure(now, retry_after=lifecycle.PROBE_EVERY_S,
                                                  max_backoff=self._max_backoff, jitter=1.0)
        self.suspension.begin(outcome.reason or "the platform refused the message", now)
