"""Escalation (issue 14, item 6): a group at the level, still firing and not acknowledged after the
delay, goes to the on-call destination once per group per repeat_interval; on an injected clock,
over real HTTP to the fakes."""

from __future__ import annotations

import logging
import logging.config
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

import chatlog.loguru
from chatlog import ChatHandler
from chatlog.capture import capture
from chatlog.destinations import resolve
from chatlog.digest import Context
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.escalation import Escalation, Escalator, duration_seconds, parse_escalate
from chatlog.state.controls import ControlStore
from chatlog.state.honour import scope_of
from chatlog.testing import FakeApp, FakeBot, FakePlatforms
from tests.conftest import assert_accounting
from tests.test_dispatcher import Clock

GROUP_ID = re.compile(r"#([0-9a-f]{4})\b")


# --- the decision, on plain floats ------------------------------------------------------------------------


def never(group_id: str) -> bool:
    return False


def test_a_group_firing_for_the_delay_is_escalated_once_per_repeat_interval() -> None:
    escalation = Escalation(after_s=900.0, repeat_s=3600.0, gap_s=1020.0)
    due = [(at, escalation.due(at, ["a3f2"], never)) for at in range(0, 4000, 60)]
    assert [at for at, chosen in due if chosen] == [900]
    assert escalation.due(4560.0, ["a3f2"], never) == ["a3f2"]  # the repeat interval is over


def test_an_acknowledged_group_is_not_escalated() -> None:
    escalation = Escalation(after_s=60.0, repeat_s=3600.0, gap_s=180.0)
    assert escalation.due(0.0, ["a3f2", "07bc"], never) == []
    assert escalation.due(60.0, ["a3f2", "07bc"], lambda group_id: group_id == "a3f2") == ["07bc"]


def test_a_group_that_stopped_firing_starts_its_clock_again() -> None:
    escalation = Escalation(after_s=60.0, repeat_s=3600.0, gap_s=120.0)
    escalation.due(0.0, ["a3f2"], never)
    assert escalation.due(500.0, ["a3f2"], never) == []  # silent for 500 s: a new start, not 500 s of firing
    assert escalation.due(560.0, ["a3f2"], never) == ["a3f2"]


@pytest.mark.parametrize(("text", "seconds"), [("15m", 900.0), ("90s", 90.0), ("1h30m", 5400.0),
                                               ("1d", 86400.0), (600, 600.0), ("45", 45.0), ("0.5h", 1800.0)])
def test_durations(text: object, seconds: float) -> None:
    assert duration_seconds("after", text) == seconds


# --- against the fakes -------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def oncall(fake_platforms: FakePlatforms) -> FakeApp:
    return fake_platforms.add_app(recipients={"open_id": ["ou_oncall"]}, rate_limit=False)


@pytest.fixture
def group_bot(fake_platforms: FakePlatforms) -> FakeBot:
    return fake_platforms.add_bot("wecom", rate_limit=False)


class Setup:
    """A handler's dispatcher with an escalator and a ChatOps store, all driven by one clock."""

    def __init__(self, url: str, oncall_url: str, clock: Clock, store: ControlStore) -> None:
        timing = Timing(group_wait=5.0, group_interval=60.0, repeat_interval=3600.0, close_timeout=1.0)
        plan = parse_escalate({"after": "15m", "to": oncall_url, "level": "CRITICAL"})
        assert plan is not None
        context = Context(service="checkout", environment="prod")
        self.escalator = Escalator(plan, timing, context, clock=clock, start=False)
        self.dispatcher = Dispatcher(resolve(url).destination, timing=timing, context=context, clock=clock,
                                     start=False, controls=store, escalator=self.escalator)
        self.clock = clock

    def minutes(self, n: int, level: int = logging.CRITICAL) -> None:
        """`n` minutes of one record a minute, stepping every 5 s."""
        for _ in range(n):
            record = logging.LogRecord("pay", level, "pay.py", 7, "payment provider down for %s s", (1,),
                                       None)
            self.dispatcher.queue(capture(record, record.getMessage()))
            for _ in range(12):
                self.clock.now += 5.0
                self.dispatcher.step()
                self.escalator.step()

    def close(self) -> None:
        self.dispatcher.close(1.0)
        self.escalator.close(1.0)
        assert_accounting(self.dispatcher.stats())


@pytest.fixture
def store() -> Iterator[ControlStore]:
    made = ControlStore("memory")
    yield made
    made.close()


@pytest.fixture
def setup(group_bot: FakeBot, oncall: FakeApp, clock: Clock, store: ControlStore) -> Iterator[Setup]:
    made = Setup(group_bot.url, oncall.url(), clock, store)
    yield made
    made.close()


def test_an_unacknowledged_critical_group_is_escalated_once(setup: Setup, group_bot: FakeBot,
                                                            oncall: FakeApp) -> None:
    setup.minutes(14)
    assert oncall.texts() == []
    setup.minutes(30)
    texts = oncall.texts()
    assert len(texts) == 1, texts
    assert "Not acknowledged for 15m: payment provider down for 1 s" in texts[0]
    assert "checkout" in texts[0] and "not acknowledged" in texts[0]
    assert len(group_bot.texts()) > 10  # the group itself kept hearing of it
    setup.minutes(33)  # 77 minutes in: the repeat interval (1 h) after the first escalation is over
    assert len(oncall.texts()) == 2


def test_an_acknowledged_group_is_not_escalated_to_anyone(setup: Setup, group_bot: FakeBot, oncall: FakeApp,
                                                          store: ControlStore) -> None:
    setup.minutes(2)
    found = GROUP_ID.search(group_bot.texts()[0])
    assert found is not None
    store.ack([scope_of(setup.dispatcher.destination)], found.group(1), "ou_alice", time.time())
    setup.minutes(40)
    assert oncall.texts() == [] and len(group_bot.texts()) > 10


def test_errors_below_the_level_are_not_escalated(setup: Setup, group_bot: FakeBot, oncall: FakeApp) -> None:
    setup.minutes(30, logging.ERROR)
    assert oncall.texts() == [] and len(group_bot.texts()) > 10


# --- options -------------------------------------------------------------------------------------------

APP = "feishu-app://cli_a1b2c3d4:escalationsecret99@open_id/ou_oncall"


@pytest.mark.parametrize(("escalate", "problem"), [
    ({"after": "15m", "to": APP, "levle": "CRITICAL"}, r"unknown key\(s\) levle"),
    ({"after": "soon", "to": APP}, r"escalate\['after'\] must be a duration"),
    ({"after": -5, "to": APP}, r"escalate\['after'\] must be a duration"),
    ({"after": "15m", "to": "feishu-app://cli_a1b2c3d4:escalationsecret99@nobody/x"}, r"escalate\['to'\]"),
    ({"after": "15m"}, "escalate needs 'to'"),
    ({"after": "15m", "to": APP, "level": "LOUD"}, r"escalate\['level'\] must be a level"),
    ("feishu-app://x", "escalate must be a dict"),
])
def test_a_bad_escalate_fails_at_construction_naming_the_problem(escalate: Any, problem: str) -> None:
    for build in (ChatHandler, chatlog.loguru.sink):
        with pytest.raises((TypeError, ValueError), match=problem) as failure:
            build("wecom://KEY", escalate=escalate)
        assert 'escalate={"after": "15m"' in str(failure.value)
        assert "escalationsecret99" not in str(failure.value)


def test_dictconfig_passes_escalate_resolve_after_and_quota() -> None:
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "handlers": {"chat": {
        "class": "chatlog.ChatHandler", "url": "wecom://KEY", "resolve_after": "300", "quota": "500/day",
        "escalate": {"after": "15m", "to": APP, "level": "CRITICAL"}}},
        "loggers": {"dictconfig.escalate": {"handlers": ["chat"]}}})
    handler = logging.getLogger("dictconfig.escalate").handlers[0]
    try:
        assert isinstance(handler, ChatHandler) and "escalationsecret99" not in repr(handler)
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "loggers": {"dictconfig.escalate": {"handlers": []}}})
        handler.close()


def test_the_handler_takes_escalate_and_closes_its_escalation_destination() -> None:
    handler = ChatHandler("wecom://KEY", escalate={"after": 60, "to": APP})
    try:
        assert handler.stats().accepted == 0
    finally:
        handler.close()
    assert parse_escalate(None) is None
