"""A handler's life beyond one thread: fork, child exits, shutdown, close and restart, suspension.

- **Fork**: a forked child gives every live dispatcher fresh state and threads (`os.register_at_fork`).
- **Child exits**: multiprocessing children (fork, forkserver, spawn) and Celery prefork children leave
  through ``os._exit``, which skips ``atexit`` and so ``logging.shutdown()``. chatlog hooks the exits
  they do run — multiprocessing's finalisers (``multiprocessing.util.Finalize``) and Celery's
  ``worker_process_shutdown`` signal — and delivers there within ``close_timeout``. Neither package is
  imported here: the hooks are installed only when the application already imported them.
- **dictConfig**: `holds_logging_lock` tells when the caller holds logging's module lock.
- **Restart**: a closed handler that receives a record starts again, except while the interpreter exits
  (`interpreter_exiting`).
- **Suspension**: a destination stopped by a configuration error probes again every `PROBE_EVERY_S`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable

from chatlog.courier import CLIENT_LOCK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    import httpx

PROBE_EVERY_S = 600.0
"""A destination stopped by a configuration error (bad secret, clock off by an hour) tries again this
often, with the next message: the configuration or the clock may have been fixed meanwhile."""

REPORT_SUSPENSION_EVERY_S = 3600.0
"""How often stderr repeats that a destination is still stopped (not once per probe)."""


if TYPE_CHECKING:  # a type only: `typing` (for Protocol) is not imported at run time
    class Lifecycle(Protocol):
        """What lifecycle needs of a dispatcher."""

        def after_fork_in_child(self) -> None:
            """Fresh state and threads in a forked child."""

        def close_at_child_exit(self) -> None:
            """Deliver what is pending within ``close_timeout``: the process is about to ``os._exit``."""


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_inherited_clients: list[httpx.Client] = []
"""Clients a forked child inherited: kept referenced, never closed (that could disturb the parent)."""
_hooks_lock = threading.Lock()
_fork_hook_installed = False
_multiprocessing_hooked = False
_celery_hooked = False


def track(dispatcher: Lifecycle) -> None:
    """Follow `dispatcher` through forks and child exits (installs the process hooks on first use)."""
    global _fork_hook_installed
    _live.add(dispatcher)
    with _hooks_lock:
        if not _fork_hook_installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(before=CLIENT_LOCK.acquire, after_in_parent=CLIENT_LOCK.release,
                                after_in_child=_after_fork_in_child)
            _fork_hook_installed = True
    hook_child_exits()


def keep_inherited(client: httpx.Client | None) -> None:
    """Keep a client inherited through fork referenced (see `_inherited_clients`)."""
    if client is not None:
        _inherited_clients.append(client)


def _after_fork_in_child() -> None:
    global _hooks_lock
    CLIENT_LOCK.release()  # taken by this (the forking) thread before the fork
    _hooks_lock = threading.Lock()  # the parent may have held it at the fork
    for dispatcher in list(_live):
        with contextlib.suppress(Exception):  # a child that cannot alert must still run
            dispatcher.after_fork_in_child()
    with contextlib.suppress(Exception):
        hook_child_exits()


# --- child processes that leave through os._exit ------------------------------------------------------


class _Anchor:
    """A long-lived object for multiprocessing's after-fork registry (it keeps weak references)."""


_ANCHOR = _Anchor()


def hook_child_exits() -> None:
    """Install the multiprocessing and Celery exit hooks, each once and only if already imported."""
    global _multiprocessing_hooked, _celery_hooked
    with _hooks_lock:
        if not _multiprocessing_hooked and "multiprocessing.util" in sys.modules:
            util = sys.modules["multiprocessing.util"]
            # A multiprocessing child clears the finaliser registry when it starts, then runs the
            # after-fork callbacks (spawn and forkserver children too): register the finaliser there.
            util.register_after_fork(_ANCHOR, _register_finaliser)
            _register_finaliser(_ANCHOR)
            _multiprocessing_hooked = True
        if not _celery_hooked and "celery" in sys.modules:
            with contextlib.suppress(Exception):
                signals = importlib.import_module("celery.signals")  # celery itself is imported already
                signals.worker_process_shutdown.connect(_on_celery_child_exit, weak=False)
                _celery_hooked = True


def _register_finaliser(_anchor: object) -> None:
    import multiprocessing.util

    # exitpriority >= 0 runs first in multiprocessing's exit function, before children are joined.
    multiprocessing.util.Finalize(None, close_all, exitpriority=10)


def _on_celery_child_exit(**_signal: object) -> None:
    close_all()


def close_all() -> None:
    """Deliver every live dispatcher's pending records within its ``close_timeout`` (the process exits)."""
    for dispatcher in list(_live):
        with contextlib.suppress(Exception):
            dispatcher.close_at_child_exit()


# --- close and restart, meeting the dispatcher's thread ------------------------------------------------


class Handshake:
    """close() and restart() meeting one dispatcher thread: whether its loop ends, and when its last
    delivery attempt after close() is done."""

    def __init__(self) -> None:
        """A running thread, not closing."""
        self.closing = False
        """close() asked the thread's loop to end after this round (the final flush follows)."""
        self.final_done = threading.Event()
        """Set when the thread has made its last delivery attempt after close()."""
        self._lock = threading.Lock()
        self._resume = False
        """close() ran while the thread still finished the previous close: go on instead of ending."""
        self._ending = False

    def close(self) -> None:
        """close() begins: the loop ends after this round; a restart before this close is undone."""
        with self._lock:
            self._resume = False
        self.final_done.clear()
        self.closing = True

    def restart(self, thread: threading.Thread | None, start: Callable[[], None]) -> None:
        """A record reached a closed handler: a `thread` still finishing the previous close goes on
        after it; otherwise `start` starts a new one."""
        with self._lock:
            if thread is not None and thread.is_alive() and not self._ending:
                self._resume = True
                return
            self.closing = False
            self._ending = False
            start()

    def thread_ends(self, resume: Callable[[], None]) -> bool:
        """The thread made its final flush: True when it ends now; False when a restart came meanwhile
        (then `resume` runs and the loop goes on)."""
        with self._lock:
            if not self._resume:
                self._ending = True
                self.final_done.set()  # also for a close() that came after the final flush
                return True
            self._resume = False
            self.closing = False
            resume()
            return False


# --- logging's lock, interpreter exit, restart ------------------------------------------------------------


def holds_logging_lock() -> bool:
    """True when the calling thread holds logging's module lock, as dictConfig() and fileConfig() do
    while they flush and close the old handlers. The dispatcher cannot send meanwhile (httpx takes
    that lock to log its request), so waiting for it there would only stall every thread that logs."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    try:
        return callable(is_owned) and bool(is_owned())
    except Exception:
        return False


def interpreter_exiting() -> bool:
    """True once the interpreter has begun to exit (``atexit`` and later): no thread may start then."""
    return sys.is_finalizing() or not threading.main_thread().is_alive()


def host_name() -> str:
    """This machine's name, as ``socket.gethostname()`` gives it (without importing ``socket`` where the
    system says it directly: ``import chatlog`` should cost a cron job as little as possible)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket

    return socket.gethostname()


def register_for_shutdown(handler: logging.Handler) -> None:
    """Put a restarted handler back on the list ``logging.shutdown()`` flushes and closes at exit.

    ``dictConfig()`` empties that list when it closes the old handlers; a handler that starts again
    afterwards would otherwise not deliver at exit. (Private API, used defensively.)
    """
    handlers = getattr(logging, "_handlerList", None)
    add = getattr(logging, "_addHandlerRef", None)
    if handlers is None or not callable(add):
        return
    with contextlib.suppress(Exception):
        if not any(ref() is handler for ref in list(handlers)):
            add(handler)


def undelivered_message(left: int, answer_awaited: int, timeout: float, reason: str) -> str:
    """What close() says about records it could not see delivered: those in a request that was sent
    but whose answer did not come in time are not called lost (the platform may well have them)."""
    parts = []
    if answer_awaited:
        parts.append(f"{answer_awaited} log records were sent, answer not awaited")
    if left > answer_awaited:
        parts.append(f"{left - answer_awaited} log records were not delivered")
    why = f": {reason}" if reason else ""
    return f"{'; '.join(parts)} before close() gave up (close_timeout={timeout:g} s){why}"
