"""Slack incoming webhooks, end to end against the fake Slack over real HTTP: destination strings, Block
Kit within Slack's limits for any digest, escaping so log text never pings or links, one message a
second, plain-text answers classified, secrets never shown."""

from __future__ import annotations

import itertools
import json
import logging
import logging.config
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings

from chatlog import ChatHandler
from chatlog.capture import capture
from chatlog.destinations import resolve
from chatlog.digest import Digest
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.platforms import _text, slack
from chatlog.testing import FakeBot, FakePlatforms, Fault
from chatlog.testing import slack as fake_slack
from tests.conftest import FakeClock, assert_accounting
from tests.test_render import HOSTILE_TEXT, TRACEBACK, digest, digests, group, hostile_digest


def short_url(bot: FakeBot, base_url: str) -> str:
    """``slack://T/B/SECRET?base_url=…``: the short form, sent to the fake."""
    team, webhook = fake_slack.ids_of(bot.token)
    return f"slack://{team}/{webhook}/{bot.token}?base_url={base_url}"


# --- end to end -----------------------------------------------------------------------------------------


def test_dictconfig_with_the_short_url_delivers_blocks_with_a_text_fallback(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("slack")
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"chat": {
            "class": "chatlog.ChatHandler", "level": "ERROR", "url": short_url(bot, fake_platforms.base_url),
            "service": "checkout", "environment": "prod", "group_wait": 0.05,
        }},
        "loggers": {"shop.slack": {"handlers": ["chat"], "level": "INFO", "propagate": False}},
    })
    logger = logging.getLogger("shop.slack")
    handler = logger.handlers[0]
    assert isinstance(handler, ChatHandler)
    try:
        for order in range(3):
            logger.error("order %s failed & <retried>", order)
        assert handler.flush(timeout=5.0)
        assert [(r.status, r.body) for r in bot.received if not r.accepted] == []
        message = bot.messages[0]
        assert message["text"].startswith("ERROR · 3 records · checkout · prod")
        assert [block["type"] for block in message["blocks"]] == ["section", "divider", "section", "context"]
        assert "order 0 failed & <retried>" in fake_slack.shown_text(message)
        assert handler.stats().delivered_records == 3
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "loggers": {"shop.slack": {"handlers": [], "propagate": True}}})
        handler.close()
        assert_accounting(handler.stats())


def test_hostile_log_text_pings_and_links_nothing_and_configured_mentions_ping_exactly(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("slack")
    handler = make_handler(bot.url, mentions={"ERROR": ["U024BE7LH"], "CRITICAL": ["all", "S0614TZR7"]})
    app_logger.addHandler(handler)
    app_logger.error("<!channel> <!here> <@U999> <!subteam^S1> @channel <http://evil|pay> " + HOSTILE_TEXT)
    assert handler.flush(timeout=5.0)
    app_logger.critical("<!everyone> database down")
    assert handler.flush(timeout=5.0)

    first, second = bot.messages
    assert fake_slack.notified(first) == ("U024BE7LH",)
    assert fake_slack.notified(second) == ("U024BE7LH", "all", "S0614TZR7")
    assert fake_slack.links(first) == fake_slack.links(second) == ()
    assert fake_slack.live_markup(first) == fake_slack.live_markup(second) == []
    shown = fake_slack.shown_text(first)
    assert "<!channel> <!here> <@U999> <!subteam^S1> @channel <http://evil|pay>" in shown


def test_unknown_webhook_suspends_alerting_says_why_and_shows_no_secret(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str], find_secrets: Callable[[str], list[str]],
) -> None:
    secret = "unknownslacksecret000000"
    handler = make_handler(f"slack://T0001/B0001/{secret}?base_url={fake_platforms.base_url}")
    app_logger.addHandler(handler)
    app_logger.error("lost")
    handler.flush(timeout=5.0)
    assert (handler.stats().delivered_records, handler.stats().pending) == (0, 1)  # kept for the next probe
    err = capsys.readouterr().err
    assert "webhook does not exist or was disabled" in err
    assert secret not in err and find_secrets(err) == []


def test_a_429_is_waited_out_and_the_records_arrive(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("slack")
    bot.fail_next(1, Fault.status(429, b"rate_limited", {"Retry-After": "1"}))
    handler = make_handler(bot.url)
    app_logger.addHandler(handler)
    app_logger.error("throttled at first")
    assert handler.flush(timeout=5.0)
    assert [r.status for r in bot.received] == [429, 200]
    assert bot.received[1].at - bot.received[0].at >= 1.0
    assert handler.stats().delivered_records == 1


def test_a_storm_goes_out_at_most_once_a_second(fake: FakePlatforms, clock: FakeClock) -> None:
    bot = fake.add_bot("slack")
    timing = Timing(group_wait=0.1, group_interval=0.1, close_timeout=1.0)
    dispatcher = Dispatcher(resolve(bot.url).destination, timing=timing, clock=clock, start=False)
    for step in range(200):  # 20 s of the fake clock, a new group every 0.1 s
        record = logging.LogRecord("shop", logging.ERROR, "shop.py", step, f"failure {step}", None, None)
        dispatcher.queue(capture(record, record.getMessage()))
        dispatcher.step()
        clock.now += 0.1
    dispatcher.close(1.0)

    times = [r.at for r in bot.received]
    assert all(r.accepted for r in bot.received)
    assert 15 <= len(times) <= 21
    assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= 0.999
    assert_accounting(dispatcher.stats())


def test_the_fakes_own_429_is_a_retry_after_its_retry_after(fake: FakePlatforms) -> None:
    bot = fake.add_bot("slack")
    with httpx.Client() as client:
        burst = [client.post(bot.url, json={"text": "burst"}).text for _ in range(fake_slack.PER_SECOND)]
        outcome = resolve(bot.url).destination.send(client, {"text": "one too many"})
    assert burst == ["ok"] * fake_slack.PER_SECOND
    assert (bot.received[-1].status, bot.received[-1].body) == (429, b'{"text":"one too many"}')
    assert (outcome.kind, outcome.retry_after, outcome.answer) == ("retry", 1.0, "rate_limited")


@pytest.mark.parametrize(("body", "status", "word"), [
    (b"not json", 400, "invalid_payload"),
    (json.dumps({"username": "x"}).encode(), 400, "no_text"),
    (json.dumps({"text": "x", "blocks": [{"type": "section"}] * 51}).encode(), 400, "invalid_blocks"),
    (json.dumps({"text": "x", "blocks": [slack._section("a" * 3001)]}).encode(), 400, "invalid_blocks"),
    (json.dumps({"text": "x", "blocks": [slack._section("a" * 3000)] * 5}).encode(), 400,
     "msg_blocks_too_long"),
    (json.dumps({"text": "x", "attachments": [{}] * 101}).encode(), 400, "too_many_attachments"),
])
def test_the_fake_refuses_what_slack_refuses(
    fake: FakePlatforms, body: bytes, status: int, word: str
) -> None:
    bot = fake.add_bot("slack")
    with httpx.Client() as client:
        answer = client.post(bot.url, content=body, headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.text) == (status, word)
    assert slack.classify(answer).kind == "rejected"


# --- limits ------------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(one=digests())
def test_every_digest_fits_slacks_limits_and_pings_only_whom_it_should(one: Digest) -> None:
    payload = slack.render(one)
    assert fake_slack.problem_of(payload) is None
    assert slack.within_limits(payload)
    assert fake_slack.links(payload) == ()
    assert set(fake_slack.notified(payload)) <= {"all", "here", *one.mentions}
    assert fake_slack.live_markup(payload) == []
    header = _text.header_line(one, slack.escape)
    assert header[:100] in payload["blocks"][0]["text"]["text"] or header[:100] in payload["text"]


def test_a_megabyte_message_is_cut_visibly_within_limits() -> None:
    huge = group("<&>" * 300_000, traceback=("😀" * 5_000 + "\n") * 50, count=2)
    payload = slack.render(digest(*(huge for _ in range(12))), slack.LIMITS, "kw")
    assert fake_slack.problem_of(payload) is None and slack.within_limits(payload)
    assert "… (truncated)" in fake_slack.text_of(payload)
    assert payload["blocks"][-1]["elements"][0]["text"].endswith("kw")
    assert fake_slack.live_markup(payload) == []


def test_a_thousand_groups_end_with_an_account_of_the_rest() -> None:
    groups = tuple(group(f"failure kind {n}", count=n + 1, traceback=TRACEBACK) for n in range(1000))
    payload = slack.render(digest(*groups))
    assert len(payload["blocks"]) <= 50 and fake_slack.problem_of(payload) is None
    assert "more groups" in fake_slack.text_of(payload)


def test_log_text_cannot_close_a_code_block_or_open_markup() -> None:
    payload = slack.render(hostile_digest())
    for block in payload["blocks"]:
        text = block.get("text", {}).get("text", "")
        assert "<" not in text and ">" not in text and text.count("```") in (0, 2)
    assert fake_slack.notified(payload) == () and "link_names" not in payload


def test_plain_text_message_is_escaped_and_fits() -> None:
    sender = resolve("slack://T1/B1/secret-x", keyword="kw").destination
    payload = sender.render_text("<!channel> " + "日志" * 5_000)
    assert fake_slack.notified(payload) == () and fake_slack.problem_of(payload) is None
    assert payload["text"].startswith("&lt;!channel&gt;") and payload["text"].endswith("kw")


# --- destination strings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "endpoint", "masked"), [
    ("slack://T1/B2/SECRET-abc", "https://hooks.slack.com/services/T1/B2/SECRET-abc", "slack://***"),
    ("https://hooks.slack.com/services/T1/B2/SECRET-abc", "https://hooks.slack.com/services/T1/B2/SECRET-abc",
     "slack://***"),
    ("http://127.0.0.1:9/services/T1/B2/SECRET-abc/", "http://127.0.0.1:9/services/T1/B2/SECRET-abc",
     "http://127.0.0.1:9/services/T1/B2/***"),
    ("slack://T1/B2/SECRET-abc?base_url=http://127.0.0.1:9", "http://127.0.0.1:9/services/T1/B2/SECRET-abc",
     "http://127.0.0.1:9/services/T1/B2/***"),
])
def test_slack_destination_strings(url: str, endpoint: str, masked: str) -> None:
    bot = resolve(url).destination
    assert isinstance(bot, slack.Slack)
    assert (bot.endpoint, bot.masked()) == (endpoint, masked)
    assert "SECRET-abc" not in repr(bot)


@pytest.mark.parametrize(("url", "words"), [
    ("slack://T1/B2", "looks like"),
    ("https://hooks.slack.com/services/T1", "looks like"),
    ("slack://T1/B2/SECRET-slack-1?secret=x", "no signing secret"),
    ("slack://T1/B2/SECRET-slack-1?channel=x", "unknown option"),
])
def test_malformed_slack_destinations_name_the_problem_without_the_secret(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. slack://") as caught:
        ChatHandler(url)
    assert words in str(caught.value)
    assert "SECRET-slack-1" not in str(caught.value)


# --- answers ----------------------------------------------------------------------------------------------


def answer(body: bytes, status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


@pytest.mark.parametrize(("body", "status", "kind", "wait", "words"), [
    (b"ok", 200, "ok", 0, ""),
    (b"rate_limited", 429, "retry", 1.0, "too fast"),
    (b"", 429, "retry", 1.0, "too fast"),
    (b"rollup_error", 500, "retry", 0, "HTTP 500 (rollup_error)"),
    (b"invalid_payload", 400, "rejected", 0, "invalid_payload, a chatlog bug"),
    (b"no_text", 400, "rejected", 0, "no_text"),
    (b"too_many_attachments", 400, "rejected", 0, "too_many_attachments"),
    (b"invalid_blocks", 400, "rejected", 0, "invalid_blocks"),
    (b"invalid_token", 403, "permanent", 0, "token is invalid"),
    (b"action_prohibited", 403, "permanent", 0, "admin restricted"),
    (b"posting_to_general_channel_denied", 403, "permanent", 0, "#general"),
    (b"channel_not_found", 404, "permanent", 0, "channel does not exist"),
    (b"no_service", 404, "permanent", 0, "does not exist or was disabled"),
    (b"no_team", 404, "permanent", 0, "workspace"),
    (b"team_disabled", 404, "permanent", 0, "disabled"),
    (b"channel_is_archived", 410, "permanent", 0, "archived"),
    (b"something_new", 400, "rejected", 0, "HTTP 400: something_new"),
    (b"something_new", 403, "permanent", 0, "HTTP 403: something_new"),
    (b"<html>proxy</html>", 200, "retry", 0, "unexpected answer"),
    (b"<html>proxy</html>", 404, "retry", 0, "HTTP 404"),  # a proxy's page, not Slack's verdict
])
def test_slack_answers(body: bytes, status: int, kind: str, wait: float, words: str) -> None:
    outcome = slack.classify(answer(body, status, {"Retry-After": "1"} if body == b"rate_limited" else None))
    assert (outcome.kind, outcome.retry_after) == (kind, wait)
    assert words in outcome.reason


def test_send_keeps_the_secret_out_of_reasons_and_answers() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, content=f"invalid_token for {request.url.path}".encode())

    bot = resolve("slack://T1/B2/SECRET-echo-1").destination
    with httpx.Client(transport=httpx.MockTransport(echo)) as client:
        outcome = bot.send(client, {"text": "x"})
    assert outcome.kind == "retry"  # not one of Slack's own words: a proxy's answer, maybe
    assert "SECRET-echo-1" not in outcome.answer + outcome.reason and "***" in outcome.answer


def test_classify_never_raises_on_any_bytes() -> None:
    for raw in (b"\xff\xfe", b"ok\n", b" ok ", b"\x00" * 300, "日志".encode()):
        for status in (200, 400, 403, 429, 500):
            assert slack.classify(answer(raw, status)).kind in ("ok", "retry", "permanent", "rejected")
