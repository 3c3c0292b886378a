"""Sending one digest at a time: render it, count it in the send window, hand it to the courier, and
settle its answer (`chatlog.settlement`).

The dispatcher decides when a digest is due and builds it; `Sender.send` takes it from there. Without
a courier thread (``start=False``, tests driving `Dispatcher.step`) the request is made inline and
settled at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chatlog import lifecycle
from chatlog._report import Reporter
from chatlog.courier import Courier, HttpOptions
from chatlog.digest import Digest
from chatlog.pacing import SendWindow
from chatlog.platforms._base import Destination, Outcome, Payloads
from chatlog.settlement import Settlement


class InFlight:
    """The send whose answer the dispatcher awaits: its digest and its number (one at a time)."""

    def __init__(self) -> None:
        """No send yet."""
        self.digest: Digest | None = None
        """The digest whose message the courier carries now (None: no send is out)."""
        self.number = 0
        """Number of the send out now (0: none); sends are numbered from 1 in this process."""
        self._waited_by_flush = 0
        """Number of the send a timed-out flush() already waited for: close() does not wait for it again."""
        self._started = 0

    def flush_gave_up(self) -> None:
        """A flush() timed out waiting for the send out now."""
        self._waited_by_flush = self.number

    def flush_waited(self) -> bool:
        """True when a flush() already waited in vain for the send out now."""
        return bool(self.number) and self.number == self._waited_by_flush

    def start(self, digest: Digest) -> None:
        """A message for `digest` goes out now."""
        self._started += 1
        self.number = self._started
        self.digest = digest

    def end(self) -> Digest | None:
        """Its answer came (or never will): the digest that was out, if any."""
        digest, self.digest = self.digest, None
        self.number = 0
        return digest


class Sender:
    """One destination's sends: the send window, the courier, the send in flight and its settlement."""

    def __init__(self, destination: Destination, http: HttpOptions, settlement: Settlement,
                 reporter: Reporter, clock: Callable[[], float], wake: Callable[[], None]) -> None:
        """`wake` starts a dispatcher round (an answer came); `clock` is the dispatcher's."""
        self.settlement = settlement
        self.window = SendWindow(destination.limits.per_minute, destination.limits.per_second)
        self.in_flight = InFlight()
        self.courier = Courier(destination, http, wake)
        self._destination = destination
        self._http = http
        self._reporter = reporter
        self._clock = clock
        self._wake = wake

    @property
    def busy(self) -> bool:
        """True while a message is out (its answer wakes the dispatcher)."""
        return self.in_flight.digest is not None

    def new_courier(self) -> None:
        """A courier thread of its own (a previous one may still carry a request that hangs)."""
        if self.busy:  # its answer will never be taken: keep the records, try again
            self.settle(Outcome("retry", reason="no answer before close()"))
        self.courier = Courier(self._destination, self._http, self._wake)
        self.courier.start()

    def send(self, digest: Digest, now: float, admit: Callable[[int], float] | None = None) -> float:
        """Render `digest` and hand its message to the courier (sent inline without threads). With
        `admit` (a fleet's shared budget) only once it reserves the sends the message takes: else
        nothing is sent and the seconds it says to wait are returned (0.0: sent)."""
        payloads = self._render(digest)
        if admit is not None:
            wait = admit(len(payloads))
            if wait > 0:
                return wait
        for _ in payloads:  # a platform's extra message (WeCom's mentions) counts against the limit too
            self.window.record(now)
        self.in_flight.start(digest)
        if self.courier.running:
            self.courier.submit(payloads)
        else:
            self.settle(self.courier.send(payloads))
        return 0.0

    def take_answer(self) -> bool:
        """Settle the answer to the send out, if it came; False while it is still awaited."""
        outcome = self.courier.take()
        if outcome is None:
            return False
        self.settle(outcome)
        return True

    def await_answer(self, deadline: float) -> None:
        """Wait until `deadline` (``time.monotonic()``) for the answer to the send out, and settle it."""
        if self.busy:
            outcome = self.courier.wait(deadline - time.monotonic())
            if outcome is not None:
                self.settle(outcome)

    def settle(self, outcome: Outcome) -> None:
        """Settle the send in flight with its answer (`Settlement`: counts, retries, suspension)."""
        digest = self.in_flight.end()
        if digest is not None:
            self.settlement.settle(digest, outcome, self._clock())

    def last_send_allowed(self, close_timeout: float) -> bool:
        """Whether close() may send what is unsent: no send out, not suspended, not paused, and the
        send window open within half of `close_timeout` (waited for here)."""
        if self.busy or self.settlement.suspension:
            return False
        now = self._clock()
        wait = self.window.wait(now)
        if 0.0 < wait <= close_timeout / 2:
            time.sleep(wait)
            wait = 0.0
        return wait == 0.0 and now >= self.settlement.backoff.paused_until

    def undelivered_message(self, left: int, timeout: float) -> str:
        """What close() says of `left` records it did not see delivered (`lifecycle.undelivered_message`)."""
        carried = self.in_flight.digest
        awaited = carried.total if carried is not None and self.courier.sent else 0
        return lifecycle.undelivered_message(left, awaited, timeout, self.settlement.suspension.reason)

    def _render(self, digest: Digest) -> Payloads:
        try:
            return self._destination.render_all(digest)
        except Exception as exc:  # a renderer bug must not cost the alert: send plain text instead
            self._reporter.report("render", f"could not render the message ({type(exc).__name__}: {exc})")
            return self._destination.render_fallback(digest)
