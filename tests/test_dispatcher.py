"""Batch timing, send windows and retries, on an injected clock (no sleeping for timers)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from chatlog.capture import capture
from chatlog.destinations import resolve
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.testing import FakeBot, FakePlatforms, Fault
from tests.conftest import assert_accounting


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bot(fake_platforms: FakePlatforms) -> FakeBot:
    return fake_platforms.add_bot("dingtalk", secret="SECtiming0123456789", rate_limit=False)


@pytest.fixture
def dispatcher(bot: FakeBot, clock: Clock) -> Iterator[Dispatcher]:
    timing = Timing(group_wait=5.0, group_interval=60.0, repeat_interval=3600.0, close_timeout=1.0)
    made = Dispatcher(resolve(bot.url).destination, timing=timing, clock=clock, start=False)
    yield made
    made.close(1.0)
    assert_accounting(made.stats())


def log(dispatcher: Dispatcher, message: str = "order %s failed", *args: object) -> None:
    record = logging.LogRecord("shop", logging.ERROR, "shop.py", 1, message, args or (1,), None)
    dispatcher.queue(capture(record, record.getMessage()))


def test_first_batch_waits_group_wait_for_related_records(dispatcher: Dispatcher, bot: FakeBot,
                                                          clock: Clock) -> None:
    log(dispatcher)
    dispatcher.step()
    clock.now += 4.9
    log(dispatcher)
    dispatcher.step()
    assert bot.messages == []
    clock.now += 0.1
    dispatcher.step()
    assert len(bot.messages) == 1 and dispatcher.stats().delivered_records == 2


def test_after_a_send_new_records_wait_group_interval(dispatcher: Dispatcher, bot: FakeBot,
                                                      clock: Clock) -> None:
    log(dispatcher)
    dispatcher.step()
    clock.now += 5.0
    dispatcher.step()
    clock.now += 1.0
    log(dispatcher)
    dispatcher.step()
    clock.now += 30.0
    dispatcher.step()
    assert len(bot.messages) == 1
    clock.now += 29.0
    dispatcher.step()
    assert len(bot.messages) == 2
    assert "more since last alert" in bot.texts()[1]  # shown in full once, then as one line


def test_after_a_quiet_period_a_new_record_waits_only_group_wait(dispatcher: Dispatcher, bot: FakeBot,
                                                                 clock: Clock) -> None:
    log(dispatcher)
    dispatcher.step()
    clock.now += 5.0
    dispatcher.step()
    clock.now += 600.0
    log(dispatcher, "another %s", 2)
    dispatcher.step()
    clock.now += 5.0
    dispatcher.step()
    assert len(bot.messages) == 2


def test_rate_limit_answer_pauses_the_destination_and_keeps_batching(
    dispatcher: Dispatcher, bot: FakeBot, clock: Clock
) -> None:
    bot.fail_next(1, Fault.json({"errcode": 410100, "errmsg": "send too fast"}))
    log(dispatcher)
    dispatcher.step()
    clock.now += 5.0
    dispatcher.step()
    assert dispatcher.stats().messages_failed == 1
    for _minute in range(1, 10):
        clock.now += 60.0
        log(dispatcher)
        dispatcher.step()
    assert bot.messages == []  # DingTalk blocks a bot for 10 minutes: do not knock
    clock.now += 70.0
    dispatcher.step()
    assert len(bot.messages) == 1
    assert dispatcher.stats().delivered_records == 10


def test_network_failures_back_off_and_the_backlog_arrives_as_one_summary(
    dispatcher: Dispatcher, bot: FakeBot, clock: Clock
) -> None:
    bot.set_fault(Fault.status(503))
    log(dispatcher)
    dispatcher.step()
    clock.now += 5.0
    attempts = []
    for _ in range(200):  # 200 s of simulated outage, one step per second
        dispatcher.step()
        attempts.append(len(bot.received))
        clock.now += 1.0
        log(dispatcher)
    assert len(bot.received) <= 9  # exponential backoff, not one request per second
    bot.clear_fault()
    clock.now += 600.0
    dispatcher.step()
    assert len(bot.messages) == 1
    assert dispatcher.stats().delivered_records == 201 and dispatcher.stats().pending == 0


def test_repeat_interval_shows_a_group_in_full_again(bot: FakeBot, clock: Clock) -> None:
    timing = Timing(group_wait=1.0, group_interval=1.0, repeat_interval=100.0)
    dispatcher = Dispatcher(resolve(bot.url).destination, timing=timing, clock=clock, start=False)
    try:
        for _ in range(3):
            log(dispatcher)
            dispatcher.step()
            clock.now += 60.0
            dispatcher.step()
        texts = bot.texts()
        assert len(texts) == 3
        assert "more since last alert" not in texts[0]
        assert "more since last alert" in texts[1]
        assert "more since last alert" not in texts[2]  # 120 s after the full one > repeat_interval
    finally:
        dispatcher.close(1.0)


def test_content_refusal_drops_that_message_only_and_alerting_goes_on(
    dispatcher: Dispatcher, bot: FakeBot, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    bot.fail_next(1, Fault.json({"errcode": 430104, "errmsg": "消息内容不合适"}))
    log(dispatcher, "flagged %s", 1)
    dispatcher.step()
    clock.now += 5.0
    dispatcher.step()
    stats = dispatcher.stats()
    assert (stats.dropped, stats.pending, stats.messages_failed) == (1, 0, 1)
    assert "430104" in capsys.readouterr().err
    clock.now += 60.0
    log(dispatcher, "next problem %s", 2)
    dispatcher.step()
    clock.now += 5.0
    dispatcher.step()
    assert len(bot.messages) == 1 and "next problem 2" in bot.texts()[0]
    assert "more since last alert" not in bot.texts()[0]


def test_worse_news_than_the_last_message_waits_group_wait_not_group_interval(
    dispatcher: Dispatcher, bot: FakeBot, clock: Clock
) -> None:
    warning = logging.LogRecord("shop", logging.WARNING, "shop.py", 1, "slow query %s", (1,), None)
    dispatcher.queue(capture(warning, warning.getMessage()))
    dispatcher.step()
    clock.now += 5.0
    dispatcher.step()
    assert len(bot.messages) == 1  # a warnings-only message went out
    clock.now += 1.0
    log(dispatcher, "database down %s", 1)  # ERROR: worse than what was last sent
    dispatcher.step()
    clock.now += 4.9
    dispatcher.step()
    assert len(bot.messages) == 1
    clock.now += 0.1
    dispatcher.step()
    assert len(bot.messages) == 2 and "database down 1" in bot.texts()[1]  # 5 s, not 60 s
    clock.now += 1.0
    log(dispatcher, "database down %s", 2)  # same severity again: group_interval applies
    dispatcher.step()
    clock.now += 30.0
    dispatcher.step()
    assert len(bot.messages) == 2
