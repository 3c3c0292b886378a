"""Delivery under load and at rest, over real HTTP: a storm neither holds alerts back nor loses counts,
and an idle handler costs no CPU."""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from chatlog import ChatHandler
from chatlog.testing import FakeBot, FakePlatforms
from tests.conftest import assert_accounting, attach_only

STORM_S = 5.0
GROUP_WAIT = 1.0
GROUP_INTERVAL = 1.5
TOLERANCE_S = 1.0
"""The issue's bound: first message within group_wait + 1 s, then one every group_interval ± 1 s."""

_COUNT_LINE = re.compile(r"×([\d,]+)\**(?: more since last alert)?\** · ERROR · (storm\.t\d+)")


def storm(loggers: list[logging.Logger], threads: int, *, seconds: float | None = None,
          records: int | None = None, constant: bool = False) -> int:
    """Log from `threads` threads as fast as they can, for `seconds` or `records` each; returns how many.

    `constant`: the same text without arguments every time (``"payment gateway down"``)."""
    done = [0] * threads
    stop = time.monotonic() + (seconds or 0.0)

    def run(index: int) -> None:
        n = 0
        while (records is None and time.monotonic() < stop) or (records is not None and n < records):
            for _ in range(100):
                if constant:
                    loggers[n % len(loggers)].error("payment gateway down")
                else:
                    loggers[n % len(loggers)].error("order %s failed", n)
                n += 1
        done[index] = n

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120.0)
    return sum(done)


def storm_loggers(handler: ChatHandler, count: int = 4) -> list[logging.Logger]:
    loggers = []
    for k in range(count):
        logger = logging.getLogger(f"storm.t{k}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        attach_only(logger, handler)
        loggers.append(logger)
    return loggers


def shown_counts(bot: FakeBot) -> Counter[str]:
    """Records per group, summed over every message the chat showed."""
    counts: Counter[str] = Counter()
    for text in bot.texts():
        for number, group in _COUNT_LINE.findall(text):
            counts[group] += int(number.replace(",", ""))
    return counts


@pytest.fixture
def feishu(fake_platforms: FakePlatforms) -> FakeBot:
    return fake_platforms.add_bot("feishu", rate_limit=False)


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_alerts_leave_on_time_during_a_storm(
    feishu: FakeBot, make_handler: Callable[..., ChatHandler], threads: int
) -> None:
    handler = make_handler(feishu.url, group_wait=GROUP_WAIT, group_interval=GROUP_INTERVAL)
    loggers = storm_loggers(handler)
    began = time.time()
    logged = storm(loggers, threads, seconds=STORM_S)
    ended = time.time()
    sent = [r.at for r in feishu.received if r.accepted and r.at <= ended]
    assert logged > 10_000, "the storm was not a storm"
    assert sent, f"no message left during a {STORM_S:.0f} s storm of {logged:,} records"
    assert sent[0] - began <= GROUP_WAIT + TOLERANCE_S
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(GROUP_INTERVAL - TOLERANCE_S <= gap <= GROUP_INTERVAL + TOLERANCE_S for gap in gaps), gaps
    assert ended - sent[-1] <= GROUP_INTERVAL + TOLERANCE_S


@pytest.mark.parametrize(("threads", "each", "constant"),
                         [(8, 50_000, False), (1, 200_000, False), (8, 50_000, True)],
                         ids=["8-threads", "1-thread", "8-threads-constant-text"])
def test_every_count_shown_is_exact_under_overload(
    feishu: FakeBot, make_handler: Callable[..., ChatHandler], threads: int, each: int, constant: bool
) -> None:
    handler = make_handler(feishu.url, group_wait=0.2, group_interval=0.5, close_timeout=5.0)
    loggers = storm_loggers(handler)
    logged = storm(loggers, threads, records=each, constant=constant)
    assert handler.flush(10.0)
    stats = handler.stats()
    assert_accounting(stats)
    assert (stats.accepted, stats.dropped, stats.delivered_records) == (logged, 0, logged)
    per_group = logged // len(loggers)
    assert shown_counts(feishu) == {f"storm.t{k}": per_group for k in range(len(loggers))}


def _thread_cpu_s(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def _new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.name.startswith("chatlog")]


def test_an_idle_handler_takes_no_cpu_and_a_record_still_wakes_it(
    feishu: FakeBot, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    before = set(threading.enumerate())
    handler = make_handler(feishu.url, group_wait=0.2, group_interval=0.2)
    attach_only(app_logger, handler)
    threads = _new_threads(before)
    assert threads
    app_logger.error("before the quiet")
    feishu.wait_for(1, 5.0)
    time.sleep(0.3)  # the answer is settled; nothing is pending now
    cpu = [_thread_cpu_s(t) for t in threads]
    time.sleep(2.0)
    used = sum(_thread_cpu_s(t) - c for t, c in zip(threads, cpu, strict=True))
    assert used < 0.0005, f"chatlog's threads used {used * 1000:.2f} ms of CPU in 2 s with nothing to do"
    logged_at = time.monotonic()
    app_logger.error("after the quiet")
    assert len(feishu.wait_for(2, 5.0)) == 2
    assert time.monotonic() - logged_at < 0.2 + TOLERANCE_S
    assert_accounting(handler.stats())
