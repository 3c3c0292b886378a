"""The courier: chatlog's sending thread, its HTTP client, and what keeps its own logging to itself.

One request at a time travels on the courier thread, so the dispatcher keeps draining and grouping
while a platform is slow or hangs. The ``httpx`` client (and ``httpx`` itself, ~30 ms of imports and
an SSL context) is created there, on first use: building a handler costs the application thread no
network or TLS set-up, and ``import chatlog`` does not import ``httpx``.

Everything the HTTP stack logs while chatlog sends (``httpx`` logs each request at INFO with the full
URL, token included; ``httpcore``/``h11`` log at DEBUG) is made on a chatlog thread and is dropped
before any handler sees it — chatlog's own or the application's (no feedback loop between handlers).
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.parse
from collections.abc import Callable

from chatlog._record import Record
from chatlog.platforms._base import Destination, Outcome, Payloads
from chatlog.platforms._http import watch_sends

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import httpx

HTTP_LOGGERS = ("httpx", "httpcore", "h11", "h2", "hpack", "py.warnings")
"""Loggers whose records chatlog's threads make: the HTTP stack (and every logger below them), and
``py.warnings`` (a warning raised on a chatlog thread, when the application captures warnings)."""

CHATLOG_THREADS: set[int] = set()
"""Idents of chatlog's live threads: a record made on one is chatlog's own and never grouped."""

_own = threading.local()
CLIENT_LOCK = threading.Lock()
"""Held while a client is built (imports included). `chatlog.lifecycle` takes it around ``fork()``: a
child forked while another thread is inside an import would inherit that module's lock held, and
its own courier would wait for it forever."""
_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
_PROXY_EXAMPLE = "proxy='http://proxy.example.com:3128'"
_VERIFY_EXAMPLE = "verify='/etc/ssl/certs/company-ca.pem' (or verify=False)"


def mark_own_thread() -> None:
    """Call first on a chatlog thread: what it logs is chatlog's own from now on."""
    _own.active = True
    CHATLOG_THREADS.add(threading.get_ident())


def unmark_own_thread() -> None:
    """Call last on a chatlog thread (its ident may be reused by an application thread)."""
    CHATLOG_THREADS.discard(threading.get_ident())


def on_own_thread() -> bool:
    """True on a chatlog thread."""
    return bool(getattr(_own, "active", False))


class _DropOwnRecords(logging.Filter):
    """Drops records made on chatlog's threads. A logger's filters see only records made on that very
    logger (not those of its children), so `install_log_filter` puts it on every HTTP-stack logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not on_own_thread()


_DROP_OWN = _DropOwnRecords()


def install_log_filter() -> None:
    """Put the filter on the HTTP-stack loggers and on every logger below them that exists now.

    Called when a handler is built and again after ``httpx`` was imported (its modules create the
    child loggers, e.g. ``httpcore.connection``, at import). Idempotent and cheap.
    """
    manager = logging.Logger.manager
    names = [*HTTP_LOGGERS, *(name for name in list(manager.loggerDict)
                              if name.partition(".")[0] in HTTP_LOGGERS[:-1])]
    for name in names:
        logger = logging.getLogger(name)
        if _DROP_OWN not in logger.filters:
            logger.addFilter(_DROP_OWN)


class HttpOptions(Record):
    """How the courier's HTTP client connects: total request deadline, proxy, certificate checks.

    The environment is honoured as by any HTTP client (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``,
    ``NO_PROXY``, ``SSL_CERT_FILE``, ``SSL_CERT_DIR``); an explicit `proxy` or `verify` wins.
    """

    timeout_s: float = 10.0
    """connect + send + read of one request, in total."""
    proxy: str | None = None
    verify: bool | str = True
    """True: the system's (or ``SSL_CERT_FILE``'s) CAs; a CA bundle file or directory; False: no check."""
    transport: Any = None
    """An ``httpx`` transport instead of the network (tests at the edge, like ``httpx.MockTransport``)."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """The proxy's password, for redaction."""
        password = urllib.parse.urlsplit(self.proxy).password if self.proxy else None
        return (password,) if password else ()

    def describe_proxy(self) -> str:
        """The proxy as ``scheme://host:port`` (never its credentials), or "" when none is set."""
        if self.proxy is None:
            return ""
        parts = urllib.parse.urlsplit(self.proxy)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"


def http_options(proxy: object = None, verify: object = True, timeout_s: float = 10.0) -> HttpOptions:
    """Validated `HttpOptions`; TypeError/ValueError naming the problem with an example (never a password)."""
    if proxy is not None:
        if not isinstance(proxy, str):
            raise TypeError(f"proxy must be a URL string, e.g. {_PROXY_EXAMPLE}; got {type(proxy).__name__}")
        _check_proxy(proxy)
    if not isinstance(verify, (bool, str)):
        raise TypeError(f"verify must be True, False or a CA bundle path, e.g. {_VERIFY_EXAMPLE}; "
                        f"got {type(verify).__name__}")
    if isinstance(verify, str) and not os.path.exists(verify):
        raise ValueError(f"verify={verify!r}: no such file or directory; give the CA bundle (PEM) that "
                         f"signs your proxy's or server's certificate, e.g. {_VERIFY_EXAMPLE}")
    return HttpOptions(timeout_s=timeout_s, proxy=proxy or None, verify=verify)


def _check_proxy(proxy: str) -> None:
    try:
        parts = urllib.parse.urlsplit(proxy)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        raise ValueError(f"proxy is not a valid URL, e.g. {_PROXY_EXAMPLE}") from None
    if parts.scheme not in _PROXY_SCHEMES or not parts.hostname:
        raise ValueError(f"proxy must be scheme://host[:port] with scheme http, https or socks5, "
                         f"e.g. {_PROXY_EXAMPLE}")
    if parts.scheme.startswith("socks") and not _importable("socksio"):
        raise ValueError("a socks5 proxy needs the socksio package (pip install 'httpx[socks]'), "
                         f"or use an HTTP proxy, e.g. {_PROXY_EXAMPLE}")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def make_client(options: HttpOptions) -> httpx.Client:
    """The HTTP client, built where it is used (the courier thread): imports ``httpx`` on first call."""
    with CLIENT_LOCK:
        import encodings.idna  # noqa: F401  (what the first request would import: see CLIENT_LOCK)
        import ssl

        import httpx

        verify: bool | ssl.SSLContext = options.verify if isinstance(options.verify, bool) else (
            ssl.create_default_context(capath=options.verify) if os.path.isdir(options.verify)
            else ssl.create_default_context(cafile=options.verify))
        client = httpx.Client(timeout=options.timeout_s, proxy=options.proxy, verify=verify, trust_env=True,
                              transport=options.transport, follow_redirects=False)
        install_log_filter()  # building the transport imported httpcore's modules, with their loggers
        return client


class Courier:
    """Carries one request at a time on its own thread, and owns the HTTP client.

    Without a thread (the dispatcher's injected-clock tests) `send` runs inline on the caller.
    """

    def __init__(self, destination: Destination, options: HttpOptions, done: Callable[[], None]) -> None:
        """`done` is called after each answer (it wakes the dispatcher)."""
        self._destination = destination
        self._options = options
        self._done = done
        self._cond = threading.Condition()
        self._job: Payloads | None = None
        self._result: Outcome | None = None
        self._stopped = False
        self._sent = False
        self._warm = False
        self._client: httpx.Client | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the courier thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def sent(self) -> bool:
        """True once the request under way was written in full (only its answer is outstanding)."""
        return self._sent

    def start(self) -> None:
        """Start the courier thread."""
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="chatlog-sender", daemon=True)
        self._thread.start()

    def submit(self, payloads: Payloads) -> None:
        """Hand over the next digest's payloads (one at a time: the previous answer was taken)."""
        with self._cond:
            self._job, self._result, self._sent = payloads, None, False
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

    def warm(self) -> None:
        """A record is waiting: build the client now, well before the message is due (importing httpx and
        loading the CA bundle take tens of milliseconds, longer when the application keeps the GIL busy).
        A process that never logs an alert never pays for it."""
        if self._client is None:
            with self._cond:
                self._warm = True
                self._cond.notify_all()

    def stop(self) -> None:
        """Let the thread end after the request it carries, if any; it closes the client then."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def send(self, payloads: Payloads) -> Outcome:
        """Sign, POST and classify one digest's payloads on the calling thread. Never raises."""
        try:
            if self._client is None:
                self._client = make_client(self._options)
            outcome = self._destination.send_all(self._client, payloads)
        except Exception as exc:  # the contract says send() never raises; a bug must not kill the courier
            return Outcome("retry", reason=f"internal error while sending: {type(exc).__name__}")
        proxy = self._options.describe_proxy()
        if proxy and outcome.kind == "retry" and outcome.answer == "":
            return Outcome(outcome.kind, outcome.retry_after, f"{outcome.reason} (through proxy {proxy})")
        return outcome

    def close_client(self) -> None:
        """Close the client (when no thread uses it). What httpcore logs meanwhile is chatlog's own,
        also when this runs on an application thread (close() after the courier ended)."""
        client, self._client = self._client, None
        if client is None:
            return
        was_own = on_own_thread()
        _own.active = True
        try:
            client.close()
        finally:
            _own.active = was_own

    def forget_client(self) -> httpx.Client | None:
        """After a fork: hand back the parent's client without closing it (closing could disturb the
        parent's connections); the child builds its own on first use."""
        client, self._client = self._client, None
        return client

    def _prepare(self) -> None:
        try:
            if self._client is None:
                self._client = make_client(self._options)
        except Exception:  # reported by the first send, which tries again
            self._client = None

    def _mark_sent(self) -> None:
        self._sent = True

    def _run(self) -> None:
        mark_own_thread()
        watch_sends(self._mark_sent)
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._job is not None or self._stopped or self._warm)
                    job, self._job, warm, self._warm = self._job, None, self._warm, False
                if warm and job is None and not self._stopped:
                    self._prepare()
                    continue
                if job is None:
                    return
                outcome = self.send(job)
                with self._cond:
                    self._result = outcome
                    self._cond.notify_all()
                self._done()
        finally:
            self.close_client()
            unmark_own_thread()
