"""A platform that misbehaves, a process that forks or exits, a clock that jumps: the application is
never slowed or hurt, chatlog says what happened in a few stderr lines, every record is accounted for,
and once the platform answers again the backlog arrives as one summary.

Timers are driven by an injected clock where the point is timing (pauses, jumps); where the point is
the application thread, a real handler runs against the fake platforms over real HTTP.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from chatlog import ChatHandler
from chatlog.capture import capture
from chatlog.courier import HttpOptions
from chatlog.destinations import resolve
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.platforms import _text
from chatlog.testing import FakeBot, FakePlatforms, Fault
from tests.conftest import assert_accounting, attach_only

APP_CALL_LIMIT_S = 0.5
"""The slowest single log call we accept while chatlog struggles. Wall time on a shared 2-core machine
includes GIL hand-overs and the OS scheduling other processes; chatlog's own share is microseconds
(see benchmarks/emit.py), while a send on the app thread would cost the 10 s slow or hung answer."""

SIGNED: dict[str, dict[str, Any]] = {
    "feishu": {"secret": "feishu-faults-secret"},
    "dingtalk": {"secret": "SECfaults0123456789", "keyword": "alert"},
    "wecom": {},
}


def chatlog_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("chatlog:")]


def log_timed(logger: logging.Logger, count: int, template: str = "order %s failed", first: int = 0) -> float:
    """Log `count` records; the slowest call, in seconds."""
    worst = 0.0
    for i in range(first, first + count):
        start = time.perf_counter()
        logger.error(template, i)
        worst = max(worst, time.perf_counter() - start)
    return worst


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- the platform misbehaves: a real handler, real HTTP ---------------------------------------------------

BROKEN_ANSWERS = [
    ("hang", "wecom", Fault.hang()),
    ("reset-mid-response", "feishu", Fault.reset()),
    ("garbage-not-http", "dingtalk", Fault.garbage()),
    ("http-500", "wecom", Fault.status(500, b"Internal Server Error")),
    ("http-502", "feishu", Fault.status(502, b"<html><body>502 Bad Gateway</body></html>")),
    ("http-503", "dingtalk", Fault.status(503)),
    ("http-429", "wecom", Fault.status(429, b"", {"Retry-After": "1"})),
    ("malformed-json", "feishu",
     Fault.status(200, b'{"code": 0, "msg": "succ', {"Content-Type": "application/json"})),
    ("empty-body", "dingtalk", Fault.empty()),
    ("success-with-unexpected-schema", "wecom", Fault.json({"result": "success", "data": [1, 2, 3]})),
]


@pytest.mark.parametrize(("platform", "fault"), [(p, f) for _, p, f in BROKEN_ANSWERS],
                         ids=[name for name, _, _ in BROKEN_ANSWERS])
def test_broken_answer_keeps_the_app_fast_and_the_backlog_arrives_as_one_summary(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str], platform: str, fault: Fault,
) -> None:
    bot = fake_platforms.add_bot(platform, **SIGNED[platform])
    bot.fail_next(1, fault)
    handler = make_handler(bot.url)
    attach_only(app_logger, handler)
    app_logger.error("order %s failed", 0)
    assert len(bot.wait_received(1, timeout=5.0)) == 1
    worst = log_timed(app_logger, 500, first=1)  # during the hang, or the backoff after the failure
    if fault.kind == "hang":
        bot.release()

    messages = bot.wait_for(1, timeout=8.0)  # no flush(): the retry comes by itself
    assert handler.flush(timeout=3.0)
    assert len(messages) == 1 and len(bot.messages) == 1
    assert "×501" in bot.texts()[0]
    stats = handler.stats()
    assert (stats.delivered_records, stats.dropped, stats.pending) == (501, 0, 0)
    assert (stats.messages_sent, stats.messages_failed) == (1, 1)
    assert worst < APP_CALL_LIMIT_S, f"one log call took {worst * 1000:.1f} ms"
    lines = chatlog_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "retrying" in lines[0], lines


def test_connection_refused_is_retried_until_the_platform_listens(
    make_handler: Callable[..., ChatHandler], app_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    token = "c0ffee" * 10 + "beef"
    handler = make_handler(f"http://127.0.0.1:{port}/robot/send?access_token={token}")
    attach_only(app_logger, handler)
    app_logger.error("order %s failed", 0)
    assert wait_until(lambda: handler.stats().messages_failed >= 1, timeout=5.0)
    worst = log_timed(app_logger, 500, first=1)
    with FakePlatforms(port=port) as fake:
        bot = fake.add_bot("dingtalk", token=token)
        assert len(bot.wait_for(1, timeout=8.0)) == 1
        assert handler.flush(timeout=3.0)
        assert "×501" in bot.texts()[0] and len(bot.messages) == 1
    stats = handler.stats()
    assert (stats.delivered_records, stats.dropped, stats.pending, stats.messages_sent) == (501, 0, 0, 1)
    assert worst < APP_CALL_LIMIT_S
    lines = chatlog_lines(capsys.readouterr().err)
    assert 1 <= len(lines) <= 2 and f"connection to 127.0.0.1:{port} refused" in lines[0], lines


def test_answer_slower_than_the_request_timeout_is_retried_and_the_backlog_follows(
    fake_platforms: FakePlatforms, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = fake_platforms.add_bot("dingtalk", **SIGNED["dingtalk"])
    bot.fail_next(1, Fault.slow(10.0))  # answers after 10 s; chatlog gives up on it after 0.5 s
    timing = Timing(group_wait=0.05, group_interval=0.1, close_timeout=1.0, request_timeout=0.5)
    dispatcher = Dispatcher(resolve(bot.url).destination, timing=timing)
    try:
        put(dispatcher, 0)
        assert wait_until(lambda: dispatcher.stats().messages_failed == 1, timeout=5.0)
        for i in range(1, 300):  # during the backoff after the timeout
            put(dispatcher, i)
        assert len(bot.wait_for(1, timeout=8.0)) == 1
        assert dispatcher.flush(3.0)
        assert "×300" in bot.texts()[0]
        stats = dispatcher.stats()
        assert (stats.delivered_records, stats.messages_failed, stats.pending) == (300, 1, 0)
        assert "no answer from 127.0.0.1" in capsys.readouterr().err
    finally:
        dispatcher.close(1.0)
        assert_accounting(dispatcher.stats())


# --- the platform answers "too fast" or "never": an injected clock, real HTTP -------------------------------


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_dispatcher(clock: Clock) -> Iterator[Callable[..., Dispatcher]]:
    """Dispatchers without a thread on the injected clock; closed after the test, accounting checked."""
    made: list[Dispatcher] = []

    def make(url: str, **timing: Any) -> Dispatcher:
        chosen = Timing(**{"group_wait": 5.0, "group_interval": 60.0, "close_timeout": 1.0, **timing})
        dispatcher = Dispatcher(resolve(url).destination, timing=chosen, clock=clock, start=False)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.close(1.0)
        assert_accounting(dispatcher.stats())


def put(dispatcher: Dispatcher, i: int, message: str = "order %s failed") -> None:
    """What ChatHandler.emit does: queue the record with its formatted message."""
    record = logging.LogRecord("shop", logging.ERROR, "shop.py", 7, message, (i,), None)
    dispatcher.queue(capture(record, record.getMessage()))


def run_for(dispatcher: Dispatcher, clock: Clock, seconds: float, *, log_from: int | None = None) -> int:
    """Step once per simulated second (logging one record per second when `log_from` is given)."""
    logged = 0
    for _ in range(int(seconds)):
        if log_from is not None:
            put(dispatcher, log_from + logged)
            logged += 1
        dispatcher.step()
        clock.now += 1.0
    return logged


class _BodyCutOff(httpx.SyncByteStream):
    """An answer whose connection is reset after its first bytes (the fake server resets before any)."""

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"errcode": 0, "err'
        raise httpx.ReadError("[Errno 104] Connection reset by peer")


def test_connection_reset_mid_response_is_retried_and_nothing_is_lost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers: list[str] = []

    def platform(request: httpx.Request) -> httpx.Response:
        if not answers:
            answers.append("cut off")
            return httpx.Response(200, headers={"Content-Length": "30"}, stream=_BodyCutOff())
        answers.append("ok")
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    clock = Clock()
    dispatcher = Dispatcher(resolve("dingtalk://c0ffee0123456789").destination, clock=clock, start=False,
                            http=HttpOptions(transport=httpx.MockTransport(platform)))
    try:
        put(dispatcher, 0)
        run_for(dispatcher, clock, 6)
        assert answers == ["cut off"] and dispatcher.stats().pending == 1
        for i in range(1, 100):
            put(dispatcher, i)
        run_for(dispatcher, clock, 2)
        assert answers == ["cut off", "ok"]
        stats = dispatcher.stats()
        assert (stats.delivered_records, stats.pending, stats.messages_failed) == (100, 0, 1)
        assert "network error (ReadError)" in capsys.readouterr().err
    finally:
        dispatcher.close(1.0)
        assert_accounting(dispatcher.stats())


RATE_LIMIT_ANSWERS = [
    ("feishu-11232", "feishu",
     Fault.json({"code": 11232, "msg": "create message service trigger rate limit"}), 10.0),
    ("feishu-9499-too-many-request", "feishu",
     Fault.json({"code": 9499, "msg": "too many request"}, 400), 5.0),
    ("feishu-429-ratelimit-reset", "feishu",
     Fault.status(429, b'{"code":99991400,"msg":"request trigger frequency limit"}',
                  {"x-ogw-ratelimit-reset": "7", "Content-Type": "application/json"}), 7.0),
    ("feishu-429-bare", "feishu", Fault.status(429), 60.0),
    ("dingtalk-130101", "dingtalk",
     Fault.json({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}), 600.0),
    ("dingtalk-410101", "dingtalk", Fault.json({"errcode": 410101, "errmsg": "发送速度太快而限流"}), 600.0),
    ("wecom-45009", "wecom", Fault.json({"errcode": 45009, "errmsg": "api freq out of limit"}), 60.0),
    ("wecom-45033", "wecom", Fault.json({"errcode": 45033, "errmsg": "api concurrent out of limit"}), 5.0),
    ("wecom-busy", "wecom", Fault.json({"errcode": -1, "errmsg": "system busy"}), 5.0),
]


@pytest.mark.parametrize(("platform", "fault", "pause_s"), [case[1:] for case in RATE_LIMIT_ANSWERS],
                         ids=[case[0] for case in RATE_LIMIT_ANSWERS])
def test_rate_limit_answer_pauses_for_its_time_then_delivers_everything_at_once(
    fake_platforms: FakePlatforms, make_dispatcher: Callable[..., Dispatcher], clock: Clock,
    capsys: pytest.CaptureFixture[str], platform: str, fault: Fault, pause_s: float,
) -> None:
    bot = fake_platforms.add_bot(platform, rate_limit=False)
    bot.fail_next(1, fault)
    dispatcher = make_dispatcher(bot.url)
    put(dispatcher, 0)
    dispatcher.step()
    clock.now += 5.0
    dispatcher.step()
    assert len(bot.received) == 1 and dispatcher.stats().messages_failed == 1
    logged = run_for(dispatcher, clock, pause_s - 1, log_from=1)
    assert len(bot.received) == 1, "chatlog knocked again before the pause was over"
    clock.now += 2.0
    dispatcher.step()
    assert len(bot.messages) == 1
    assert f"×{logged + 1:,}" in bot.texts()[0]
    stats = dispatcher.stats()
    assert (stats.delivered_records, stats.dropped, stats.pending) == (logged + 1, 0, 0)
    assert len(chatlog_lines(capsys.readouterr().err)) == 1


@pytest.mark.parametrize("rate_code", [None, 130101], ids=["410100", "130101"])
def test_dingtalk_block_after_its_per_minute_limit_is_waited_out_by_every_sharer(
    clock: Clock, rate_code: int | None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two processes share one robot; each keeps 18/min, together they cross DingTalk's 20/min.
    with FakePlatforms(clock=clock) as fake:
        bot = fake.add_bot("dingtalk", rate_code=rate_code)
        timing = Timing(group_wait=1.0, group_interval=1.0, close_timeout=1.0)
        workers = [Dispatcher(resolve(bot.url).destination, timing=timing, clock=clock, start=False)
                   for _ in range(2)]
        try:
            logged = [0, 0]
            for second in range(700):
                for n, worker in enumerate(workers):
                    if second < 120:
                        put(worker, second, f"worker {n} failed at %s")
                        logged[n] += 1
                    worker.step()
                clock.now += 1.0
            received = bot.received
            refused = [r for r in received if not r.accepted]
            assert len(refused) == 2, [r.answer for r in refused]  # one per sharer, then silence
            block_start = refused[0].at
            during_block = [r for r in received if block_start <= r.at < block_start + 600.0]
            assert during_block == refused
            assert sum(r.accepted for r in received) == 20 + 2  # the last two carry each backlog
            for worker, count in zip(workers, logged, strict=True):
                stats = worker.stats()
                assert (stats.delivered_records, stats.pending, stats.dropped) == (count, 0, 0)
            assert len(chatlog_lines(capsys.readouterr().err)) == 2
        finally:
            for worker in workers:
                worker.close(1.0)
                assert_accounting(worker.stats())


def _wrong_secret(bot: FakeBot) -> str:
    assert bot.secret is not None
    return bot.url.replace(bot.secret, bot.secret.replace("right", "wrong"))


def _without_keyword(bot: FakeBot) -> str:
    return bot.url.replace("keyword=alert", "")


def _unknown_token(bot: FakeBot) -> str:
    return bot.url.replace(bot.token, bot.token[::-1])


def _as_is(bot: FakeBot) -> str:
    return bot.url


PERMANENT_ERRORS = [
    ("feishu-bad-signature", "feishu", {"secret": "right-feishu-secret"}, _wrong_secret, None, "secret="),
    ("feishu-keyword-missing", "feishu", {"keyword": "alert"}, _without_keyword, None, "keyword="),
    ("feishu-ip-not-allowed", "feishu", {}, _as_is, Fault.json({"code": 19022, "msg": "Ip Not Allowed"}),
     "IP address"),
    ("feishu-token-invalid", "feishu", {}, _unknown_token, None, "webhook URL"),
    ("dingtalk-bad-signature", "dingtalk", {"secret": "SECright0123456789"}, _wrong_secret, None, "SEC"),
    ("dingtalk-keyword-missing", "dingtalk", {"keyword": "alert"}, _without_keyword, None, "keyword="),
    ("dingtalk-ip-not-allowed", "dingtalk", {}, _as_is,
     Fault.json({"errcode": 310000, "errmsg": "ip 203.0.113.9 not in whitelist"}), "allow-list"),
    ("dingtalk-token-invalid", "dingtalk", {}, _unknown_token, None, "webhook URL"),
    ("wecom-key-invalid", "wecom", {}, _unknown_token, None, "webhook URL"),
]


@pytest.mark.parametrize(("platform", "options", "url_of", "fault", "fix"), [c[1:] for c in PERMANENT_ERRORS],
                         ids=[c[0] for c in PERMANENT_ERRORS])
def test_permanent_error_is_explained_once_and_the_destination_waits_for_the_next_probe(
    fake_platforms: FakePlatforms, make_dispatcher: Callable[..., Dispatcher], clock: Clock,
    capsys: pytest.CaptureFixture[str], platform: str, options: dict[str, Any],
    url_of: Callable[[FakeBot], str], fault: Fault | None, fix: str,
) -> None:
    bot = fake_platforms.add_bot(platform, rate_limit=False, **options)
    if fault is not None:
        bot.fail_next(1, fault)
    dispatcher = make_dispatcher(url_of(bot), group_interval=5.0)
    put(dispatcher, 0)
    dispatcher.step()
    clock.now += 5.0
    dispatcher.step()
    requests = len(fake_platforms.all_received())
    assert 1 <= requests <= 2  # a signature refusal is signed afresh once
    logged = run_for(dispatcher, clock, 590, log_from=1)  # the next probe is 600 s after the refusal
    assert len(fake_platforms.all_received()) == requests
    assert bot.messages == []
    stats = dispatcher.stats()
    assert (stats.dropped, stats.pending, stats.delivered_records) == (0, logged + 1, 0)
    assert not dispatcher.flush(1.0)  # undeliverable for now: False, at once
    lines = chatlog_lines(capsys.readouterr().err)
    assert len(lines) == 1 and fix in lines[0] and "every 10 minutes" in lines[0], lines


# --- the clock jumps (injected clock) ---------------------------------------------------------------------

HOURS = 3 * 3600.0


@pytest.fixture
def quiet_bot(fake_platforms: FakePlatforms) -> FakeBot:
    return fake_platforms.add_bot("dingtalk", rate_limit=False)


def test_clock_jumping_back_hours_does_not_hold_a_waiting_batch_for_hours(
    quiet_bot: FakeBot, make_dispatcher: Callable[..., Dispatcher], clock: Clock
) -> None:
    dispatcher = make_dispatcher(quiet_bot.url)
    put(dispatcher, 1)
    dispatcher.step()
    clock.now -= HOURS
    dispatcher.step()
    clock.now += 5.0  # group_wait, as counted after the jump
    dispatcher.step()
    assert len(quiet_bot.messages) == 1


def test_clock_jumping_back_hours_keeps_group_interval_and_backoff_short(
    quiet_bot: FakeBot, make_dispatcher: Callable[..., Dispatcher], clock: Clock
) -> None:
    dispatcher = make_dispatcher(quiet_bot.url)
    put(dispatcher, 1)
    run_for(dispatcher, clock, 6)
    assert len(quiet_bot.messages) == 1
    clock.now -= HOURS
    put(dispatcher, 2)
    run_for(dispatcher, clock, 61)  # group_interval after the last send
    assert len(quiet_bot.messages) == 2
    quiet_bot.fail_next(1, Fault.json({"errcode": 130101, "errmsg": "send too fast"}))  # pause 600 s
    put(dispatcher, 3)
    run_for(dispatcher, clock, 61)
    assert dispatcher.stats().messages_failed == 1
    clock.now -= HOURS
    run_for(dispatcher, clock, 601)
    assert len(quiet_bot.messages) == 3 and dispatcher.stats().pending == 0


def test_clock_jumping_forward_hours_sends_the_backlog_once_not_a_burst(
    quiet_bot: FakeBot, make_dispatcher: Callable[..., Dispatcher], clock: Clock
) -> None:
    dispatcher = make_dispatcher(quiet_bot.url)
    quiet_bot.fail_next(1, Fault.status(503))
    put(dispatcher, 0)
    run_for(dispatcher, clock, 6)
    assert dispatcher.stats().messages_failed == 1
    for n in range(300):
        put(dispatcher, n, f"failure kind {n} at %s")
    clock.now += HOURS
    for _ in range(20):
        dispatcher.step()
    assert len(quiet_bot.messages) == 1
    assert dispatcher.stats().pending == 0 and dispatcher.stats().delivered_records == 301
    put(dispatcher, 1)
    dispatcher.step()
    clock.now += 4.0
    dispatcher.step()
    assert len(quiet_bot.messages) == 1  # group_interval (60 s) still holds after the jump
    run_for(dispatcher, clock, 60)
    assert len(quiet_bot.messages) == 2


def test_clock_jumping_back_hours_does_not_stretch_repeat_interval(
    quiet_bot: FakeBot, make_dispatcher: Callable[..., Dispatcher], clock: Clock
) -> None:
    dispatcher = make_dispatcher(quiet_bot.url, repeat_interval=600.0)
    put(dispatcher, 1)
    run_for(dispatcher, clock, 6)
    clock.now -= HOURS
    put(dispatcher, 2)
    run_for(dispatcher, clock, 61)
    clock.now += 600.0
    put(dispatcher, 3)
    run_for(dispatcher, clock, 61)
    texts = quiet_bot.texts()
    assert len(texts) == 3
    assert "more since last alert" not in texts[2], "a repeat window outlived repeat_interval"


# --- processes: fork, exit, shutdown ------------------------------------------------------------------------


def run_in_child(work: Callable[[], int], timeout: float = 15.0) -> int:
    """Fork; the child runs `work` and exits with its code (never returning into pytest)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: "multi-threaded, fork() may deadlock"
        pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = work()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish within {timeout} s (deadlock?)")


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@needs_fork
def test_fork_during_a_send_gives_the_child_its_own_working_handler(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("wecom")
    bot.fail_next(1, Fault.hang())
    handler = make_handler(bot.url)
    attach_only(app_logger, handler)
    app_logger.error("parent record")
    assert len(bot.wait_received(1, timeout=5.0)) == 1  # the parent's thread now waits on the platform

    def child() -> int:
        app_logger.error("child record")
        stats = handler.stats()
        delivered = handler.flush(timeout=5.0)
        after = handler.stats()
        return 0 if delivered and stats.accepted == 1 and after.delivered_records == 1 else 3

    assert run_in_child(child) == 0
    bot.release()
    assert handler.flush(timeout=5.0)
    texts = bot.texts()
    assert sum("child record" in t for t in texts) == 1 and sum("parent record" in t for t in texts) == 1
    assert handler.stats().delivered_records == 1


@needs_fork
def test_fork_with_a_full_buffer_starts_the_child_empty_and_the_parent_reports_its_drops(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("feishu")
    bot.fail_next(1, Fault.hang())
    handler = make_handler(bot.url, max_queue=100)
    attach_only(app_logger, handler)
    app_logger.error("order %s failed", 0)
    assert len(bot.wait_received(1, timeout=5.0)) == 1
    # New groups (a known group's records are only counted) into a buffer of 100, 150 at a time until
    # some are dropped: the dispatcher files some meanwhile, on a loaded machine all of a first burst.
    logged, worst = 1, 0.0
    for _ in range(20):
        worst = max([worst, *(log_timed(app_logger, 1, f"order {i} failed: %s", first=i)
                              for i in range(logged, logged + 150))])
        logged += 150
        if handler.stats().dropped:
            break
    dropped = handler.stats().dropped
    assert 1 <= dropped <= logged - 101

    def child() -> int:
        before = handler.stats()
        app_logger.error("child record")
        delivered = handler.flush(timeout=5.0)
        after = handler.stats()
        fresh = (before.accepted, before.dropped, before.pending) == (0, 0, 0)
        return 0 if fresh and delivered and (after.accepted, after.delivered_records) == (1, 1) else 3

    assert run_in_child(child) == 0
    bot.release()
    assert handler.flush(timeout=5.0)
    stats = handler.stats()
    assert (stats.accepted, stats.dropped, stats.pending) == (logged, dropped, 0)
    assert stats.delivered_records == logged - dropped
    assert any(f"{_text.plural(dropped, 'record')} dropped" in t for t in bot.texts())
    assert worst < APP_CALL_LIMIT_S


@needs_fork
def test_child_forked_while_chatlog_writes_a_warning_can_still_warn(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    bot.set_fault(Fault.hang())
    handler = make_handler(bot.url, close_timeout=0.3)
    attach_only(app_logger, handler)
    # The fork lands while the dispatcher thread holds its reporter's lock (writing a warning); in
    # the child that thread is gone, so a lock inherited as held would deadlock every later warning.
    reporter_lock = handler._dispatcher.reporter._lock
    with reporter_lock:

        def child() -> int:
            app_logger.error("child record")
            handler.close()  # reports what it could not deliver: must not hang
            return 0

        assert run_in_child(child, timeout=10.0) == 0


SUBPROCESS_TIMEOUT_S = 30


def test_exit_while_the_server_hangs_takes_at_most_close_timeout(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("wecom")
    bot.set_fault(Fault.hang())
    script = textwrap.dedent(f"""
        import atexit, time
        atexit.register(lambda: print("exit took", time.monotonic() - END, flush=True))
        import logging, chatlog
        logging.getLogger().addHandler(chatlog.ChatHandler({bot.url!r}, group_wait=0.05, close_timeout=1.0))
        logging.getLogger("cron").error("nightly export failed: %s", "disk full")
        time.sleep(0.3)  # the send is under way, and hangs
        END = time.monotonic()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    took = float(re.findall(r"exit took ([\d.]+)", result.stdout)[0])
    assert took < 1.0 + 0.3, f"exit took {took:.2f} s with close_timeout=1.0"
    lines = chatlog_lines(result.stderr)
    assert len(lines) == 1 and "1 log records were sent, answer not awaited" in lines[0], result.stderr
    assert bot.token not in result.stderr


def test_exit_with_pending_alerts_after_logging_shutdown_twice_delivers_each_record_once(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("feishu", secret="feishu-exit-secret")
    script = textwrap.dedent(f"""
        import logging, chatlog
        handler = chatlog.ChatHandler({bot.url!r}, group_wait=60)
        logging.getLogger().addHandler(handler)
        logging.getLogger("cron").error("nightly export failed: %s", "disk full")
        logging.shutdown()
        logging.shutdown()
        logging.getLogger("cron").error("logged after shutdown")
        print(handler.stats())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert sum("nightly export failed: disk full" in t for t in bot.texts()) == 1
    assert sum("logged after shutdown" in t for t in bot.texts()) == 1  # started again, delivered at exit
    assert len(bot.received) == 2
    assert "accepted=2, dropped=0, pending=1, delivered_records=1" in result.stdout


# --- threads: many at once, close() meanwhile, handlers come and go -----------------------------------------


def test_fifty_threads_logging_at_once_are_all_counted_and_delivered(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("feishu")
    handler = make_handler(bot.url, max_queue=20_000)
    attach_only(app_logger, handler)
    start = threading.Barrier(50)
    latencies: list[list[float]] = [[] for _ in range(50)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait(timeout=10.0)
            for i in range(200):
                begin = time.perf_counter()
                if i % 50 == 0:
                    try:
                        raise ConnectionError(f"worker {n} lost its connection")
                    except ConnectionError:
                        app_logger.exception("worker %d crashed", n)
                else:
                    app_logger.error("worker %d step %d failed", n, i)
                latencies[n].append(time.perf_counter() - begin)
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30.0)
    assert not any(thread.is_alive() for thread in threads) and errors == []
    assert handler.flush(timeout=10.0)
    stats = handler.stats()
    assert (stats.accepted, stats.delivered_records, stats.dropped) == (10_000, 10_000, 0)
    assert any("ConnectionError: worker" in text for text in bot.texts())
    calls = sorted(t for per_thread in latencies for t in per_thread)
    assert calls[len(calls) // 2] < 0.005, f"median log call {calls[len(calls) // 2] * 1000:.2f} ms"


def test_close_from_another_thread_while_threads_log_counts_every_record(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    handler = make_handler(bot.url, close_timeout=1.0)
    attach_only(app_logger, handler)
    stop = threading.Event()
    counts = [0] * 8
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            while not stop.is_set():
                app_logger.error("busy worker %s", n)
                counts[n] += 1
                if counts[n] % 50 == 0:
                    time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    began = time.monotonic()
    closer = threading.Thread(target=handler.close)
    closer.start()
    closer.join(timeout=5.0)
    closed_after = time.monotonic() - began
    time.sleep(0.1)  # threads keep logging into the closed handler
    stop.set()
    for thread in threads:
        thread.join(timeout=5.0)
    assert errors == [] and not closer.is_alive()
    assert closed_after < 1.0 + 0.5
    stats = handler.stats()
    assert stats.accepted == sum(counts)
    assert stats.delivered_records > 0  # and what came after close() started it again: see the teardown
    assert_accounting(stats)
    assert len(chatlog_lines(capsys.readouterr().err)) <= 1


def test_handler_removed_and_added_again_sees_only_what_it_was_attached_for(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bot = fake_platforms.add_bot("wecom")
    handler = make_handler(bot.url)
    attach_only(app_logger, handler)
    app_logger.error("attached %s", 1)
    app_logger.removeHandler(handler)
    app_logger.error("while detached %s", 2)
    attach_only(app_logger, handler)
    app_logger.error("attached %s", 3)
    assert handler.flush(timeout=5.0)
    text = "\n".join(bot.texts())
    assert "attached 1" in text and "while detached" not in text
    assert handler.stats().delivered_records == 2
    handler.close()
    for _ in range(3):
        app_logger.removeHandler(handler)
        attach_only(app_logger, handler)
        app_logger.error("after close")
    assert handler.flush(timeout=5.0)  # the closed handler started again, like FileHandler
    stats = handler.stats()
    assert (stats.accepted, stats.delivered_records, stats.dropped) == (5, 5, 0)
    assert chatlog_lines(capsys.readouterr().err) == []


def test_dictconfig_applied_twice_delivers_the_replaced_handlers_records(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECreconfig0123456789")
    name = "shop.reconfigured"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"chat": {"class": "chatlog.ChatHandler", "url": bot.url, "group_wait": 60}},
        "loggers": {name: {"handlers": ["chat"], "level": "ERROR", "propagate": False}},
    }
    logger = logging.getLogger(name)
    logging.config.dictConfig(config)
    first = logger.handlers[0]
    try:
        logger.error("before reconfiguration")
        began = time.monotonic()
        logging.config.dictConfig(config)  # closes the first handler, holding logging's lock meanwhile
        assert time.monotonic() - began < 0.5, "dictConfig() waited on chatlog with every logger blocked"
        second = logger.handlers[0]
        assert second is not first and isinstance(second, ChatHandler) and isinstance(first, ChatHandler)
        assert len(bot.wait_for(1, timeout=5.0)) == 1  # the closed handler delivers right after
        assert "before reconfiguration" in bot.texts()[0]
        logger.error("after reconfiguration")
        assert second.flush(timeout=5.0)
        texts = bot.texts()
        assert len(texts) == 2 and "after reconfiguration" in texts[1]
        assert wait_until(lambda: first.stats().delivered_records == 1, timeout=5.0)
        assert second.stats().delivered_records == 1
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "loggers": {name: {"handlers": [], "propagate": True}}})
        for handler in (first, *logger.handlers):
            handler.close()


@needs_fork
def test_an_app_bots_stderr_reporter_works_in_a_child_forked_while_its_lock_was_held(
    fake_platforms: FakePlatforms, capfd: pytest.CaptureFixture[str]
) -> None:
    app = fake_platforms.add_app(recipients={"open_id": ["ou_alice"]})
    destination = resolve(app.url("open_id", ["ou_alice", "ou_gone"])).destination
    with httpx.Client(timeout=5.0) as client:  # ou_gone is unreachable: reported on the app's own reporter
        assert destination.send_all(client, destination.render_text_all("hello")).ok
    reporter = destination._reporter  # type: ignore[attr-defined]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with reporter._lock:  # a thread of the parent's, in the middle of a report, at the fork
            held.set()
            release.wait(10.0)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5.0)
    try:
        assert run_in_child(lambda: 0 if reporter.report("child", "reported from the child") else 3) == 0
    finally:
        release.set()
        holder.join(5.0)
    assert "reported from the child" in capfd.readouterr().err
