"""Quotas (issue 14, item 5): from 80 % each message says how many are left; at 100 % nothing more goes
to that destination until the period ends, records keep counting, stderr says so once."""

from __future__ import annotations

import calendar
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chatlog.loguru
from chatlog import ChatHandler
from chatlog._record import replace
from chatlog.capture import capture
from chatlog.destinations import resolve
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.quota import LocalCounter, Quota, QuotaPlan, parse_quota, period_of
from chatlog.testing import FakeBot, FakePlatforms
from tests.conftest import assert_accounting
from tests.test_dispatcher import Clock

NOON = float(calendar.timegm((2026, 12, 1, 12, 0, 0)))


class Wall:
    """Unix seconds that move only when told to."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("text", "plan"), [
    ("10000/month", (10_000, "month")), ("500/day", (500, "day")), ("10,000 / Month", (10_000, "month")),
    ("1_000/day", (1000, "day")),
])
def test_quotas_per_day_and_month(text: str, plan: tuple[int, str]) -> None:
    parsed = parse_quota(text)
    assert parsed is not None and (parsed.limit, parsed.period) == plan


@pytest.mark.parametrize("bad", ["lots", "0/day", "100/week", "100", 100, "-5/day"])
def test_a_bad_quota_fails_at_construction_with_an_example(bad: Any) -> None:
    for build in (ChatHandler, chatlog.loguru.sink):
        with pytest.raises(ValueError, match=r"quota must be .* e\.g\. quota='10000/month'"):
            build("wecom://KEY", quota=bad)


def test_periods_are_utc_calendar_days_and_months() -> None:
    new_year = calendar.timegm((2027, 1, 1, 0, 0, 0))
    assert period_of("month", new_year - 60) == ("2026-12", new_year)
    assert period_of("day", new_year - 60) == ("2026-12-31", new_year)
    assert period_of("month", NOON) == ("2026-12", new_year)


def test_the_quota_warns_from_80_percent_and_stops_at_100_until_the_period_ends() -> None:
    wall, lines = Wall(), []
    plan = QuotaPlan(10, "day", counter=LocalCounter(), wall_clock=wall)
    destination = resolve("wecom://KEY").destination
    quota = Quota(plan, destination, lambda key, text: lines.append((key, text)))
    notes = []
    for _ in range(10):
        assert quota.wait_s() == 0.0
        notes.append(quota.note(1))
        quota.sent(1)
    assert notes[:7] == [""] * 7
    assert notes[7:] == [f"{n} of 10 messages left today (UTC)" for n in (2, 1, 0)]
    assert quota.wait_s() == 12 * 3600.0  # noon: half a day until the next period
    assert quota.wait_s() > 0 and len({key for key, _ in lines}) == 1
    assert "quota of 10 messages a day is used up" in lines[0][1]
    wall.now += 12 * 3600.0
    assert quota.wait_s() == 0.0 and quota.note(1) == ""


# --- against a fake, on an injected clock ---------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bot(fake_platforms: FakePlatforms) -> FakeBot:
    return fake_platforms.add_bot("dingtalk", secret="SECquota0123456789", rate_limit=False)


@pytest.fixture
def wall() -> Wall:
    return Wall(NOON + 11 * 3600.0)  # 23:00 UTC: the day ends in an hour


@pytest.fixture
def dispatcher(bot: FakeBot, clock: Clock, wall: Wall) -> Iterator[Dispatcher]:
    timing = Timing(group_wait=5.0, group_interval=60.0, close_timeout=1.0)
    plan = QuotaPlan(5, "day", counter=LocalCounter(), wall_clock=wall)
    made = Dispatcher(resolve(bot.url).destination, timing=timing, clock=clock, start=False, quota=plan)
    yield made
    made.close(1.0)
    assert_accounting(made.stats())


def minutes(dispatcher: Dispatcher, clock: Clock, wall: Wall, n: int) -> None:
    """`n` minutes with one error a minute, stepping every 5 s (both clocks move together)."""
    for minute in range(n):
        record = logging.LogRecord("shop", logging.ERROR, "shop.py", 1, "order %s failed", (minute,), None)
        dispatcher.queue(capture(record, record.getMessage()))
        for _ in range(12):
            clock.now += 5.0
            wall.now += 5.0
            dispatcher.step()


def test_a_used_up_quota_holds_messages_until_the_next_period(
    dispatcher: Dispatcher, bot: FakeBot, clock: Clock, wall: Wall, capsys: pytest.CaptureFixture[str]
) -> None:
    minutes(dispatcher, clock, wall, 10)
    texts = bot.texts()
    assert len(texts) == 5
    assert "quota" not in texts[2] and "quota: 1 of 5 messages left today (UTC)" in texts[3]
    assert "quota: 0 of 5 messages left today (UTC)" in texts[4]
    stats = dispatcher.stats()
    assert (stats.delivered_records, stats.pending, stats.dropped) == (5, 5, 0)  # kept, counted
    err = capsys.readouterr().err
    assert err.count("quota of 5 messages a day is used up") == 1
    assert "until 2026-12-02 00:00 UTC" in err
    minutes(dispatcher, clock, wall, 60)  # past midnight UTC: a new day, a new quota of 5
    texts = bot.texts()
    assert len(texts) == 10
    assert "ERROR · 55 records" in texts[5]  # what waited, summarised in the first message of the day
    assert "until 2026-12-03 00:00 UTC" in capsys.readouterr().err  # said once for the new day too
    dispatcher.close(1.0)
    assert "close() gave up (close_timeout=1 s): the quota of 5 messages a day is used up" in (
        capsys.readouterr().err)


def test_no_quota_no_note(fake_platforms: FakePlatforms, clock: Clock) -> None:
    bot = fake_platforms.add_bot("wecom", rate_limit=False)
    made = Dispatcher(resolve(bot.url).destination, timing=Timing(close_timeout=1.0), clock=clock,
                      start=False)
    try:
        record = logging.LogRecord("shop", logging.ERROR, "shop.py", 1, "order %s failed", (1,), None)
        made.queue(capture(record, record.getMessage()))
        made.step()
        clock.now += 10.0
        made.step()
        assert len(bot.texts()) == 1 and "quota" not in bot.texts()[0]
    finally:
        made.close(1.0)


def test_the_handler_and_the_sink_take_quota() -> None:
    handler = ChatHandler("wecom://KEY", quota="10000/month")
    handler.close()
    plan = parse_quota("10000/month")
    assert plan is not None and replace(plan, limit=5).counter is plan.counter


def test_processes_sharing_a_store_share_the_quota(tmp_path: Path) -> None:
    from chatlog.state.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    wall = Wall()
    destination = resolve("wecom://KEY").destination
    first, second = (Quota(QuotaPlan(4, "day", wall_clock=wall), destination, lambda key, text: None)
                     for _ in range(2))
    for quota in (first, second):
        quota.share(store, "scope-of-wecom")
    first.sent(2)
    second.sent(2)
    assert first.wait_s() > 0 and second.wait_s() > 0  # 4 of 4 between them
    store.close()
