"""Closing a dispatcher: `close` on the caller's thread, `final_flush` as the thread's last work.

Both belong to `chatlog.dispatcher.Dispatcher` (its close() and its thread's end); the close/restart
handshake between the two is `chatlog.lifecycle.Handshake`.
"""

from __future__ import annotations

import threading
import time

from chatlog import lifecycle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatlog.dispatcher import Dispatcher


def close(d: Dispatcher, timeout: float) -> None:
    """`Dispatcher.close`: deliver what is pending within `timeout`, then stop the thread."""
    if d._closed:
        return
    d._closed = True
    d._life.close()
    thread = d._thread
    if thread is not None and thread.is_alive() and thread is not threading.current_thread():
        d._wake.set()
        if lifecycle.holds_logging_lock():
            d._report_from_thread = True  # it delivers as soon as the caller lets go of the lock
            return
        # logging.shutdown() calls flush() and then close(): one close_timeout for both, not two.
        waited = d._sender.in_flight.flush_waited()
        d._life.final_done.wait(0.0 if waited else max(0.0, timeout))
    if not d._closed:
        return  # a record started the handler again meanwhile: its records are not given up
    if thread is None or not thread.is_alive():
        d._sender.courier.close_client()
    report_undelivered(d, timeout)


def report_undelivered(d: Dispatcher, timeout: float) -> None:
    """Tell stderr how many records this process leaves undelivered (not those handed to a fleet)."""
    if left := d.stats().pending - d._fleet.handed_over():  # those outlive the process
        d.reporter.report("close", d._sender.undelivered_message(left, timeout))


def final_flush(d: Dispatcher) -> None:
    """The thread's last work: file what was queued, await the answer out, send what is left, stop."""
    deadline = time.monotonic() + d.timing.close_timeout
    try:
        # Not what keeps arriving after close().
        d._filing.drain(d.buffer, budget_s=d.timing.close_timeout / 4)
        d._sender.await_answer(deadline)
        alone = not d._fleet.final(deadline, lambda: d._launch(d._clock()))  # else handed over
        if alone and d._groups.unsent and d._sender.last_send_allowed(d.timing.close_timeout):
            d._launch(d._clock())
            d._sender.await_answer(deadline)
    except Exception as exc:
        d.reporter.report("internal", f"internal error at close: {type(exc).__name__}: {exc}")
    finally:
        d._sender.courier.stop()
        d._waiters.answer_all()
        d._life.final_done.set()
        if d._report_from_thread:  # close() did not wait for this thread: finish its work here
            report_undelivered(d, d.timing.close_timeout)
