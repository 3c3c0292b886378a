"""The background half of a handler: buffer, thread, timing, rate limits, retries, flush/close, fork.

Only this module owns a thread and a clock. The application thread touches nothing here
but `Dispatcher.buffer.append` (and `count_overflow` when the buffer is full).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import httpx

from chatlog._report import Reporter
from chatlog.capture import Captured, created_of, fingerprint, key_of, level_of, sample, thread_of
from chatlog.digest import Context, Digest, GroupTable, Mentions
from chatlog.entry import Entry
from chatlog.pacing import Backoff, SendWindow
from chatlog.platforms._base import Destination, Outcome, Payloads
from chatlog.state.controls import ControlStore
from chatlog.state.honour import Silencer
from chatlog.tally import Tallies
from chatlog.timing import BatchSchedule, ClockWatch, Timing

__all__ = ["ChatStats", "Courier", "Dispatcher", "SendWindow", "Timing"]

_DRAIN_BATCH = 256
"""Records filed per hold of the GIL: about half a millisecond of work, then `time.sleep(0)` lets a
waiting application thread run; without it, a log call made while the dispatcher drains waits for the
interpreter's 5 ms switch interval. Past half of ``max_queue`` the dispatcher catches up without
yielding: in a storm, dropping records is worse than a slower call."""
ROUND_BUDGET_S = 0.02
"""The longest one round files records before it looks at the clock: however fast records arrive,
a due message is sent (or its answer settled) at least this often, not after the buffer runs dry."""

_own_thread = threading.local()
"""``active`` is True on chatlog's dispatcher threads."""


class _DropOwnRequests(logging.Filter):
    """Drops httpx's request lines logged on chatlog's own threads: they carry the webhook URL with its
    token (or key) in the clear, and would reach every other handler of the application."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_own_thread, "active", False)


_DROP_OWN_REQUESTS = _DropOwnRequests()
logging.getLogger("httpx").addFilter(_DROP_OWN_REQUESTS)


@dataclass(frozen=True, slots=True)
class ChatStats:
    """A handler's accounting: ``accepted == delivered_records + dropped + pending + muted`` always holds."""

    accepted: int
    dropped: int
    """Records that will not reach the chat: buffer overflow, or a destination that refused for good."""
    pending: int
    delivered_records: int
    messages_sent: int
    messages_failed: int
    muted: int = 0
    """Records kept out of messages because their group was muted from the chat (ChatOps)."""


class Courier:
    """Carries one request at a time on its own thread, so the dispatcher keeps draining and grouping
    while a platform is slow or hangs (a 10 s request would otherwise let the buffer overflow)."""

    def __init__(self, deliver: Callable[[Payloads], Outcome], done: Callable[[], None]) -> None:
        """`deliver` sends one payload (never raises); `done` is called after each answer."""
        self._deliver = deliver
        self._done = done
        self._cond = threading.Condition()
        self._job: Payloads | None = None
        self._result: Outcome | None = None
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.ident: int | None = None
        """The courier thread's ident (its httpx records are chatlog's own, never the app's)."""

    @property
    def running(self) -> bool:
        """True while the courier thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the courier thread."""
        self._thread = threading.Thread(target=self._run, name="chatlog-sender", daemon=True)
        self._thread.start()

    def submit(self, payloads: Payloads) -> None:
        """Hand over the next digest's payloads (one at a time: the previous answer was taken)."""
        with self._cond:
            self._job, self._result = payloads, None
            self._cond.notify_all()

    def take(self) -> Outcome | None:
        """The answer to the submitted payload, once it has come; None while it is out."""
        with self._cond:
            result, self._result = self._result, None
            return result

    def wait(self, timeout: float) -> Outcome | None:
        """Wait up to `timeout` seconds for the answer, then `take` it."""
        with self._cond:
            self._cond.wait_for(lambda: self._result is not None, max(0.0, timeout))
        return self.take()

    def stop(self) -> None:
        """Let the thread end after the request it carries, if any."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _run(self) -> None:
        self.ident = threading.get_ident()
        _own_thread.active = True
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._stopped)
                job, self._job = self._job, None
            if job is None:
                return
            outcome = self._deliver(job)
            with self._cond:
                self._result = outcome
                self._cond.notify_all()
            self._done()


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
        controls: ControlStore | None = None,
    ) -> None:
        """`mentions` says who a digest of each level mentions;
        `context_fields` limits the ``extra`` fields kept per sample (None: all); `controls` is the
        ChatOps store whose mutes and acks this destination honours (read on this thread only).

        With ``start=False`` no thread runs: tests drive `step()` with an injected `clock`.
        """
        self.destination = destination
        self.timing = timing or Timing()
        self._base_context = context or Context()
        self._mentions = mentions or Mentions()
        self._clock = clock
        self._context_fields = context_fields
        self._controls = controls
        self.reporter = Reporter(destination.masked(), destination.secrets)
        self.buffer: deque[Captured] = deque()
        self.tallies = Tallies()
        """Counters of known groups' records, incremented on the application thread (`chatlog.tally`)."""
        self._overflow_lock = threading.Lock()
        self._closed = False
        self._reset_state()
        self._thread: threading.Thread | None = None
        _live_dispatchers.add(self)
        if start:
            self._start_thread()

    def _reset_state(self) -> None:
        """Everything that belongs to one process (called again in a forked child)."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.idle = False
        """True while the thread sleeps with nothing queued: the next record must `wake` it."""
        self.tallies.clear()
        self._waiters: list[tuple[float, threading.Event]] = []
        self._closing = False
        self._groups = GroupTable(
            max_groups=self.timing.max_groups, repeat_interval=self.timing.repeat_interval
        )
        self._schedule = BatchSchedule(self.timing.group_wait, self.timing.group_interval)
        self._clock_watch = ClockWatch()
        self._window = SendWindow(self.destination.limits.per_minute, self.destination.limits.per_second)
        self._backoff = Backoff()
        self._context = replace(self._base_context, host=socket.gethostname(), pid=os.getpid())
        self._client = httpx.Client(timeout=self.timing.request_timeout, trust_env=False)
        self._overflow = 0
        self._processed = 0
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
        self._batch_seed = f"{os.getpid():x}{random.getrandbits(32):08x}"
        self._batch_number = 0
        self._disabled_reason = ""
        self._thread_ident: int | None = None
        self._courier = Courier(self._deliver, self._wake.set)
        self._silencer = None if self._controls is None else Silencer(
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
    def own_thread_ids(self) -> tuple[int | None, int | None]:
        """Idents of chatlog's own threads for this handler: their records are never fed back."""
        return self._thread_ident, self._courier.ident

    def stats(self) -> ChatStats:
        """A consistent snapshot of the accounting."""
        with self._lock:
            self._file_counted(self._clock())
            queued = len(self.buffer) + self.tallies.owed
            dropped = self._overflow + self._undeliverable
            return ChatStats(
                accepted=self._overflow + self._processed + queued,
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
        if self._closed or thread is None or not thread.is_alive() or timeout <= 0 or _holds_logging_lock():
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
        self._closing = True
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self._wake.set()
            if _holds_logging_lock():
                self._report_from_thread = True  # it delivers as soon as the caller lets go of the lock
                return
            in_flight = self._in_flight
            # logging.shutdown() calls flush() and then close(): one close_timeout for both, not two.
            thread.join(0.0 if in_flight and in_flight == self._outwaited else max(0.0, timeout))
        if thread is None or not thread.is_alive():
            self._client.close()
        self._report_undelivered(timeout)

    def _report_undelivered(self, timeout: float) -> None:
        left = self.stats().pending
        if left:
            why = f": {self._disabled_reason}" if self._disabled_reason else ""
            self.reporter.report(
                "close", f"{left} log records were not delivered before close() gave up "
                f"(close_timeout={timeout:g} s){why}",
            )

    def _is_empty(self) -> bool:
        with self._lock:
            self._file_counted(self._clock())
            return not self.buffer and self._groups.unsent == 0 and not self.tallies.owed

    # ---- background thread --------------------------------------------------------------

    def _start_thread(self) -> None:
        self._courier.start()
        self._thread = threading.Thread(target=self._run, name="chatlog-dispatcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._thread_ident = threading.get_ident()
        _own_thread.active = True
        while True:
            try:
                delay = self.step()
            except BaseException as exc:
                self.reporter.report("internal", f"internal error, continuing: {type(exc).__name__}: {exc}")
                delay = self.timing.poll_interval
            if self._closing:
                break
            if delay > self.timing.poll_interval and not self._go_idle():
                delay = 0.0  # a record arrived just before the flag was up: file it now
            self._wake.wait(None if delay == math.inf else delay)
            self._wake.clear()
            self.idle = False
        self._final_flush()

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
            self._drain()
            self._await_flight(deadline)
            if self._flight is None and self._groups.unsent and not self._disabled_reason:
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
            if self._report_from_thread:  # close() did not wait for this thread: finish its work here
                self._report_undelivered(self.timing.close_timeout)
                self._client.close()

    def step(self) -> float:
        """One round: file queued records (for at most `ROUND_BUDGET_S`), send if a batch is due.

        Returns seconds until the next round is needed; ``inf`` when only a record, an answer or
        flush()/close() can make one necessary (the thread then sleeps until woken).
        """
        emptied, filed = self._drain(budget_s=ROUND_BUDGET_S if self._thread_ident is not None else None)
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
        if self._disabled_reason:
            self._discard_unsent()
            self._release_waiters(force=True)
            return math.inf
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

    def _drain(self, budget_s: float | None = None) -> tuple[bool, int]:
        """File queued and counted records, for at most `budget_s` (None: until the buffer is empty).

        Returns whether the buffer was emptied and how many records were filed."""
        buffer = self.buffer
        own = self.own_thread_ids
        threaded = self._thread_ident is not None
        catch_up = self.timing.max_queue // 2
        stop_at = math.inf if budget_s is None else time.perf_counter() + budget_s
        filed = 0
        while buffer:
            if threaded:
                if time.perf_counter() >= stop_at:
                    break
                if len(buffer) < catch_up:
                    time.sleep(0)  # hands the GIL to the application thread when it waits for it
            with self._lock:
                now = self._clock()
                for _ in range(min(len(buffer), _DRAIN_BATCH)):
                    item = buffer.popleft()
                    if thread_of(item) in own:
                        continue  # our own thread (httpx logging our requests): never feed ourselves
                    self._file(item, now)
                    filed += 1
        with self._lock:
            filed += self._file_counted(self._clock())
        return not buffer, filed

    def _file(self, item: Captured, now: float) -> None:
        """Count one captured record in its group (the group's first record becomes its sample)."""
        self._processed += 1
        level = level_of(item)
        try:
            key = fingerprint(item)
        except BaseException:
            key = (level, "?", "<unreadable record>", "", "")
        self._schedule.record_filed(now, level)
        self._groups.add(key, created_of(item), lambda: _safe_sample(item), level)
        tally_key = key_of(item)
        if tally_key is not None:
            self.tallies.link(tally_key, key, self._groups.sample_of(key), level, now)

    def _file_counted(self, now: float) -> int:
        """Count the records the application only counted (`chatlog.tally`) in their groups."""
        filed = 0
        created = time.time()
        for tally, count in self.tallies.collect(now):
            self._processed += count
            filed += count
            self._schedule.record_filed(now, tally.level)
            self._groups.add(tally.fingerprint, created, _given(tally.sample), tally.level, count=count)
        return filed

    def _launch(self, now: float) -> None:
        """Render the digest of everything unsent and hand it to the courier (inline without threads)."""
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
            self._land(self._deliver(payloads))

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

    def _deliver(self, payloads: Payloads) -> Outcome:
        try:
            return self.destination.send_all(self._client, payloads)
        except Exception as exc:  # the contract says send() never raises; a bug must not kill the courier
            return Outcome("retry", reason=f"internal error while sending: {type(exc).__name__}")

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
            if self._silencer is not None:
                self._silencer.delivered(digest)  # store I/O: outside the lock stats() takes
            return
        if outcome.kind == "retry":
            self._schedule_retry(digest, outcome, now)
        elif outcome.kind == "rejected":
            self._reject(digest, outcome, now)
        else:
            self._disable(outcome)

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
        self._backoff = self._backoff.after_failure(
            now, retry_after=outcome.retry_after, max_backoff=self.timing.max_backoff,
            jitter=random.uniform(0.5, 1.0))
        self.reporter.report(
            "retry", f"sending failed: {outcome.reason}; {digest.total} records kept, "
            f"retrying in {self._backoff.retry_at - now:.0f} s",
        )

    def _disable(self, outcome: Outcome) -> None:
        self._disabled_reason = outcome.reason or "the platform refused the message"
        self.reporter.report("permanent", f"{self._disabled_reason}. Alerts to this destination stop "
                             "until the configuration is fixed.", once=True)
        self._discard_unsent()

    def _discard_unsent(self) -> None:
        with self._lock:
            self._undeliverable += self._groups.discard_unsent()
            self._schedule.discarded()

    def _release_waiters(self, *, now: float | None = None, force: bool = False) -> None:
        with self._lock:
            keep = []
            for deadline, event in self._waiters:
                if force or (now is not None and now >= deadline):
                    event.set()
                else:
                    keep.append((deadline, event))
            self._waiters = keep

    # ---- fork ------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """A forked child gets a fresh buffer, state and thread; the parent's records stay the parent's."""
        _inherited_clients.append(self._client)  # closing it could disturb the parent's connections
        was_running = self._thread is not None and not self._closed
        self.buffer.clear()
        self._overflow_lock = threading.Lock()
        # The parent's thread may have held the reporter's lock at the fork; here no one would release it.
        self.reporter = Reporter(self.destination.masked(), self.destination.secrets)
        self._reset_state()
        self._thread = None
        if was_running:
            self._start_thread()


def _given(entry: Entry | None) -> Callable[[], Entry | None]:
    return lambda: entry


def _safe_sample(item: Captured) -> Entry:
    try:
        return sample(item)
    except BaseException as exc:
        return Entry(created=created_of(item), level=level_of(item), level_name="?", logger="?",
                     message=f"[chatlog could not read this record: {type(exc).__name__}]",
                     pathname="?", lineno=0, func="?")


def _holds_logging_lock() -> bool:
    """True when the calling thread holds logging's module lock, as dictConfig() and fileConfig() do
    while they flush and close the old handlers. The dispatcher cannot send meanwhile (httpx takes
    that lock to log its request), so waiting for it there would only stall every thread that logs."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    try:
        return callable(is_owned) and bool(is_owned())
    except Exception:
        return False


_live_dispatchers: weakref.WeakSet[Dispatcher] = weakref.WeakSet()
_inherited_clients: list[httpx.Client] = []


def _reinit_after_fork() -> None:
    for dispatcher in list(_live_dispatchers):
        with contextlib.suppress(Exception):  # a child that cannot alert must still run
            dispatcher._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
