"""The background half of a handler: buffer, thread, timing, rate limits, retries, flush/close.

The dispatcher thread owns the clock; the courier (`chatlog.courier`) carries requests; process
events (fork, child exits, restart after close) are `chatlog.lifecycle`'s. The application thread
touches nothing here but `Dispatcher.buffer.append` (and `count_overflow` when the buffer is full).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from chatlog import lifecycle
from chatlog._record import Record, replace
from chatlog._report import Reporter
from chatlog.capture import Captured
from chatlog.courier import (
    CHATLOG_THREADS,
    Courier,
    HttpOptions,
    install_log_filter,
    mark_own_thread,
    unmark_own_thread,
)
from chatlog.digest import Context, Digest, GroupTable, Mentions
from chatlog.filing import Filing
from chatlog.pacing import Backoff, SendWindow
from chatlog.platforms._base import Destination, Outcome, Payloads
from chatlog.tally import Tallies
from chatlog.timing import BatchSchedule, ClockWatch, Timing

TYPE_CHECKING = False
if TYPE_CHECKING:  # the ChatOps store (sqlite3, pathlib) is imported only when chatops= is set
    from typing import Final

    from chatlog.state.controls import ControlStore
    from chatlog.state.honour import Silencer

__all__ = ["ChatStats", "Dispatcher", "SendWindow", "Timing"]

ROUND_BUDGET_S = 0.02
"""The longest one round files records before it looks at the clock: however fast records arrive,
a due message is sent (or its answer settled) at least this often, not after the buffer runs dry."""

class ChatStats(Record):
    """A handler's accounting: ``accepted == delivered_records + dropped + pending + muted`` always holds."""

    accepted: Final[int]
    dropped: Final[int]
    """Records that will not reach the chat: buffer overflow, or a message the platform refused for its
    content. (A destination stopped by a configuration error keeps its records pending.)"""
    pending: Final[int]
    delivered_records: Final[int]
    messages_sent: Final[int]
    messages_failed: Final[int]
    muted: Final[int]
    """Records kept out of messages because their group was muted from the chat (ChatOps)."""

    def __init__(self, accepted: int, dropped: int, pending: int, delivered_records: int, messages_sent: int,
                 messages_failed: int, muted: int = 0) -> None:
        self.accepted = accepted
        self.dropped = dropped
        self.pending = pending
        self.delivered_records = delivered_records
        self.messages_sent = messages_sent
        self.messages_failed = messages_failed
        self.muted = muted


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
    ) -> None:
        """`mentions` says who a digest of each level mentions;
        `context_fields` limits the ``extra`` fields kept per sample (None: all); `http` says how to
        connect (proxy, certificates; its ``timeout_s`` is replaced by ``timing.request_timeout``);
        `controls` is the ChatOps store whose mutes and acks this destination honours (read on this
        thread only).

        With ``start=False`` no thread runs: tests drive `step()` with an injected `clock`.
        """
        self.destination = destination
        self.timing = timing or Timing()
        self._base_context = context or Context()
        self._mentions = mentions or Mentions()
        self._clock = clock
        self._context_fields = context_fields
        self._controls = controls
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
        self._next_collect = 0.0
        """When the next round reads the tallies (`time.monotonic()`; at most once per poll interval)."""
        self.tallies.clear()
        self._waiters: list[tuple[float, threading.Event]] = []
        self._closing = False
        self._groups = GroupTable(
            max_groups=self.timing.max_groups, repeat_interval=self.timing.repeat_interval
        )
        self._schedule = BatchSchedule(self.timing.group_wait, self.timing.group_interval)
        self._filing = Filing(self._groups, self._schedule, self.tallies, self._lock, self._clock)
        self._clock_watch = ClockWatch()
        self._window = SendWindow(self.destination.limits.per_minute, self.destination.limits.per_second)
        self._backoff = Backoff()
        self._context = replace(self._base_context, host=lifecycle.host_name(), pid=os.getpid())
        self._overflow = 0
        self._undeliverable = 0
        self._dropped_reported = 0
        self._delivered = 0
        self._sent = 0
        self._failed = 0
        self._sends_started = 0
        self._in_flight = 0
        """Number of the send waiting for the platform's answer now (0: none)."""
        self._outwaited = 0
        """The send that a timed-out flush() already waited for: close() does not wait for it again."""
        self._report_from_thread = False
        self._batch_seed = f"{os.getpid():x}{os.urandom(4).hex()}"
        self._batch_number = 0
        self._suspended = ""
        """Why the destination is stopped by a configuration error ("" while it works); it probes
        again every `lifecycle.PROBE_EVERY_S` (as a pause), its records wait meanwhile."""
        self._suspension_said_at: float | None = None
        self._life_lock = threading.Lock()
        self._resume = False
        """close() ran while the thread still finished the previous close: go on instead of ending."""
        self._thread_ending = False
        self._final_done = threading.Event()
        """Set when the thread has made its last delivery attempt after close()."""
        self._thread_ident: int | None = None
        self._courier = Courier(self.destination, self._http, self._wake.set)
        self._silencer = None if self._controls is None else _silencer()(
            self._controls, self.destination, self.reporter, repeat_interval=self.timing.repeat_interval)
        self._flight: Digest | None = None
        """The digest whose message the courier carries now."""

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
            dropped = self._overflow + self._undeliverable
            return ChatStats(
                accepted=self._overflow + self._filing.processed + queued,
                dropped=dropped,
                pending=queued + self._groups.unsent,
                delivered_records=self._delivered,
                messages_sent=self._sent,
                messages_failed=self._failed,
                muted=0 if self._silencer is None else self._silencer.muted,
            )

    def flush(self, timeout: float) -> bool:
        """Send what is pending now and wait for the answer; False when not all was delivered."""
        thread = self._thread
        if (self._closed or thread is None or not thread.is_alive() or timeout <= 0 or self._suspended
                or lifecycle.holds_logging_lock()):
            return self._is_empty()
        done = threading.Event()
        deadline = self._clock() + timeout
        with self._lock:
            self._waiters.append((deadline, done))
            self._backoff = self._backoff.retry_now()  # flush() means "try now", even during a backoff
        self._wake.set()
        # Timed out, or released by the loop at the deadline just before the wait would have: the send
        # still out has been waited for, and close() does not wait for it again.
        if not done.wait(timeout) or self._clock() >= deadline:
            self._outwaited = self._in_flight
        return self._is_empty()

    def close(self, timeout: float) -> None:
        """Deliver what is pending within `timeout`, then stop the thread. Idempotent, bounded."""
        if self._closed:
            return
        self._closed = True
        with self._life_lock:
            self._resume = False  # a restart before this close is undone by it
        self._final_done.clear()
        self._closing = True
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self._wake.set()
            if lifecycle.holds_logging_lock():
                self._report_from_thread = True  # it delivers as soon as the caller lets go of the lock
                return
            in_flight = self._in_flight
            # logging.shutdown() calls flush() and then close(): one close_timeout for both, not two.
            self._final_done.wait(0.0 if in_flight and in_flight == self._outwaited else max(0.0, timeout))
        if not self._closed:
            return  # a record started the handler again meanwhile: its records are not given up
        if thread is None or not thread.is_alive():
            self._courier.close_client()
        self._report_undelivered(timeout)

    def restart(self) -> None:
        """Start again after close() (a record reached a closed handler): new threads, same accounting."""
        with self._life_lock:
            self._closed = False
            self._report_from_thread = False
            thread = self._thread
            if thread is not None and thread.is_alive() and not self._thread_ending:
                self._resume = True  # the thread still finishes the previous close(): it goes on after it
                return
            self._closing = False
            self._thread_ending = False
            self._start_thread()

    def close_at_child_exit(self) -> None:
        """Deliver within ``close_timeout``: the process leaves through ``os._exit`` right after."""
        self.close(self.timing.close_timeout)

    def _report_undelivered(self, timeout: float) -> None:
        left = self.stats().pending
        if left:
            flight = self._flight
            awaited = flight.total if flight is not None and self._courier.sent else 0
            message = lifecycle.undelivered_message(left, awaited, timeout, self._suspended)
            self.reporter.report("close", message)

    def _is_empty(self) -> bool:
        with self._lock:
            self._filing.file_counted(self._clock())
            return not self.buffer and self._groups.unsent == 0 and not self.tallies.owed

    # ---- background thread --------------------------------------------------------------

    def _start_thread(self) -> None:
        self._new_courier()
        self._thread = threading.Thread(target=self._run, name="chatlog-dispatcher", daemon=True)
        self._thread.start()

    def _new_courier(self) -> None:
        """A courier thread of its own (a previous one may still carry a request that hangs)."""
        if self._flight is not None:  # its answer will never be taken: keep the records, try again
            self._land(Outcome("retry", reason="no answer before close()"))
        self._courier = Courier(self.destination, self._http, self._wake.set)
        self._courier.start()

    def _run(self) -> None:
        self._thread_ident = threading.get_ident()
        mark_own_thread()
        try:
            while True:
                self._loop()
                self._final_flush()
                with self._life_lock:
                    if not self._resume:
                        self._thread_ending = True
                        self._final_done.set()  # also for a close() that came after the final flush
                        return
                    self._resume = False
                    self._closing = False
                    self._new_courier()
        finally:
            unmark_own_thread()

    def _loop(self) -> None:
        while True:
            try:
                delay = self.step()
            except BaseException as exc:
                self.reporter.report("internal", f"internal error, continuing: {type(exc).__name__}: {exc}")
                delay = self.timing.poll_interval
            if self._closing:
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
        if self.buffer or self._drain(budget_s=ROUND_BUDGET_S)[1]:
            self.idle = False
            return False
        return True

    def _final_flush(self) -> None:
        deadline = time.monotonic() + self.timing.close_timeout
        try:
            self._drain(budget_s=self.timing.close_timeout / 4)  # not what keeps arriving after close()
            self._await_flight(deadline)
            if self._flight is None and self._groups.unsent and not self._suspended:
                now = self._clock()
                wait = self._window.wait(now)
                if 0.0 < wait <= self.timing.close_timeout / 2:
                    time.sleep(wait)
                    wait = 0.0
                if wait == 0.0 and now >= self._backoff.paused_until:
                    self._launch(self._clock())
                    self._await_flight(deadline)
        except Exception as exc:
            self.reporter.report("internal", f"internal error at close: {type(exc).__name__}: {exc}")
        finally:
            self._courier.stop()
            self._release_waiters(force=True)
            self._final_done.set()
            if self._report_from_thread:  # close() did not wait for this thread: finish its work here
                self._report_undelivered(self.timing.close_timeout)

    def step(self) -> float:
        """One round: file queued records (for at most `ROUND_BUDGET_S`), send if a batch is due.

        Returns seconds until the next round is needed; ``inf`` when only a record, an answer or
        flush()/close() can make one necessary (the thread then sleeps until woken).
        """
        threaded = self._thread_ident is not None
        # A flush waits for every count.
        collect = not threaded or bool(self._waiters) or time.monotonic() >= self._next_collect
        emptied, filed = self._drain(budget_s=ROUND_BUDGET_S if threaded else None, collect=collect)
        if collect:
            self._next_collect = time.monotonic() + self.timing.poll_interval
        if filed:
            self._courier.warm()  # the client is built before the message is due, on chatlog's thread
        now = self._clock()
        self._follow_clock(now)
        wait = self._send_if_due(now)
        if not emptied:
            return 0.0
        if filed:  # records are arriving: file the next ones within a poll interval
            wait = min(wait, self.timing.poll_interval)
        return min(wait, self._waiter_wait(self._clock()))

    def _send_if_due(self, now: float) -> float:
        """Settle an answer that came, start a send that is due; seconds until something is due."""
        if self._flight is not None:  # a request is out: its answer wakes the thread
            outcome = self._courier.take()
            if outcome is None:
                self._release_waiters(now=now)
                return math.inf
            self._land(outcome)
            now = self._clock()
        self._release_waiters(now=now)
        if self._suspended and now < self._backoff.paused_until:
            self._release_waiters(force=True)  # flush() cannot help until the next probe
            return self._backoff.paused_until - now
        if not self._groups.unsent:
            self._release_waiters(force=True)
            return math.inf
        due = self._due_at(forced=bool(self._waiters))
        if now < due:
            return due - now
        wait = self._window.wait(now)
        if wait > 0:
            return wait
        self._launch(now)
        return math.inf if self._flight is not None else 0.0

    def _waiter_wait(self, now: float) -> float:
        with self._lock:
            return min((deadline - now for deadline, _ in self._waiters), default=math.inf)

    def _follow_clock(self, now: float) -> None:
        """After the clock stepped back, move every deadline back with it (see `ClockWatch`)."""
        shift = self._clock_watch.step_back(now)
        if not shift:
            return
        self._schedule.shift(shift)
        self._backoff = self._backoff.shifted(shift)
        with self._lock:
            self._waiters = [(deadline + shift, event) for deadline, event in self._waiters]

    def _due_at(self, *, forced: bool) -> float:
        ready = self._backoff.ready_at()
        return ready if forced else max(self._schedule.due_at(), ready)

    def _drain(self, budget_s: float | None = None, *, collect: bool = True) -> tuple[bool, int]:
        """File queued and counted records (`Filing.drain`); whether the buffer was emptied, how many."""
        return self._filing.drain(self.buffer, own=CHATLOG_THREADS, budget_s=budget_s,
                                  catch_up=self.timing.max_queue // 2, collect=collect)

    def _launch(self, now: float) -> None:
        """Render the digest of everything unsent and hand it to the courier (inline without threads)."""
        with self._lock:
            self._filing.file_counted(now)  # every count up to now, not up to the last collection
        if self._silence():
            return
        dropped = self._overflow - self._dropped_reported
        digest = self._groups.digest(now, self._context, dropped, self._mentions,
                                     batch=f"{self._batch_seed}-{self._batch_number}")
        if self._silencer is not None:
            digest = self._silencer.decorate(digest)
        payloads = self._render(digest)
        for _ in payloads:  # a platform's extra message (WeCom's mentions) counts against the limit too
            self._window.record(now)
        self._sends_started += 1
        self._in_flight = self._sends_started
        self._flight = digest
        if self._courier.running:
            self._courier.submit(payloads)
        else:
            self._land(self._courier.send(payloads))

    def _silence(self) -> bool:
        """Take muted groups out of the batch (the store is read here: once per send at most); True when
        nothing else was left to send."""
        silencer = self._silencer
        if silencer is None:
            return False
        silencer.refresh()
        with self._lock:
            silencer.take(self._groups)
            empty = not self._groups.unsent
        if empty:
            self._schedule.discarded()
        return empty

    def _await_flight(self, deadline: float) -> None:
        if self._flight is not None:
            outcome = self._courier.wait(deadline - time.monotonic())
            if outcome is not None:
                self._land(outcome)

    def _land(self, outcome: Outcome) -> None:
        """Settle the digest in flight with its answer (records counts, schedules retries)."""
        digest, self._flight = self._flight, None
        self._in_flight = 0
        if digest is not None:
            self._settle(digest, outcome, self._clock())

    def _render(self, digest: Digest) -> Payloads:
        try:
            return self.destination.render_all(digest)
        except Exception as exc:  # a renderer bug must not cost the alert: send plain text instead
            self.reporter.report("render", f"could not render the message ({type(exc).__name__}: {exc})")
            return self.destination.render_fallback(digest)

    def _settle(self, digest: Digest, outcome: Outcome, now: float) -> None:
        with self._lock:
            if outcome.ok:
                self._groups.mark_sent(digest, now)
                self._delivered += digest.total
                self._dropped_reported += digest.dropped
                self._sent += 1
                self._batch_number += 1
                self._schedule.delivered(now, digest.level, unsent_left=self._groups.unsent > 0)
                self._backoff = self._backoff.after_success()
            else:
                self._failed += 1
        if outcome.ok:
            if self._suspended:
                self._end_suspension()
            if self._silencer is not None:
                self._silencer.delivered(digest)  # store I/O: outside the lock stats() takes
        elif outcome.kind == "retry":
            self._schedule_retry(digest, outcome, now)
        elif outcome.kind == "rejected":
            self._reject(digest, outcome, now)
        else:
            self._suspend(outcome, now)

    def _reject(self, digest: Digest, outcome: Outcome, now: float) -> None:
        """The platform refused this message's content: drop its records (counted), keep going."""
        with self._lock:
            self._groups.mark_sent(digest, now, shown=False)
            self._undeliverable += digest.total
            self._batch_number += 1
            self._schedule.refused(now, unsent_left=self._groups.unsent > 0)
            self._backoff = self._backoff.after_success()
        self.reporter.report("rejected", f"{outcome.reason or 'the platform refused the message'}; "
                             f"its {digest.total} records are counted as dropped, later alerts still go out")

    def _schedule_retry(self, digest: Digest, outcome: Outcome, now: float) -> None:
        import random  # here, on this thread: `import chatlog` need not pay for it

        self._backoff = self._backoff.after_failure(
            now, retry_after=outcome.retry_after, max_backoff=self.timing.max_backoff,
            jitter=random.uniform(0.5, 1.0))
        self.reporter.report(
            "retry", f"sending failed: {outcome.reason}; {digest.total} records kept, "
            f"retrying in {self._backoff.retry_at - now:.0f} s",
        )

    def _suspend(self, outcome: Outcome, now: float) -> None:
        """A configuration error: keep the records, pause until the next probe, say so once an hour."""
        self._suspended = outcome.reason or "the platform refused the message"
        self._backoff = self._backoff.after_failure(now, retry_after=lifecycle.PROBE_EVERY_S,
                                                    max_backoff=self.timing.max_backoff, jitter=1.0)
        said = self._suspension_said_at
        if said is None or not 0.0 <= now - said < lifecycle.REPORT_SUSPENSION_EVERY_S:
            self._suspension_said_at = now
            self.reporter.report("permanent", f"{self._suspended}. Alerts to this destination wait (kept as "
                                 f"a summary) until it is fixed; trying again every "
                                 f"{lifecycle.PROBE_EVERY_S / 60:g} minutes.", every_s=0.0)

    def _end_suspension(self) -> None:
        self._suspended = ""
        self._suspension_said_at = None
        self.reporter.report("resumed", "the platform accepts messages again; the alerts kept "
                             "meanwhile were delivered", every_s=0.0)

    def _release_waiters(self, *, now: float | None = None, force: bool = False) -> None:
        """`force`: the flushes are answered (sent, or nothing to send). Otherwise forget the ones past
        their deadline without answering: each timed out on its own, and knows it did."""
        with self._lock:
            keep = []
            for deadline, event in self._waiters:
                if force:
                    event.set()
                elif now is None or now < deadline:
                    keep.append((deadline, event))
            self._waiters = keep

    # ---- fork ------------------------------------------------------------------------------

    def after_fork_in_child(self) -> None:
        """A forked child gets a fresh buffer, state and thread; the parent's records stay the parent's."""
        lifecycle.keep_inherited(self._courier.forget_client())
        was_running = self._thread is not None and not self._closed
        self.buffer.clear()
        self._overflow_lock = threading.Lock()
        # The parent's thread may have held the reporter's lock at the fork; here no one would release it.
        self.reporter = Reporter(self.destination.masked(), self._secrets)
        self._flight = None
        self._reset_state()
        self._thread = None
        if was_running:
            self._start_thread()


def _silencer() -> type[Silencer]:
    # Imported on first use: a handler without chatops= never loads sqlite3 and pathlib.
    from chatlog.state.honour import Silencer

    return Silencer
