"""The background half of a handler: buffer, thread, timing, rate limits, retries, flush/close.

The dispatcher thread owns the clock; the courier (`chatlog.courier`) carries requests; process
events (fork, child exits, restart after close) are `chatlog.lifecycle`'s. The application thread
touches nothing here but `Dispatcher.buffer.append` (and `count_overflow` when the buffer is full).
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from chatlog import lifecycle
from chatlog._report import Reporter
from chatlog.courier import (
    CHATLOG_THREADS,
    Courier,
    HttpOptions,
    install_log_filter,
    mark_own_thread,
    unmark_own_thread,
)
from chatlog.digest import Context, Digest, GroupTable
from chatlog.entry import (
    C_CREATED,
    C_LEVEL,
    C_MESSAGE,
    C_NAME,
    C_THREAD,
    Captured,
    captured_fingerprint,
    replay,
    safe_snapshot,
)
from chatlog.platforms._base import Destination, Outcome, Payload

Item = Captured
"""What the front end queues: `chatlog.entry.capture` of the record, its message formatted at log time."""

_DRAIN_BATCH = 256
"""Records filed per hold of the GIL: about half a millisecond of work, then `time.sleep(0)` lets a
waiting application thread run; without it, a log call made while the dispatcher drains waits for the
interpreter's 5 ms switch interval. Past half of ``max_queue`` the dispatcher catches up without
yielding: in a storm, dropping records is worse than a slower call."""

@dataclass(frozen=True, slots=True)
class ChatStats:
    """A handler's accounting: ``accepted == delivered_records + dropped + pending`` always holds."""

    accepted: int
    dropped: int
    """Records that will not reach the chat: buffer overflow, or a destination that refused for good."""
    pending: int
    delivered_records: int
    messages_sent: int
    messages_failed: int


@dataclass(frozen=True, slots=True)
class Timing:
    """When batches go out, in seconds (DESIGN section 4: Alertmanager's knobs)."""

    group_wait: float = 5.0
    group_interval: float = 60.0
    repeat_interval: float = 3600.0
    close_timeout: float = 5.0
    max_queue: int = 10_000
    max_groups: int = 200
    poll_interval: float = 0.05
    max_backoff: float = 300.0
    request_timeout: float = 10.0


class SendWindow:
    """Sliding-window rate limiter: never more than the limits within any 60 s or 1 s window.

    A token bucket would allow a full burst plus a minute's refill inside one 60 s window, which
    is exactly what DingTalk punishes with a 10-minute block; a window of send times cannot.
    """

    def __init__(self, per_minute: int, per_second: float | None) -> None:
        """Limits as in `Limits`."""
        self._per_minute = max(1, per_minute)
        self._per_second = per_second
        self._sent: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until a send is allowed (0.0 when allowed now)."""
        sent = self._sent
        while sent and (now - sent[0] >= 60.0 or sent[0] > now):
            sent.popleft()  # also forgets sends "in the future" after the clock jumped back
        waits = [0.0]
        if len(sent) >= self._per_minute:
            waits.append(sent[-self._per_minute] + 60.0 - now)
        if self._per_second is not None:
            burst = max(1, int(self._per_second))
            if len(sent) >= burst:
                waits.append(sent[-burst] + 1.0 - now)
        return max(waits)

    def record(self, now: float) -> None:
        """Remember one send at `now`."""
        self._sent.append(now)


class Dispatcher:
    """Drains one handler's buffer, groups records, and sends one digest per batch."""

    def __init__(
        self,
        destination: Destination,
        *,
        timing: Timing | None = None,
        context: Context | None = None,
        mentions: Mapping[int, Sequence[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
        context_fields: tuple[str, ...] | None = None,
        http: HttpOptions | None = None,
    ) -> None:
        """`mentions` maps a level to ids mentioned when a digest reaches that level;
        `context_fields` limits the ``extra`` fields kept per sample (None: all); `http` says how to
        connect (proxy, certificates; its ``timeout_s`` is replaced by ``timing.request_timeout``).

        With ``start=False`` no thread runs: tests drive `step()` with an injected `clock`.
        """
        self.destination = destination
        self.timing = timing or Timing()
        self._base_context = context or Context()
        self._mentions = {level: tuple(ids) for level, ids in (mentions or {}).items()}
        self._clock = clock
        self._context_fields = context_fields
        self._http = replace(http or HttpOptions(), timeout_s=self.timing.request_timeout)
        self._secrets = (*destination.secrets, *self._http.secrets)
        self.reporter = Reporter(destination.masked(), self._secrets)
        self.buffer: deque[Item] = deque()
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
        self._waiters: list[tuple[float, threading.Event]] = []
        self._closing = False
        self._groups = GroupTable(
            max_groups=self.timing.max_groups, repeat_interval=self.timing.repeat_interval
        )
        self._window = SendWindow(self.destination.limits.per_minute, self.destination.limits.per_second)
        self._context = replace(self._base_context, host=lifecycle.host_name(), pid=os.getpid())
        self._overflow = 0
        self._processed = 0
        self._undeliverable = 0
        self._dropped_reported = 0
        self._delivered = 0
        self._sent = 0
        self._failed = 0
        self._first_unsent: float | None = None
        self._sent_level = logging.NOTSET
        """Most severe level of the last delivered message."""
        self._escalated_at: float | None = None
        """When a record more severe than `_sent_level` arrived (it waits group_wait, not group_interval)."""
        self._last_send: float | None = None
        self._retry_at = -math.inf
        self._paused_until = -math.inf
        self._last_now: float | None = None
        self._sends_started = 0
        self._in_flight = 0
        """Number of the send waiting for the platform's answer now (0: none)."""
        self._outwaited = 0
        """The send that a timed-out flush() already waited for: close() does not wait for it again."""
        self._report_from_thread = False
        self._attempts = 0
        self._batch_seed = f"{os.getpid():x}{random.getrandbits(32):08x}"
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
        self._courier = Courier(self.destination, self._http, self._wake.set)
        self._flight: Digest | None = None
        """The digest whose message the courier carries now."""

    # ---- application side -------------------------------------------------------------

    def count_overflow(self) -> None:
        """Count one record that did not fit in the buffer (reported in the next message)."""
        with self._overflow_lock:
            self._overflow += 1

    def stats(self) -> ChatStats:
        """A consistent snapshot of the accounting."""
        with self._lock:
            queued = len(self.buffer)
            dropped = self._overflow + self._undeliverable
            return ChatStats(
                accepted=self._overflow + self._processed + queued,
                dropped=dropped,
                pending=queued + self._groups.unsent,
                delivered_records=self._delivered,
                messages_sent=self._sent,
                messages_failed=self._failed,
            )

    def flush(self, timeout: float) -> bool:
        """Send what is pending now and wait for the answer; False when not all was delivered."""
        thread = self._thread
        if (self._closed or thread is None or not thread.is_alive() or timeout <= 0 or self._suspended
                or lifecycle.holds_logging_lock()):
            return self._is_empty()
        done = threading.Event()
        with self._lock:
            self._waiters.append((self._clock() + timeout, done))
            self._retry_at = -math.inf  # flush() means "try now", even during a backoff
        self._wake.set()
        if not done.wait(timeout):
            self._outwaited = self._in_flight
        return self._is_empty()

    def close(self, timeout: float) -> None:
        """Deliver what is pending within `timeout`, then stop the thread. Idempotent, bounded."""
        if self._closed:
            return
        self._closed = True
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
            return not self.buffer and self._groups.unsent == 0

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
        mark_own_thread()
        try:
            while True:
                self._loop()
                self._final_flush()
                with self._life_lock:
                    if not self._resume:
                        self._thread_ending = True
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
            except Exception as exc:  # the loop must survive anything; say so and go on
                self.reporter.report("internal", f"internal error, continuing: {type(exc).__name__}: {exc}")
                delay = self.timing.poll_interval
            if self._closing:
                return
            self._wake.wait(delay)
            self._wake.clear()

    def _final_flush(self) -> None:
        deadline = time.monotonic() + self.timing.close_timeout
        try:
            self._drain(limit=len(self.buffer))
            self._await_flight(deadline)
            if self._flight is None and self._groups.unsent and not self._suspended:
                now = self._clock()
                wait = self._window.wait(now)
                if 0.0 < wait <= self.timing.close_timeout / 2:
                    time.sleep(wait)
                    wait = 0.0
                if wait == 0.0 and now >= self._paused_until:
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
        """One round: drain the buffer, send if a batch is due. Returns seconds until the next round."""
        self._drain()
        now = self._clock()
        self._follow_clock(now)
        if self._flight is not None:  # a request is out: keep draining until its answer comes
            outcome = self._courier.take()
            if outcome is None:
                self._release_waiters(now=now)
                return self.timing.poll_interval
            self._land(outcome)
            now = self._clock()
        self._release_waiters(now=now)
        if self._suspended and now < self._paused_until:
            self._release_waiters(force=True)  # flush() cannot help until the next probe
            return self.timing.poll_interval
        if not self._groups.unsent:
            self._release_waiters(force=True)
            return self.timing.poll_interval
        due = self._due_at(forced=bool(self._waiters))
        if now < due:
            return min(self.timing.poll_interval, due - now)
        wait = self._window.wait(now)
        if wait > 0:
            return min(self.timing.poll_interval, wait)
        self._launch(now)
        return self.timing.poll_interval

    def _follow_clock(self, now: float) -> None:
        """After the clock stepped back, move every deadline back with it: a wait keeps its length
        instead of growing by the jump. (A step forward needs nothing: deadlines just pass.)"""
        last, self._last_now = self._last_now, now
        if last is None or now >= last:
            return
        shift = now - last
        if self._first_unsent is not None:
            self._first_unsent += shift
        if self._escalated_at is not None:
            self._escalated_at += shift
        if self._last_send is not None:
            self._last_send += shift
        self._retry_at += shift
        self._paused_until += shift
        with self._lock:
            self._waiters = [(deadline + shift, event) for deadline, event in self._waiters]

    def _due_at(self, *, forced: bool) -> float:
        if forced:
            return max(self._paused_until, self._retry_at)
        first = self._first_unsent if self._first_unsent is not None else self._clock()
        due = first + self.timing.group_wait
        if self._last_send is not None:
            due = max(due, self._last_send + self.timing.group_interval)
        if self._escalated_at is not None:  # worse news than the last message: do not hold it back
            due = min(due, self._escalated_at + self.timing.group_wait)
        return max(due, self._retry_at, self._paused_until)

    def _drain(self, limit: int | None = None) -> None:
        """File the buffered records (at most `limit`: at close, not what keeps arriving meanwhile)."""
        buffer = self.buffer
        own = CHATLOG_THREADS
        threaded = self._thread is not None
        catch_up = self.timing.max_queue // 2
        left = len(buffer) if limit is None else limit
        while buffer and (left > 0 if limit is not None else not self._closing):  # close() seen in a storm
            if threaded and len(buffer) < catch_up:
                time.sleep(0)  # hands the GIL to the application thread when it waits for it
            with self._lock:
                batch = min(len(buffer), _DRAIN_BATCH, left if limit is not None else _DRAIN_BATCH)
                left -= batch
                for _ in range(batch):
                    item = buffer.popleft()
                    if item[C_THREAD] in own:
                        continue  # our own thread (httpx logging our requests): never feed ourselves
                    self._add(item)

    def _add(self, item: Captured) -> None:
        if self._groups.unsent == 0:
            self._first_unsent = self._clock()
            self._courier.warm()
        self._processed += 1
        try:
            key = captured_fingerprint(item)
        except Exception:
            key = (item[C_LEVEL], str(item[C_NAME]), "<unreadable record>", "", "")
        level = item[C_LEVEL] if isinstance(item[C_LEVEL], int) else logging.ERROR
        if level > self._sent_level and self._escalated_at is None and self._last_send is not None:
            self._escalated_at = self._clock()
        self._groups.add(key, item[C_CREATED],
                         lambda: safe_snapshot(replay(item), item[C_MESSAGE], self._context_fields),
                         level)

    def _launch(self, now: float) -> None:
        """Render the digest of everything unsent and hand it to the courier (inline without threads)."""
        digest = self._groups.digest(now, self._context, self._overflow - self._dropped_reported, ())
        digest = replace(digest, mentions=self._mentions_for(digest.level),
                         batch=f"{self._batch_seed}-{self._batch_number}")
        payload = self._render(digest)
        self._window.record(now)
        self._sends_started += 1
        self._in_flight = self._sends_started
        self._flight = digest
        if self._courier.running:
            self._courier.submit(payload)
        else:
            self._land(self._courier.send(payload))

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

    def _render(self, digest: Digest) -> Payload:
        try:
            return self.destination.render(digest)
        except Exception as exc:  # a renderer bug must not cost the alert: send plain text instead
            self.reporter.report("render", f"could not render the message ({type(exc).__name__}: {exc})")
            text = f"{digest.level_name} ×{digest.total}: " + "; ".join(
                g.sample.message[:200] for g in digest.groups[:5])
            return self.destination.render_text(text)

    def _settle(self, digest: Digest, outcome: Outcome, now: float) -> None:
        with self._lock:
            if outcome.ok:
                self._groups.mark_sent(digest, now)
                self._delivered += digest.total
                self._dropped_reported += digest.dropped
                self._sent += 1
                self._batch_number += 1
                self._last_send = now
                self._sent_level = digest.level
                self._escalated_at = None
                self._attempts = 0
                self._retry_at = -math.inf
                if self._groups.unsent == 0:
                    self._first_unsent = None
            else:
                self._failed += 1
        if outcome.ok:
            if self._suspended:
                self._end_suspension()
            return
        if outcome.kind == "retry":
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
            self._last_send = now
            self._attempts = 0
            if self._groups.unsent == 0:
                self._first_unsent = None
        self.reporter.report("rejected", f"{outcome.reason or 'the platform refused the message'}; "
                             f"its {digest.total} records are counted as dropped, later alerts still go out")

    def _schedule_retry(self, digest: Digest, outcome: Outcome, now: float) -> None:
        self._attempts += 1
        backoff = min(self.timing.max_backoff, 2.0 ** (self._attempts - 1)) * random.uniform(0.5, 1.0)
        self._retry_at = now + max(backoff, outcome.retry_after)
        if outcome.retry_after:
            self._paused_until = now + outcome.retry_after
        self.reporter.report(
            "retry", f"sending failed: {outcome.reason}; {digest.total} records kept, "
            f"retrying in {self._retry_at - now:.0f} s",
        )

    def _suspend(self, outcome: Outcome, now: float) -> None:
        """A configuration error: keep the records, pause until the next probe, say so once an hour."""
        self._suspended = outcome.reason or "the platform refused the message"
        self._paused_until = now + lifecycle.PROBE_EVERY_S
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

    def _mentions_for(self, level: int) -> tuple[str, ...]:
        ids: list[str] = []
        for threshold, names in sorted(self._mentions.items()):
            if level >= threshold:
                ids.extend(name for name in names if name not in ids)
        return tuple(ids)

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
