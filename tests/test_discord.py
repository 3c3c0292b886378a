"""Discord webhooks, end to end against the fake Discord over real HTTP: destination strings, embeds
within Discord's limits for any digest, mentions only from the configuration, rate-limit buckets and
429s honoured, answers classified, secrets never shown."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings

from chatlog import ChatHandler
from chatlog.destinations import resolve
from chatlog.digest import Digest
from chatlog.platforms import _text, discord
from chatlog.testing import FakeBot, FakePlatforms, Fault
from chatlog.testing import discord as fake_discord
from tests.conftest import FakeClock, assert_accounting
from tests.test_render import HOSTILE_TEXT, TRACEBACK, digest, digests, group, hostile_digest

USER = "123456789012345678"


def short_url(bot: FakeBot, base_url: str) -> str:
    """``discord://ID/TOKEN?base_url=…``: the short form, sent to the fake."""
    return f"discord://{fake_discord.webhook_id(bot.token)}/{bot.token}?base_url={base_url}"


def destination(bot: FakeBot, clock: FakeClock) -> discord.Discord:
    resolved = resolve(bot.url).destination
    assert isinstance(resolved, discord.Discord)
    return discord.Discord(resolved.webhook_id, resolved.token, origin=resolved.origin, clock=clock,
                           sleep=clock.sleep)


# --- end to end -----------------------------------------------------------------------------------------


def test_dictconfig_with_the_short_url_delivers_embeds_coloured_by_severity(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("discord")
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"chat": {
            "class": "chatlog.ChatHandler", "level": "WARNING",
            "url": short_url(bot, fake_platforms.base_url),
            "service": "checkout", "environment": "prod", "group_wait": 0.05,
        }},
        "loggers": {"shop.discord": {"handlers": ["chat"], "level": "INFO", "propagate": False}},
    })
    logger = logging.getLogger("shop.discord")
    handler = logger.handlers[0]
    assert isinstance(handler, ChatHandler)
    try:
        for order in range(3):
            logger.error("order %s failed", order)
        logger.critical("payments down")
        logger.warning("slow checkout")
        assert handler.flush(timeout=5.0)
        assert [r.status for r in bot.received] == [200]
        message = bot.messages[0]
        head, *groups = message["embeds"]
        assert head["title"] == "CRITICAL · 5 records · checkout · prod"
        assert [embed["color"] for embed in message["embeds"]] == [0x8B0000, 0x8B0000, 0xE74C3C, 0xE67E22]
        assert "order 0 failed" in groups[1]["description"]
        assert "content" not in message  # no mentions configured: nothing that could ping
        assert handler.stats().delivered_records == 5
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "loggers": {"shop.discord": {"handlers": [], "propagate": True}}})
        handler.close()
        assert_accounting(handler.stats())


def test_hostile_log_text_pings_nobody_and_configured_mentions_ping_exactly(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("discord")
    handler = make_handler(bot.url, mentions={"ERROR": [USER], "CRITICAL": ["all"]})
    app_logger.addHandler(handler)
    app_logger.error("@everyone @here <@999999999999999999> <@&42> " + HOSTILE_TEXT)
    assert handler.flush(timeout=5.0)
    app_logger.critical("@everyone <@111111111111111111> everything is down")
    assert handler.flush(timeout=5.0)

    first, second = bot.messages
    assert fake_discord.notified(first) == (USER,)
    assert fake_discord.notified(second) == ("all", USER)
    assert [r.answer["mention_everyone"] for r in bot.received if r.answer] == [False, True]
    for message in (first, second):
        embeds = json.dumps(message["embeds"], ensure_ascii=False)
        assert "<@" not in embeds and "](" not in embeds


def test_unknown_webhook_suspends_alerting_says_why_and_shows_no_secret(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str], find_secrets: Callable[[str], list[str]],
) -> None:
    token = "unknown-token-" + "x" * 40
    handler = make_handler(f"{fake_platforms.base_url}/api/webhooks/1234567890123/{token}")
    app_logger.addHandler(handler)
    app_logger.error("first")
    handler.flush(timeout=5.0)
    app_logger.error("second")
    handler.flush(timeout=1.0)
    stats = handler.stats()
    assert (stats.delivered_records, stats.pending) == (0, 2)  # kept for the next probe
    err = capsys.readouterr().err
    assert "webhook does not exist (10015" in err
    assert token not in err and find_secrets(err) == []
    assert token not in repr(handler)


def test_a_429_from_discord_is_waited_out_and_the_records_arrive(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("discord")
    limited = {"message": "You are being rate limited.", "retry_after": 0.3, "global": False}
    bot.fail_next(1, Fault.status(429, json.dumps(limited).encode(), {"Retry-After": "1"}))
    handler = make_handler(bot.url)
    app_logger.addHandler(handler)
    app_logger.error("throttled at first")
    assert handler.flush(timeout=5.0)
    statuses = [r.status for r in bot.received]
    assert statuses == [429, 200]
    waited = bot.received[1].at - bot.received[0].at
    assert waited >= 0.3
    assert handler.stats().delivered_records == 1


# --- rate-limit buckets -----------------------------------------------------------------------------------


def test_an_empty_bucket_is_waited_for_before_the_next_send(fake: FakePlatforms, clock: FakeClock) -> None:
    bot = fake.add_bot("discord")
    sender = destination(bot, clock)
    with httpx.Client() as client:
        for _ in range(fake_discord.BUCKET_LIMIT - 1):
            client.post(bot.url, json={"content": "someone else"})
        clock.now += 0.5
        last_in_bucket = sender.send(client, {"content": "fifth"})
        next_one = sender.send(client, {"content": "sixth"})

    assert last_in_bucket.ok and next_one.ok
    assert bot.received[-2].status == 200
    assert clock.slept == [pytest.approx(1.5, abs=0.01)]  # the bucket's reset-after, not a guess
    assert [r.status for r in bot.received] == [204] * 4 + [200, 200]


def test_the_fakes_own_429_names_the_wait_chatlog_keeps(fake: FakePlatforms, clock: FakeClock) -> None:
    bot = fake.add_bot("discord")
    with httpx.Client() as client:
        for _ in range(fake_discord.BUCKET_LIMIT):
            client.post(bot.url, json={"content": "burst"})
        clock.now += 0.75
        outcome = discord.Discord(fake_discord.webhook_id(bot.token), bot.token, origin=fake.base_url,
                                  clock=clock, sleep=clock.sleep).send(client, {"content": "one too many"})

    answer = bot.received[-1]
    assert answer.status == 429 and answer.headers
    assert answer.answer == {"message": "You are being rate limited.", "retry_after": 1.25, "global": False}
    assert (outcome.kind, outcome.retry_after) == ("retry", 1.25)


def test_thirty_messages_a_minute_per_channel_then_a_shared_429(
    fake: FakePlatforms, clock: FakeClock
) -> None:
    bot = fake.add_bot("discord")
    with httpx.Client() as client:
        statuses = []
        for _ in range(31):
            statuses.append(client.post(bot.url, json={"content": "x"}).status_code)
            clock.now += 1.0
        limited = client.post(bot.url, json={"content": "x"})
    assert statuses == [204] * 30 + [429]
    assert limited.headers["x-ratelimit-scope"] == "shared"
    assert discord.classify(limited).retry_after == pytest.approx(29.0, abs=0.01)


# --- limits ------------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(one=digests())
def test_every_digest_fits_discords_limits_and_keeps_its_header(one: Digest) -> None:
    payload = discord.render(one)
    assert fake_discord.problems_of(payload) == {}
    assert discord.within_limits(payload)
    assert payload["embeds"] and len(json.dumps(payload, ensure_ascii=False).encode()) <= 60_000
    text = fake_discord.text_of(payload)
    assert _text.header_line(one, _text.inert)[:100] in text
    assert set(fake_discord.notified(payload)) <= {"all", "here", *one.mentions}
    assert fake_discord.live_markup(payload) == []


def test_a_megabyte_of_astral_characters_is_cut_visibly_within_limits() -> None:
    huge = group("😀" * 1_000_000, traceback=("\U0001d54f" * 5_000 + "\n") * 50, count=2)
    payload = discord.render(digest(*(huge for _ in range(12))), discord.LIMITS, "kw")
    assert fake_discord.problems_of(payload) == {} and discord.within_limits(payload)
    assert "… (truncated)" in fake_discord.text_of(payload)
    assert payload["embeds"][-1]["footer"]["text"].endswith("kw")


def test_a_thousand_groups_use_at_most_ten_embeds_and_account_for_the_rest() -> None:
    groups = tuple(group(f"failure kind {n}", count=n + 1, traceback=TRACEBACK) for n in range(1000))
    payload = discord.render(digest(*groups))
    assert len(payload["embeds"]) <= 10
    assert "more groups" in payload["embeds"][0]["description"]
    assert fake_discord.problems_of(payload) == {}


def test_log_text_makes_no_link_tag_or_code_fence() -> None:
    payload = discord.render(hostile_digest())
    for embed in payload["embeds"]:
        description = embed.get("description", "")
        assert "](" not in description and "<" not in description
        assert description.count("```") in (0, 2)
    assert payload["allowed_mentions"] == {"parse": [], "users": []}


def test_plain_text_message_mentions_nobody_and_fits_content() -> None:
    payload = discord.Discord("1", "T-token", keyword="kw").render_text("@everyone " + "日志" * 5_000)
    assert fake_discord.notified(payload) == ()
    assert fake_discord.problems_of(payload) == {}
    assert payload["content"].endswith("kw")


# --- destination strings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "endpoint", "masked"), [
    ("discord://123/TOKEN-abc", "https://discord.com/api/webhooks/123/TOKEN-abc", "discord://***"),
    ("https://discord.com/api/webhooks/123/TOKEN-abc", "https://discord.com/api/webhooks/123/TOKEN-abc",
     "discord://***"),
    ("https://discordapp.com/api/v10/webhooks/123/TOKEN-abc/", "https://discordapp.com/api/webhooks/123/TOKEN-abc",
     "discord://***"),
    ("http://127.0.0.1:9/api/webhooks/123/TOKEN-abc", "http://127.0.0.1:9/api/webhooks/123/TOKEN-abc",
     "http://127.0.0.1:9/api/webhooks/123/***"),
    ("discord://123/TOKEN-abc?base_url=http://127.0.0.1:9&thread_id=77",
     "http://127.0.0.1:9/api/webhooks/123/TOKEN-abc", "http://127.0.0.1:9/api/webhooks/123/***"),
])
def test_discord_destination_strings(url: str, endpoint: str, masked: str) -> None:
    bot = resolve(url).destination
    assert isinstance(bot, discord.Discord)
    assert (bot.endpoint, bot.masked()) == (endpoint, masked)
    assert "TOKEN-abc" not in repr(bot)


@pytest.mark.parametrize(("url", "words"), [
    ("discord://123", "no webhook token"),
    ("discord://abc/TOKEN-secret-1", "is a number"),
    ("https://discord.com/api/webhooks/123", "looks like"),
    ("discord://123/TOKEN-secret-1?thread_id=x", "thread_id"),
    ("discord://123/TOKEN-secret-1?username=bot", "unknown option"),
])
def test_malformed_discord_destinations_name_the_problem_without_the_token(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. discord://") as caught:
        ChatHandler(url)
    assert words in str(caught.value)
    assert "TOKEN-secret-1" not in str(caught.value)


def test_thread_id_reaches_discord(fake: FakePlatforms, clock: FakeClock) -> None:
    bot = fake.add_bot("discord")
    sender = resolve(bot.url + "?thread_id=42").destination
    with httpx.Client() as client:
        assert sender.send(client, {"content": "in a thread"}).ok
    assert bot.received[0].query == {"wait": "true", "thread_id": "42"}


# --- answers ----------------------------------------------------------------------------------------------


def answer(body: Any, status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.Response(status, content=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(("body", "status", "headers", "kind", "wait", "words"), [
    (b"", 204, {}, "ok", 0, ""),
    ({"id": "1", "content": "x"}, 200, {}, "ok", 0, ""),
    ({"message": "You are being rate limited.", "retry_after": 0.64, "global": False}, 429,
     {"Retry-After": "1"}, "retry", 0.64, "too fast"),
    ({"message": "You are being rate limited.", "retry_after": 640, "global": True}, 429,
     {"Retry-After": "1"}, "retry", 1.0, "global"),
    ({"message": "You are being rate limited.", "retry_after": 5000.0}, 429, {}, "retry", 5.0, "too fast"),
    (b"", 429, {"Retry-After": "3"}, "retry", 3.0, "too fast"),
    ({"message": "Unknown Webhook", "code": 10015}, 404, {}, "permanent", 0, "does not exist"),
    ({"message": "Invalid Webhook Token", "code": 50027}, 401, {}, "permanent", 0, "token is invalid"),
    ({"message": "Missing Permissions", "code": 50013}, 403, {}, "permanent", 0, "permission"),
    ({"message": "Invalid Form Body", "code": 50035, "errors": {}}, 400, {}, "rejected", 0, "chatlog bug"),
    ({"message": "Cannot send an empty message", "code": 50006}, 400, {}, "rejected", 0, "empty"),
    ({"message": "Request entity too large", "code": 40005}, 413, {}, "rejected", 0, "too large"),
    (b"<html>too large</html>", 413, {}, "rejected", 0, "too large"),
    ({"message": "Slowmode rate limit", "code": 20016}, 400, {"Retry-After": "7"}, "retry", 7.0,
     "rate limited"),
    ({"message": "blocked by AutoMod", "code": 200000}, 400, {}, "rejected", 0, "AutoMod"),
    ({"message": "new thing", "code": 77777}, 400, {}, "rejected", 0, "code 77777: new thing"),
    ({"message": "new thing", "code": 77777}, 403, {}, "permanent", 0, "HTTP 403"),
    (b"bad gateway", 502, {}, "retry", 0, "HTTP 502"),
    (b"nope", 404, {}, "retry", 0, "HTTP 404"),  # a proxy's page, not Discord's verdict
])
def test_discord_answers(body: Any, status: int, headers: dict[str, str], kind: str, wait: float,
                         words: str) -> None:
    outcome = discord.classify(answer(body, status, headers))
    assert (outcome.kind, outcome.retry_after) == (kind, pytest.approx(wait))
    assert words in outcome.reason


def test_an_answer_that_empties_the_bucket_names_its_reset() -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.234"}
    assert discord.bucket_wait(answer(b"", 204, headers)) == 1.234
    assert discord.bucket_wait(answer(b"", 204, {"X-RateLimit-Remaining": "3"})) == 0.0


def test_a_bucket_that_refills_much_later_is_a_retry_not_a_long_sleep(clock: FakeClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "30"})

    sender = discord.Discord("1", "T-token", clock=clock, sleep=clock.sleep)
    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        assert sender.send(client, {"content": "x"}).ok
        outcome = sender.send(client, {"content": "y"})
    assert (outcome.kind, outcome.retry_after) == ("retry", 30.0)
    assert clock.slept == []
