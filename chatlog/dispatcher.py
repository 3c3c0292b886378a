"""The background half of a handler: the buffer, the dispatcher thread and its round, flush/close.

One round (`Dispatcher.step`) files queued records (`chatlog.filing`), decides whether a batch is due
(`chatlog.timing`, `chatlog.pacing`), builds the digest (`chatlog.digest`), sends it and settles the
answer (`chatlog.sending`, `chatlog.settlement`); flush() waits in `chatlog.waiters`; close() and the
thread's final flush are `chatlog.closing`'s, process events `chatlog.lifecycle`'s. The application
thread touches nothing here but `Dispatcher.buffer.append` (and `count_overflow` when the buffer is full).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from chatlog import closing, lifecycle
from chatlog._record import replace
from chatlog._report import Reporter
from chatlog.capture import Captured
from chatlog.courier import (
    CHATLOG_THREADS,
    HttpOptions,
    install_log_filter,
    mark_own_thread,
    unmark_own_thread,
)
from chatlog.digest import Context, Digest, GroupTable, Mentions
from chatlog.filing import Filing
from chatlog.fleet_round import FleetSide
from chatlog.incident import Incident
from chatlog.pacing import SendWindow
from chatlog.platforms._base import Destination
from chatlog.quota import Quota
from chatlog.sending import Sender
from chatlog.settlement import Settlement
from chatlog.stats import ChatStats
from chatlog.tally import Tallies
from chatlog.timing import BatchSchedule, ClockWatch, Timing
from chatlog.waiters import FlushWaiters

TYPE_CHECKING = False
if TYPE_CHECKING:  # the stores (sqlite3, pathlib) are imported on the dispatcher thread, when used
    from chatlog.escalation import Escalator
    from chatlog.quota import QuotaPlan
    from chatlog.state.controls import ControlStore
    from chatlog.state.honour import Silencer
    from chatlog.state.url import StateURL

__all__ = ["ChatStats", "Dispatcher", "SendWindow", "Timing"]

ROUND_BUDGET_S = 0.02
"""The longest one round files records before it looks at the clock: however fast records arrive,
a due message is sent (or its answer settled) at least this often, not after the buffer runs dry."""


class Dispatcher:
    """Drains one handler's buffer, groups records, and sends one digest per batch."""

    def __init__(
        self,
        destination: Destination,
        *,
        timing: Timing | None = None,
        context: Context | None = None,
        mentions: Mentions | None = None,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
        context_fields: tuple[str, ...] | None = None,
        http: HttpOptions | None = None,
        controls: ControlStore | None = None,
        escalator: Escalator | None = None,
        quota: QuotaPlan | None = None,
        state: StateURL | None = None,
    ) -> None:
        """`mentions` says who a digest of each level mentions;
        `context_fields` limits the ``extra`` fields kept per sample (None: all); `http` says how to
        connect (proxy, certificates; its ``timeout_s`` is replaced by ``timing.request_timeout``);
        `controls` is the ChatOps store whose mutes and acks this destination honours (read on this
        thread only); `escalator` hears of every delivered message (``escalate=``: `chatlog.escalation`);
        `quota` limits the messages per day or month (`chatlog.quota`); `state` the store shared with
        the other processes of this destination (opened on this thread; None or ``memory``: none).

        With ``start=False`` no thread runs: tests drive `step()` with an injected `clock`.
        """
        self.destination = destination
        self.timing = timing or Timing()
        self._base_context = context or Context()
        self._mentions = mentions or Mentions()
        self._clock = clock
        self._context_fields = context_fields
        self._controls = controls
        self.escalator = escalator
        self._quota_plan = quota
        self._state = state if state is not None and state.kind != "memory" else None
        self._http = replace(http or HttpOptions(), timeout_s=self.timing.request_timeout)
        self._secrets = (*destination.secrets, *self._http.secrets)
        self.reporter = Reporter(destination.masked(), self._secrets)
        self.buffer: deque[Captured] = deque()
        self.tallies = Tallies()
        """Counters of known groups' records, incremented on the application thread (`chatlog.tally`)."""
        self._overflow_lock = threading.Lock()
        self._closed = False
        self._reset_state()
        self._thread: threading.Thread | None = None
        install_log_filter()
        lifecycle.track(self)
        if start:
            self._start_thread()

    def _reset_state(self) -> None:
        """Everything that belongs to one process (called again in a forked child)."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.idle = False
        """True while the thread sleeps with nothing queued: the next record must `wake` it."""
        self.tallies.clear()
        self._waiters = FlushWaiters(self._lock)
        self._groups = GroupTable(max_groups=self.timing.max_groups,
                                  repeat_interval=self.timing.repeat_interval)
        self._schedule = BatchSchedule(self.timing.group_wait, self.timing.group_interval,
                                       Incident(self.timing.resolve_level, self.timing.resolve_after))
        self._filing = Filing(self._groups, self._schedule, self.tallies, self._lock, self._clock,
                              own=CHATLOG_THREADS, catch_up=self.timing.max_queue // 2,
                              poll_interval=self.timing.poll_interval)
        self._clock_watch = ClockWatch()
        self._context = replace(self._base_context, host=lifecycle.host_name(), pid=os.getpid())
        self._overflow = 0
        self._report_from_thread = False
        self._batch_seed = f"{os.getpid():x}{os.urandom(4).hex()}"
        self._life = lifecycle.Handshake()
        self._thread_ident: int | None = None
        self._silencer = None if self._controls is None else _silencer()(
            self._controls, self.destination, self.reporter, repeat_interval=self.timing.repeat_interval)
        quota = None if self._quota_plan is None else Quota(
            self._quota_plan, self.destination, lambda key, text: self.reporter.report(key, text, once=True))
        self._settlement = Settlement(self._groups, self._schedule, self._lock, self.reporter,
                                      self._silencer, max_backoff=self.timing.max_backoff,
                                      escalator=self.escalator, quota=quota)
        self._sender = Sender(self.destination, self._http, self._settlement, self.reporter,
                              self._clock, self._wake.set, quota)
        self._fleet = FleetSide(self._state, self.destination, self.timing, self.reporter, self._clock,
                                groups=self._groups, lock=self._lock, sender=self._sender,
                                settlement=self._settlement, overflow=lambda: self._overflow)

    # ---- application side -------------------------------------------------------------

    def count_overflow(self) -> None:
        """Count one record that did not fit in the buffer (reported in the next message)."""
        with self._overflow_lock:
            self._overflow += 1

    def queue(self, item: Captured) -> None:
        """Queue one captured record and wake the thread if it sleeps (the handler inlines this)."""
        self.buffer.append(item)
        if self.idle:
            self.wake()

    def wake(self) -> None:
        """Start a round now (a record arrived while the thread slept with nothing to do)."""
        self.idle = False
        self._wake.set()

    @property
    def own_thread_ids(self) -> set[int]:
        """Idents of chatlog's live threads (every handler's): their records are never fed back."""
        return CHATLOG_THREADS

    def stats(self) -> ChatStats:
        """A consistent snapshot of the accounting."""
        with self._lock:
            self._filing.file_counted(self._clock())
            queued = len(self.buffer) + self.tallies.owed
            ledger = self._settlement.ledger
            delivered, dropped, muted, handed = self._fleet.accounting()  # records a fleet settled or holds
            return ChatStats(accepted=self._overflow + self._filing.processed + queued,
                             dropped=self._overflow + ledger.undeliverable + dropped,
                             pending=queued + self._groups.unsent + handed,
                             delivered_records=ledger.delivered + delivered,
                             messages_sent=ledger.sent, messages_failed=ledger.failed,
                             muted=muted + (0 if self._silencer is None else self._silencer.muted))

    def flush(self, timeout: float) -> bool:
        """Send what is pending now and wait for the answer; False when not all was delivered."""
        thread = self._thread
        if (self._closed or thread is None or not thread.is_alive() or timeout <= 0
                or self._settlement.suspension or lifecycle.holds_logging_lock()):
            return self._is_empty()
        done = threading.Event()
        deadline = self._clock() + timeout
        with self._lock:
            self._settlement.try_now()
        self._waiters.add(deadline, done)
        self._wake.set()
        # Timed out, or released by the loop at the deadline just before the wait would have: the send
        # still out has been waited for, and close() does not wait for it again.
        if not done.wait(timeout) or self._clock() >= deadline:
            self._sender.in_flight.flush_gave_up()
        return self._is_empty()

    def close(self, timeout: float) -> None:
        """Deliver what is pending within `timeout`, then stop the thread. Idempotent, bounded."""
        closing.close(self, timeout)

    def restart(self) -> None:
        """Start again after close() (a record reached a closed handler): new threads, same accounting."""
        self._closed = False
        self._report_from_thread = False
        self._life.restart(self._thread, self._start_thread)

    def close_at_child_exit(self) -> None:
        """Deliver within ``close_timeout``: the process leaves through ``os._exit`` right after."""
        self.close(self.timing.close_timeout)

    def _is_empty(self) -> bool:
        with self._lock:
            self._filing.file_counted(self._clock())
            return (not self.buffer and self._groups.unsent == 0 and not self.tallies.owed
                    and not self._fleet.leader_owes())

    # ---- background thread --------------------------------------------------------------

    def _start_thread(self) -> None:
        self._sender.new_courier()
        self._thread = threading.Thread(target=self._run, name="chatlog-dispatcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._thread_ident = threading.get_ident()
        mark_own_thread()
        try:
            while True:
                self._loop()
                closing.final_flush(self)
                if self._life.thread_ends(resume=self._sender.new_courier):
                    return
        finally:
            unmark_own_thread()

    def _loop(self) -> None:
        while True:
            try:
                delay = self.step()
            except BaseException as exc:
                self.reporter.report("internal", f"internal error, continuing: {type(exc).__name__}: {exc}")
                delay = self.timing.poll_interval
            if self._life.closing:
                return
            if delay > self.timing.poll_interval and not self._go_idle():
                delay = self.timing.poll_interval  # records came just before the flag was up: filed now
            self._wake.wait(None if delay == math.inf else delay)
            self._wake.clear()
            self.idle = False

    def _go_idle(self) -> bool:
        """Raise `idle` before a long sleep; False (and `idle` lowered again) when records came meanwhile.

        The application appends (or counts) first and reads `idle` second; this thread raises `idle`
        first and looks second. Under the GIL one of the two sees the other: no record waits for a
        deadline, and no log call pays for a wake-up unless this thread really sleeps."""
        self.idle = True
        if self.buffer or self._filing.drain(self.buffer, budget_s=ROUND_BUDGET_S)[1]:
            self.idle = False
            return False
        return True

    def step(self) -> float:
        """One round: file queued records (for at most `ROUND_BUDGET_S`), send if a batch is due.

        Returns seconds until the next round is needed; ``inf`` when only a record, an answer or
        flush()/close() can make one necessary (the thread then sleeps until woken).
        """
        flushing = bool(self._waiters)
        emptied, filed = self._file_round(threaded=self._thread_ident is not None, flushing=flushing)
        now = self._clock()
        self._follow_clock(now)
        self._fleet.round(now, flushing=flushing)  # hand this round's groups to the fleet's store
        wait = self._send_if_due(now)
        if not emptied:
            return 0.0
        if filed:  # records are arriving: file the next ones within a poll interval
            wait = min(wait, self.timing.poll_interval)
        now = self._clock()
        return min(wait, self._waiters.seconds_to_next(now), self._fleet.sync_in(now))

    def _file_round(self, *, threaded: bool, flushing: bool) -> tuple[bool, int]:
        """File queued records and the tallies' counts (`Filing.round`): (buffer emptied, how many filed)."""
        emptied, filed = self._filing.round(self.buffer, budget_s=ROUND_BUDGET_S if threaded else None,
                                            flushing=flushing)
        if filed:
            self._sender.courier.warm()  # the client is built before the message is due, on chatlog's thread
        return emptied, filed

    def _send_if_due(self, now: float) -> float:
        """Settle an answer that came, start a send that is due; seconds until something is due."""
        if self._sender.busy:  # a request is out: its answer wakes the thread
            if not self._sender.take_answer():
                self._waiters.forget_expired(now)
                return math.inf
            now = self._clock()
        self._waiters.forget_expired(now)
        wait = self._wait_until_due(now)
        if wait > 0:
            return wait
        self._launch(now)
        return math.inf if self._sender.busy else 0.0

    def _wait_until_due(self, now: float) -> float:
        """Seconds until the unsent records may be sent (0: now, ``inf``: nothing to send); answers the
        flushes when there is nothing they could wait for."""
        backoff = self._settlement.backoff
        if self._settlement.suspension and now < backoff.paused_until:
            self._waiters.answer_all()  # flush() cannot help until the next probe
            return backoff.paused_until - now
        if self._fleet.shared:  # the lease holder sends for every member
            wait = self._fleet.wait(now, ready_at=backoff.ready_at(), flushing=bool(self._waiters),
                                    answer=self._waiters.answer_all)
            if wait == 0:
                return self._sender.quota_wait()
            return min(wait, self._fleet.all_clear(now, self._schedule.incident, self._context,
                                                   self._batch_name()))
        incident_due = self._schedule.incident.due_at()  # the all-clear, when an incident is open
        if not self._groups.unsent:
            self._waiters.answer_all()
            if incident_due == math.inf:
                return math.inf
        ready = backoff.ready_at()
        # A flush: no group_wait.
        due = ready if self._waiters else max(min(self._schedule.due_at(), incident_due), ready)
        if now < due:
            return due - now
        return self._sender.wait(now)

    def _follow_clock(self, now: float) -> None:
        """After the clock stepped back, move every deadline back with it (see `ClockWatch`)."""
        shift = self._clock_watch.step_back(now)
        if not shift:
            return
        self._schedule.shift(shift)
        self._settlement.backoff = self._settlement.backoff.shifted(shift)
        self._waiters.shift(shift)

    def _launch(self, now: float) -> None:
        """Build the digest of everything unsent and send it (in a fleet: the fleet's, by its leader)."""
        if self._fleet.shared:
            self._fleet.launch(now, self._context, self._mentions, self._batch_name(), self._silencer)
            return
        digest = self._build_digest(now)
        if digest is not None:
            self._sender.send(digest, now)
            self._fleet.sent_alone()

    def _batch_name(self) -> str:
        return f"{self._batch_seed}-{self._settlement.ledger.batches}"

    def _build_digest(self, now: float) -> Digest | None:
        """The digest of everything unsent, complete (batch name, mentions, mutes); None: all muted."""
        with self._lock:
            self._filing.file_counted(now)  # every count up to now, not up to the last collection
        if self._silencer is not None and self._silencer.silence(self._groups, self._lock):
            self._schedule.discarded()
        incident = self._schedule.incident
        all_clear = incident.all_clear(now, unsent_at_level=self._groups.unsent_at_least(incident.level))
        if not self._groups.unsent and all_clear is None:
            return None
        ledger = self._settlement.ledger
        digest = self._groups.digest(now, self._context, self._overflow - ledger.dropped_reported,
                                     self._mentions, batch=self._batch_name(),
                                     all_clear=all_clear)
        return digest if self._silencer is None else self._silencer.decorate(digest)

    # ---- fork ------------------------------------------------------------------------------

    def after_fork_in_child(self) -> None:
        """A forked child gets a fresh buffer, state and thread; the parent's records stay the parent's."""
        lifecycle.keep_inherited(self._sender.courier.forget_client())
        was_running = self._thread is not None and not self._closed
        self.buffer.clear()
        self._overflow_lock = threading.Lock()
        # The parent's thread may have held the reporter's lock at the fork; here no one would release it.
        self.reporter = Reporter(self.destination.masked(), self._secrets)
        self._reset_state()
        self._thread = None
        if was_running:
            self._start_thread()


def _silencer() -> type[Silencer]:
    # Imported on first use: a handler without chatops= never loads sqlite3 and pathlib.
    from chatlog.state.honour import Silencer

    return Silencer
