"""The all-clear (issue 14, item 1): one "good"-style message per incident per destination, once every
record at the level has been quiet for ``resolve_after``; on an injected clock, over real HTTP."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import chatlog.loguru
from chatlog import ChatHandler
from chatlog._record import replace
from chatlog.capture import capture
from chatlog.destinations import resolve
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.incident import AllClear, Incident, resolve_after_seconds
from chatlog.testing import PLATFORM_RULES, FakePlatforms
from tests import registry
from tests.conftest import assert_accounting
from tests.test_faults import Clock, clock, make_dispatcher
from tests.test_render import digest, group

__all__ = ["clock", "make_dispatcher"]  # fixtures shared with test_faults

QUIET = 600.0
"""The handler's default resolve_after."""
GROUP_BOTS = [name for rules in PLATFORM_RULES for name in rules.names]
PLATFORMS = [*GROUP_BOTS, "feishu-app"]


# --- the decision, on plain floats ------------------------------------------------------------------------


def test_an_incident_is_over_after_resolve_after_of_quiet_at_its_level() -> None:
    incident = Incident(logging.ERROR, 600.0)
    incident.record_filed(100.0, logging.ERROR)
    incident.shown(logging.ERROR, 5, "a3f2")
    incident.record_filed(400.0, logging.ERROR)
    incident.shown(logging.ERROR, 2, "07bc")
    incident.record_filed(900.0, logging.WARNING)  # warnings do not keep an ERROR incident open
    assert incident.due_at() == 1000.0
    assert incident.all_clear(999.9, unsent_at_level=False) is None
    done = incident.all_clear(1000.0, unsent_at_level=False)
    assert done is not None
    assert (done.records, done.groups, done.duration_s, done.quiet_s) == (7, 2, 300.0, 600.0)


def test_no_all_clear_while_records_at_the_level_wait_to_be_sent() -> None:
    incident = Incident(logging.ERROR, 60.0)
    incident.record_filed(0.0, logging.ERROR)
    incident.shown(logging.ERROR, 1, "a3f2")
    assert incident.all_clear(100.0, unsent_at_level=True) is None
    assert incident.all_clear(100.0, unsent_at_level=False) is not None


def test_warnings_only_never_open_an_incident_at_error() -> None:
    incident = Incident(logging.ERROR, 60.0)
    incident.record_filed(0.0, logging.WARNING)
    incident.shown(logging.WARNING, 10, "a3f2")
    assert incident.due_at() == float("inf")


def test_resolve_after_none_never_opens_an_incident() -> None:
    incident = Incident(logging.ERROR, None)
    incident.record_filed(0.0, logging.CRITICAL)
    assert incident.due_at() == float("inf")


def test_an_incident_nobody_was_shown_is_forgotten_without_an_all_clear() -> None:
    incident = Incident(logging.ERROR, 60.0)
    incident.record_filed(0.0, logging.ERROR)  # muted: never shown
    assert incident.all_clear(60.0, unsent_at_level=False) is None
    assert incident.due_at() == float("inf")


def test_a_record_filed_while_the_all_clear_is_out_opens_the_next_incident() -> None:
    incident = Incident(logging.ERROR, 60.0)
    incident.record_filed(0.0, logging.ERROR)
    incident.shown(logging.ERROR, 1, "a3f2")
    done = incident.all_clear(60.0, unsent_at_level=False)
    assert done is not None
    incident.record_filed(61.0, logging.ERROR)
    incident.resolved(done)
    assert incident.due_at() == 121.0 and incident.records == 0


# --- rendered on every platform -------------------------------------------------------------------------

HOSTILE = "<at id=all></at> [x](http://evil) @all <@U1>"


@pytest.mark.parametrize("module", registry.MODULES, ids=registry.IDS)
def test_the_all_clear_renders_inert_and_accepted_on_every_platform(module: ModuleType) -> None:
    done = AllClear("ERROR", 600.0, 1482, 420.0, 3, 0.0)
    quiet = replace(digest(service=HOSTILE, environment="prod"), all_clear=done)
    payload = module.render(quiet)
    assert registry.refusal(module, payload) == ""
    assert registry.live_markup(module, payload) == [] and registry.notified(module, payload) == []
    shown = registry.shown(module, payload)
    assert "prod: no ERROR for 10 min after 1,482 records in 7 min (3 groups)" in shown
    warned = replace(quiet, groups=(group("disk 91% full", level=logging.WARNING),))
    assert "disk 91% full" in registry.shown(module, module.render(warned))


# --- every platform, over real HTTP -----------------------------------------------------------------------


class Place:
    """One destination on the fake platforms: its URL and the payloads it received."""

    def __init__(self, fake: FakePlatforms, platform: str) -> None:
        if platform == "feishu-app":
            app = fake.add_app(recipients={"open_id": ["ou_oncall"]}, rate_limit=False)
            self.url = app.url()
            self.payloads: Callable[[], list[dict[str, Any]]] = lambda: [
                {"msg_type": m.msg_type, "card": m.content} for m in app.messages]
            self.texts: Callable[[], list[str]] = app.texts
        else:
            options = next(dict(rules.demo) for rules in PLATFORM_RULES if platform in rules.names)
            bot = fake.add_bot(platform, rate_limit=False, **options)
            self.url, self.texts = bot.url, bot.texts
            self.payloads = lambda: bot.messages


def log(dispatcher: Dispatcher, level: int = logging.ERROR, message: str = "order %s failed",
        arg: object = 1) -> None:
    record = logging.LogRecord("shop", level, "shop.py", 1, message, (arg,), None)
    dispatcher.queue(capture(record, record.getMessage()))


def run(dispatcher: Dispatcher, clock: Clock, seconds: float, step_s: float = 5.0) -> None:
    """Step the dispatcher through `seconds` of the injected clock."""
    for _ in range(round(seconds / step_s)):
        clock.now += step_s
        dispatcher.step()


def good_style(platform: str, payload: dict[str, Any]) -> bool:
    """Whether `payload` is in the platform's "good" style (green, info colour, a check mark)."""
    text = json.dumps(payload, ensure_ascii=False)
    if platform in ("feishu", "lark", "feishu-app"):
        return bool(payload["card"]["header"]["template"] == "green")
    if platform == "discord":
        return bool(payload["embeds"][0]["color"] == 0x2ECC71)
    if platform == "slack":
        return any(item.get("color") == "good" for item in payload.get("attachments", []))
    if platform == "wecom":
        return '## <font color="info">' in payload["markdown"]["content"]
    return "✅" in text  # DingTalk and Telegram have no colours


@pytest.mark.parametrize("platform", PLATFORMS)
def test_one_all_clear_in_the_good_style_after_the_quiet_time(
    fake_platforms: FakePlatforms, make_dispatcher: Callable[..., Dispatcher], clock: Clock, platform: str
) -> None:
    place = Place(fake_platforms, platform)
    dispatcher = make_dispatcher(place.url, resolve_after=QUIET)
    for order in range(3):
        log(dispatcher, arg=order)
    log(dispatcher, message="cart %s lost", arg=9)
    run(dispatcher, clock, 10.0)
    assert len(place.texts()) == 1
    run(dispatcher, clock, 590.0)  # 600 s after the last error, less the 10 s already run
    assert len(place.texts()) == 1
    run(dispatcher, clock, 10.0)
    run(dispatcher, clock, 3600.0, step_s=60.0)
    texts = place.texts()
    assert len(texts) == 2, texts
    assert "No ERROR for 10 min after 4 records (2 groups)" in texts[1]
    assert good_style(platform, place.payloads()[1])
    assert not good_style(platform, place.payloads()[0])
    stats = dispatcher.stats()
    assert (stats.delivered_records, stats.messages_sent) == (4, 2)


@pytest.mark.parametrize("platform", ["wecom", "feishu-app"])
def test_no_all_clear_when_resolve_after_is_none(
    fake_platforms: FakePlatforms, make_dispatcher: Callable[..., Dispatcher], clock: Clock, platform: str
) -> None:
    place = Place(fake_platforms, platform)
    dispatcher = make_dispatcher(place.url, resolve_after=None)
    log(dispatcher)
    run(dispatcher, clock, 7200.0, step_s=60.0)
    assert len(place.texts()) == 1


def test_no_all_clear_after_warnings_only_with_the_default_level(
    fake_platforms: FakePlatforms, make_dispatcher: Callable[..., Dispatcher], clock: Clock
) -> None:
    place = Place(fake_platforms, "dingtalk")
    dispatcher = make_dispatcher(place.url, resolve_after=QUIET)
    log(dispatcher, logging.WARNING, "disk %s%% full", 91)
    run(dispatcher, clock, 7200.0, step_s=60.0)
    assert len(place.texts()) == 1 and "✅" not in place.texts()[0]


def test_a_new_error_after_the_all_clear_starts_a_new_incident(
    fake_platforms: FakePlatforms, make_dispatcher: Callable[..., Dispatcher], clock: Clock
) -> None:
    place = Place(fake_platforms, "slack")
    dispatcher = make_dispatcher(place.url, resolve_after=QUIET)
    log(dispatcher)
    run(dispatcher, clock, 700.0)
    for order in range(5):
        log(dispatcher, arg=order)
        run(dispatcher, clock, 60.0)
    run(dispatcher, clock, 900.0)
    texts = place.texts()
    assert "No ERROR for 10 min after 1 record (1 group)" in texts[1]
    assert "after 5 records in 4 min (1 group)" in texts[-1]
    assert sum("No ERROR" in text for text in texts) == 2


def test_warnings_waiting_when_the_incident_ends_ride_in_the_all_clear(
    fake_platforms: FakePlatforms, make_dispatcher: Callable[..., Dispatcher], clock: Clock
) -> None:
    place = Place(fake_platforms, "feishu")
    dispatcher = make_dispatcher(place.url, resolve_after=QUIET, group_interval=3600.0,
                                 repeat_interval=7200.0)
    log(dispatcher)
    run(dispatcher, clock, 10.0)
    log(dispatcher, logging.WARNING, "disk %s%% full", 91)
    run(dispatcher, clock, 600.0)
    texts = place.texts()
    assert len(texts) == 2 and "No ERROR for 10 min" in texts[1] and "disk 91% full" in texts[1]
    assert dispatcher.stats().delivered_records == 2


# --- options -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "problem"), [
    ({"resolve_after": "soon"}, "resolve_after must be a number of seconds or None"),
    ({"resolve_after": -5}, "resolve_after must be a positive number"),
    ({"resolve_after": True}, "resolve_after must be a number"),
    ({"resolve_level": "LOUD"}, "resolve_level must be a level"),
])
def test_bad_all_clear_options_fail_at_construction_with_an_example(options: dict[str, Any],
                                                                    problem: str) -> None:
    for build in (ChatHandler, chatlog.loguru.sink):
        with pytest.raises((TypeError, ValueError), match=problem) as failure:
            build("wecom://KEY", **options)
        assert "e.g. resolve_after=600" in str(failure.value)


def test_the_handler_and_the_sink_take_the_all_clear_options() -> None:
    for name in ("resolve_after", "resolve_level"):
        assert name in inspect.signature(ChatHandler).parameters
        assert name in inspect.signature(chatlog.loguru.sink).parameters
    assert inspect.signature(ChatHandler).parameters["resolve_after"].default == 600.0
    assert resolve_after_seconds("600") == 600.0 and resolve_after_seconds(None) is None  # dictConfig, YAML


def test_in_a_fleet_the_leader_sends_one_all_clear(fake_platforms: FakePlatforms, clock: Clock,
                                                   tmp_path: Path) -> None:
    from chatlog.state.url import parse_state

    place = Place(fake_platforms, "wecom")
    timing = Timing(group_wait=5.0, group_interval=60.0, close_timeout=1.0, resolve_after=QUIET)
    state = parse_state(f"sqlite:///{tmp_path / 'fleet.db'}")
    dispatcher = Dispatcher(resolve(place.url).destination, timing=timing, clock=clock, start=False,
                            state=state)
    try:
        for order in range(3):
            log(dispatcher, arg=order)
        run(dispatcher, clock, 60.0)
        assert len(place.texts()) == 1 and "3 records" in place.texts()[0]
        run(dispatcher, clock, 3600.0, step_s=10.0)
        texts = place.texts()
        assert len(texts) == 2, texts
        assert "No ERROR for 10 min after 3 records" in texts[1] and "(1 group)" in texts[1]
    finally:
        dispatcher.close(1.0)
    assert_accounting(dispatcher.stats())
