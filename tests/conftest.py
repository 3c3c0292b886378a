"""Shared fixtures: handlers that are always closed and whose accounting is always checked.

Also the session-wide secret scan: every token, key and secret that the tests configure (fake bots,
destination strings, handler arguments) is registered, and every stderr/stdout/log line the suite
produces (captured per test phase, read through ``capsys``/``capfd``, written by chatlog's reporter at
any time, printed by subprocesses such as the demo), every ChatHandler's repr and the text of every
exception a ChatHandler raises at construction is scanned for them. A leak fails the test phase in
which it was seen, and the session when it was seen outside any test.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import chatlog._report
import chatlog.cli
import chatlog.destinations
import chatlog.handler
from chatlog import ChatHandler, ChatStats
from chatlog.destinations import credentials_in, platform_classes
from chatlog.testing import FakePlatforms

# Each test process is its own fleet unless a test says otherwise (subprocesses inherit this):
# the tests that share a store (tests/test_fleet.py, tests/test_fleet_redis.py) pass state= explicitly.
os.environ["CHATLOG_STATE"] = "memory"


def assert_accounting(stats: ChatStats) -> None:
    """The invariant every handler keeps: nothing disappears silently (muted records are counted too)."""
    assert stats.accepted == stats.delivered_records + stats.dropped + stats.pending + stats.muted, stats


class FakeClock:
    """A clock that moves only when told to (or when `sleep` is called)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A clock standing still unless moved (a test module may override it with its own clock)."""
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakePlatforms]:
    """Fake platforms whose clock (token expiry, uuid window, rate windows) stands still unless moved."""
    with FakePlatforms(clock=clock) as running:
        yield running


@pytest.fixture
def make_handler() -> Iterator[Callable[..., ChatHandler]]:
    """Build ChatHandlers; each is closed after the test and its accounting checked."""
    made: list[ChatHandler] = []

    def make(url: str, **options: Any) -> ChatHandler:
        options.setdefault("group_wait", 0.05)
        options.setdefault("group_interval", 0.1)
        options.setdefault("close_timeout", 2.0)
        handler = ChatHandler(url, **options)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()
        assert_accounting(handler.stats())


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A logger of the application's, isolated from the root logger and cleaned up after."""
    logger = logging.getLogger(f"app.test.{id(object())}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)


def attach_only(logger: logging.Logger, handler: logging.Handler) -> None:
    """Make `handler` the logger's only handler, for tests that time log calls or log records that
    cannot be formatted: pytest (9+) also attaches its log capture to non-propagating loggers during
    the test, and that handler formats every record and raises on the ones that cannot be formatted."""
    for other in list(logger.handlers):
        logger.removeHandler(other)
    logger.addHandler(handler)


# --- the session-wide secret scan ------------------------------------------------------------------------

MIN_SECRET_CHARS = 8
"""Shorter values ("T", "KEY", "TOKEN") are placeholders that also occur in chatlog's own examples."""

_PLACEHOLDERS = " ".join(cls.example for cls in platform_classes())
_SECRETS: set[str] = set()
_LEAKS: list[str] = []
_reported = 0
_scan_lock = threading.Lock()
_handlers: weakref.WeakSet[ChatHandler] = weakref.WeakSet()


def register_secret(value: object) -> None:
    """Remember a configured secret: from now on no scanned text may contain it (or its URL-quoted form)."""
    if isinstance(value, str) and len(value) >= MIN_SECRET_CHARS and value not in _PLACEHOLDERS:
        with _scan_lock:
            _SECRETS.add(value)


def secrets_in(text: str) -> list[str]:
    """The registered secrets that `text` contains, shortened for display (never printed whole)."""
    with _scan_lock:
        known = list(_SECRETS)
    found = []
    for secret in known:
        forms = {secret, urllib.parse.quote_plus(secret), urllib.parse.quote(secret, safe="")}
        if any(form in text for form in forms):
            found.append(f"{secret[:3]}…({len(secret)} chars)")
    return found


def scan(where: str, text: object) -> None:
    """Record a leak when `text` holds a registered secret."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if isinstance(text, str) and text:
        found = secrets_in(text)
        if found:
            with _scan_lock:
                _LEAKS.append(f"{where}: {', '.join(found)}")


def _secrets_in_destination(url: object, options: dict[str, Any]) -> list[object]:
    """Every part of a destination string or handler argument that is a credential, as the platform
    registry declares it (secret options, `Destination.credentials`): a new platform is scanned too."""
    return list(credentials_in(url, options))


def _registering_add_bot(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def add_bot(self: FakePlatforms, *args: Any, **kwargs: Any) -> Any:
        bot = original(self, *args, **kwargs)
        register_secret(bot.token)
        register_secret(bot.secret)
        return bot

    return add_bot


def _registering_add_app(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def add_app(self: FakePlatforms, *args: Any, **kwargs: Any) -> Any:
        app = original(self, *args, **kwargs)
        register_secret(app.app_secret)
        return app

    return add_app


def _registering_resolve(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def resolve(url: str, **kwargs: Any) -> Any:
        for value in _secrets_in_destination(url, {**kwargs, **(kwargs.get("options") or {})}):
            register_secret(value)
        try:
            resolved = original(url, **kwargs)
        except Exception as exc:
            scan("exception from resolve()", f"{exc}\n{exc!r}")
            raise
        for value in resolved.destination.secrets:
            register_secret(value)
        scan("repr of a destination", repr(resolved.destination))
        return resolved

    return resolve


def _scanning_handler_init(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def init(self: ChatHandler, url: str, **kwargs: Any) -> None:
        for value in _secrets_in_destination(url, kwargs):
            register_secret(value)
        try:
            original(self, url, **kwargs)
        except Exception as exc:
            scan("exception from ChatHandler()", f"{exc}\n{exc!r}\n{exc.__cause__!r}")
            raise
        _handlers.add(self)

    return init


def _scanning_write_stderr(original: Callable[[str], bool]) -> Callable[[str], bool]:
    @functools.wraps(original)
    def write_stderr(line: str) -> bool:
        scan("a chatlog stderr line", line)
        return original(line)

    return write_stderr


def _scanning_run(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        scan("a subprocess's stdout", result.stdout)
        scan("a subprocess's stderr", result.stderr)
        return result

    return run


def _scanning_readouterr(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def readouterr(self: Any) -> Any:
        captured = original(self)
        scan("output read with capsys/capfd", captured.out)
        scan("output read with capsys/capfd", captured.err)
        return captured

    return readouterr


@pytest.fixture(scope="session", autouse=True)
def secret_scan() -> Iterator[None]:
    """Install the scan for the whole session (see the module docstring)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FakePlatforms, "add_bot", _registering_add_bot(FakePlatforms.add_bot))
        if hasattr(FakePlatforms, "add_app"):  # Feishu/Lark app bots: the app secret
            patch.setattr(FakePlatforms, "add_app", _registering_add_app(FakePlatforms.add_app))
        wrapped_resolve = _registering_resolve(chatlog.destinations.resolve)
        for module in (chatlog.destinations, chatlog.handler, chatlog.cli):
            patch.setattr(module, "resolve", wrapped_resolve)
        patch.setattr(ChatHandler, "__init__", _scanning_handler_init(ChatHandler.__init__))
        wrapped_write = _scanning_write_stderr(chatlog._report.write_stderr)
        for module in (chatlog._report, chatlog.cli):
            patch.setattr(module, "write_stderr", wrapped_write)
        patch.setattr(subprocess, "run", _scanning_run(subprocess.run))
        capture = pytest.CaptureFixture
        patch.setattr(capture, "readouterr", _scanning_readouterr(capture.readouterr))
        with FakePlatforms() as fake:  # the demo's fixed signing secrets (its tokens are made per run)
            chatlog.cli._demo_bots(fake)
        yield


@pytest.fixture
def find_secrets() -> Callable[[str], list[str]]:
    """The scan's `secrets_in` (through a fixture: ``from tests.conftest import`` loads a second copy of
    this module, with an empty registry)."""
    return secrets_in


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Scan what this phase printed or logged (and, at teardown, every handler's repr); fail on a leak."""
    global _reported
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    for title, content in report.sections:
        if title.endswith(f" {call.when}"):
            scan(f"{title}", content)
    if call.when == "teardown":
        for handler in list(_handlers):
            scan("repr of a ChatHandler", repr(handler))
            scan("ChatHandler stats", repr(handler.stats()))
    with _scan_lock:
        new, _reported = _LEAKS[_reported:], len(_LEAKS)
    if new:
        report.outcome = "failed"
        report.longrepr = "secret leak(s): " + "; ".join(new)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run for a leak seen outside any test phase (e.g. a background thread after its test)."""
    with _scan_lock:
        late = _LEAKS[_reported:]
    if late:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("secret leak(s) outside tests: " + "; ".join(late), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
