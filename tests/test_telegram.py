"""Telegram bots, end to end against the fake Bot API over real HTTP: destination strings, HTML within
4,096 characters after entity parsing for any digest, no mention from log text, 20 a minute per group,
flood-control and migration answers, secrets never shown."""

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
from chatlog.capture import capture
from chatlog.destinations import resolve
from chatlog.digest import Digest
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.platforms import _text, telegram
from chatlog.testing import FakeBot, FakePlatforms, Fault
from chatlog.testing import telegram as fake_telegram
from tests.conftest import FakeClock, assert_accounting
from tests.test_render import HOSTILE_TEXT, TRACEBACK, digest, digests, group, hostile_digest


def short_url(bot: FakeBot, base_url: str, chat: int | None = None) -> str:
    """``telegram://ID:TOKEN@CHAT?base_url=…``: the short form, sent to the fake."""
    chat = fake_telegram.chat_of(bot.token) if chat is None else chat
    return f"telegram://{fake_telegram.bot_id(bot.token)}:{bot.token}@{chat}?base_url={base_url}"


# --- end to end -----------------------------------------------------------------------------------------


def test_dictconfig_with_the_short_url_delivers_html_with_the_traceback_in_pre(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("telegram")
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"chat": {
            "class": "chatlog.ChatHandler", "level": "ERROR", "url": short_url(bot, fake_platforms.base_url),
            "service": "checkout", "environment": "prod", "group_wait": 0.05,
        }},
        "loggers": {"shop.telegram": {"handlers": ["chat"], "level": "INFO", "propagate": False}},
    })
    logger = logging.getLogger("shop.telegram")
    handler = logger.handlers[0]
    assert isinstance(handler, ChatHandler)
    try:
        for order in range(3):
            try:
                raise KeyError(f"order-{order}")
            except KeyError:
                logger.exception("order %s failed: a < b & c", order)
        assert handler.flush(timeout=5.0)
        assert [r.status for r in bot.received] == [200]
        message, result = bot.messages[0], bot.received[0].answer["result"]  # type: ignore[index]
        assert message["parse_mode"] == "HTML" and message["link_preview_options"] == {"is_disabled": True}
        assert result["text"].startswith("ERROR · 3 records · checkout · prod")
        assert "order 0 failed: a < b & c" in result["text"]
        pre = [e for e in result["entities"] if e["type"] == "pre"]
        assert len(pre) == 1 and "KeyError: 'order-0'" in fake_telegram.entity_text(result["text"], pre[0])
        assert handler.stats().delivered_records == 3
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "loggers": {"shop.telegram": {"handlers": [], "propagate": True}}})
        handler.close()
        assert_accounting(handler.stats())


def test_hostile_log_text_mentions_nobody_and_configured_mentions_do(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("telegram")
    handler = make_handler(bot.url, mentions={"ERROR": ["4242", "@oncall_lead", "all"]})
    app_logger.addHandler(handler)
    try:
        raise RuntimeError("@traceback_user in <pre>")
    except RuntimeError:
        app_logger.exception('@durov_team <a href="tg://user?id=1">x</a> <b>bold</b> ' + HOSTILE_TEXT)
    assert handler.flush(timeout=5.0)
    message = bot.messages[0]
    assert fake_telegram.notified(message) == ("4242", "oncall_lead")
    entities = {e["type"] for e in bot.received[0].answer["result"]["entities"]}  # type: ignore[index]
    assert entities <= {"bold", "italic", "pre", "text_mention", "mention"}
    assert "@traceback_user in <pre>" in fake_telegram.shown_text(message)  # kept as is inside <pre>
    assert fake_telegram.live_markup(message) == []


def test_a_group_that_became_a_supergroup_is_reported_with_its_new_id(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bot = fake_platforms.add_bot("telegram")
    handler = make_handler(short_url(bot, fake_platforms.base_url, fake_telegram.old_chat_of(bot.token)))
    app_logger.addHandler(handler)
    app_logger.error("to the old group id")
    handler.flush(timeout=5.0)
    assert (handler.stats().delivered_records, handler.stats().pending) == (0, 1)  # kept for the next probe
    new_id = fake_telegram.chat_of(bot.token)
    fix = f"new chat id {new_id}: use chat_id={new_id} (telegram://TOKEN@{new_id})"
    assert fix in capsys.readouterr().err


@pytest.mark.parametrize(("make_url", "words"), [
    (lambda bot, base: short_url(bot, base, -1001), "chat does not exist"),
    (lambda bot, base: f"telegram://1:unknownbottoken000@{fake_telegram.chat_of(bot.token)}"
     f"?base_url={base}", "token is invalid"),
])
def test_unknown_chat_or_token_suspends_alerting_says_why_and_shows_no_secret(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str], find_secrets: Callable[[str], list[str]],
    make_url: Callable[[FakeBot, str], str], words: str,
) -> None:
    bot = fake_platforms.add_bot("telegram")
    handler = make_handler(make_url(bot, fake_platforms.base_url))
    app_logger.addHandler(handler)
    app_logger.error("lost")
    handler.flush(timeout=5.0)
    assert handler.stats().pending == 1  # kept for the next probe
    err = capsys.readouterr().err
    assert words in err and find_secrets(err) == [] and bot.token not in err


def test_flood_control_is_waited_out_and_the_records_arrive(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("telegram")
    flood = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
             "parameters": {"retry_after": 1}}
    bot.fail_next(1, Fault.json(flood, 429))
    handler = make_handler(bot.url)
    app_logger.addHandler(handler)
    app_logger.error("throttled at first")
    assert handler.flush(timeout=5.0)
    assert [r.status for r in bot.received] == [429, 200]
    assert bot.received[1].at - bot.received[0].at >= 1.0
    assert handler.stats().delivered_records == 1


def test_the_fakes_21st_message_in_a_minute_gets_flood_control(fake: FakePlatforms, clock: FakeClock) -> None:
    bot = fake.add_bot("telegram")
    sender = resolve(bot.url).destination
    with httpx.Client() as client:
        outcomes = []
        for n in range(21):
            outcomes.append(sender.send(client, sender.render_text(f"message {n}")))
            clock.now += 1.0
    assert [o.kind for o in outcomes] == ["ok"] * 20 + ["retry"]
    assert bot.received[-1].answer == {"ok": False, "error_code": 429,
                                       "description": "Too Many Requests: retry after 40",
                                       "parameters": {"retry_after": 40}}
    assert outcomes[-1].retry_after == 40


def test_a_storm_never_passes_twenty_a_minute(fake: FakePlatforms, clock: FakeClock) -> None:
    bot = fake.add_bot("telegram")
    timing = Timing(group_wait=0.5, group_interval=0.5, close_timeout=1.0)
    dispatcher = Dispatcher(resolve(bot.url).destination, timing=timing, clock=clock, start=False)
    for step in range(1800):  # 3 minutes of the fake clock, a new group every 0.1 s
        record = logging.LogRecord("shop", logging.ERROR, "shop.py", step, f"failure {step}", None, None)
        dispatcher.queue(capture(record, record.getMessage()))
        dispatcher.step()
        clock.now += 0.1
    dispatcher.close(1.0)

    times = [r.at for r in bot.received]
    assert all(r.accepted for r in bot.received)
    assert 50 <= len(times) <= 57
    assert max(sum(1 for t in times if start <= t < start + 60.0) for start in times) <= 18
    assert_accounting(dispatcher.stats())


# --- limits ------------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(one=digests())
def test_every_digest_parses_and_fits_4096_characters_after_entity_parsing(one: Digest) -> None:
    payload = telegram.render(one)
    parsed = fake_telegram.parse(payload["text"], payload["parse_mode"])
    assert isinstance(parsed, fake_telegram.Parsed), parsed
    assert 0 < len(parsed.text.encode("utf-16-le")) // 2 <= 4_096
    assert set(fake_telegram.notified(payload)) <= {m.lstrip("@") for m in one.mentions}
    assert fake_telegram.live_markup(payload) == []
    assert _text.header_line(one, telegram.escape)[:60] in payload["text"]


def test_the_limit_counts_text_after_entity_parsing_in_utf16_units() -> None:
    escaped = telegram.render(digest(*(group("<&>" * 5_000, logger=f"l{n}") for n in range(10))))
    astral = telegram.render(digest(*(group("😀" * 450, logger=f"l{n}") for n in range(10))))
    for payload in (escaped, astral):
        parsed = fake_telegram.parse(payload["text"], "HTML")
        assert isinstance(parsed, fake_telegram.Parsed)
        assert len(parsed.text.encode("utf-16-le")) // 2 <= 4_096
    assert len(escaped["text"]) > 4_096  # the entities took more room than they count for
    assert telegram.visible_chars(escaped["text"]) > 1_000


def test_a_megabyte_message_and_a_thousand_groups_are_cut_visibly() -> None:
    huge = group("数据库" * 300_000, traceback=("x" * 5_000 + "\n") * 50, count=2)
    many = tuple(group(f"failure kind {n}", count=n + 1, traceback=TRACEBACK) for n in range(1000))
    for one, keyword in ((digest(huge), "kw"), (digest(*many), None)):
        payload = telegram.render(one, telegram.LIMITS, keyword)
        assert isinstance(fake_telegram.parse(payload["text"], "HTML"), fake_telegram.Parsed)
        assert "… (truncated)" in payload["text"] or "more groups" in payload["text"]
    assert telegram.render(digest(huge), telegram.LIMITS, "kw")["text"].endswith("kw</i>")


def test_log_text_adds_no_tag() -> None:
    payload = telegram.render(hostile_digest())
    tags = {tag for tag in payload["text"].split("<")[1:]}
    assert {tag.split(">")[0] for tag in tags} <= {"b", "/b", "i", "/i", "pre", "/pre"}
    assert fake_telegram.notified(payload) == ()


def test_plain_text_message_is_escaped_and_fits() -> None:
    sender = telegram.Telegram("1:secret-token-x", "@alerts_channel", keyword="kw")
    payload = sender.render_text("@everyone_here <b>" + "日志" * 5_000)
    parsed = fake_telegram.parse(payload["text"], "HTML")
    assert isinstance(parsed, fake_telegram.Parsed) and parsed.text.endswith("kw")
    assert fake_telegram.notified(payload) == ()


# --- destination strings ---------------------------------------------------------------------------------

TOKEN = "123456:AAH-secret_token"


@pytest.mark.parametrize(("url", "endpoint", "chat", "masked"), [
    (f"telegram://{TOKEN}@-1001234567890", f"https://api.telegram.org/bot{TOKEN}/sendMessage", -1001234567890,
     "telegram://***@-1001234567890"),
    (f"telegram://{TOKEN}@@alerts_channel", f"https://api.telegram.org/bot{TOKEN}/sendMessage",
     "@alerts_channel", "telegram://***@@alerts_channel"),
    (f"telegram://{TOKEN}?chat_id=42", f"https://api.telegram.org/bot{TOKEN}/sendMessage", 42,
     "telegram://***@42"),
    (f"https://api.telegram.org/bot{TOKEN}/sendMessage?chat_id=-42",
     f"https://api.telegram.org/bot{TOKEN}/sendMessage", -42, "telegram://***@-42"),
    (f"http://127.0.0.1:9/bot{TOKEN}/sendMessage?chat_id=-42", f"http://127.0.0.1:9/bot{TOKEN}/sendMessage",
     -42, "http://127.0.0.1:9/bot123456:***/sendMessage?chat_id=-42"),
])
def test_telegram_destination_strings(url: str, endpoint: str, chat: int | str, masked: str) -> None:
    bot = resolve(url).destination
    assert isinstance(bot, telegram.Telegram)
    assert (bot.endpoint, bot.chat_id, bot.masked()) == (endpoint, chat, masked)
    assert "secret_token" not in repr(bot)


@pytest.mark.parametrize(("url", "words"), [
    ("telegram://123456:AAH-secret_tok1", "no chat id"),
    ("telegram://AAH-secret_tok1@-100", "looks like 123456:ABC"),
    ("telegram://123456:AAH-secret_tok1@not a chat", "chat_id must be"),
    ("https://api.telegram.org/bot123456:AAH-secret_tok1/getMe?chat_id=1", "looks like"),
    ("telegram://123456:AAH-secret_tok1@1?secret=x", "no signing secret"),
    ("telegram://123456:AAH-secret_tok1@1?silent=1", "unknown option"),
])
def test_malformed_telegram_destinations_name_the_problem_without_the_token(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. telegram://") as caught:
        ChatHandler(url)
    assert words in str(caught.value)
    assert "secret_tok1" not in str(caught.value)


# --- answers ----------------------------------------------------------------------------------------------


def answer(body: Any, status: int) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.Response(status, content=body)
    return httpx.Response(status, json=body)


def refused(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    return {**body, "parameters": parameters} if parameters else body


@pytest.mark.parametrize(("body", "status", "kind", "wait", "words"), [
    ({"ok": True, "result": {"message_id": 1}}, 200, "ok", 0, ""),
    (refused(429, "Too Many Requests: retry after 35", retry_after=35), 429, "retry", 35, "too fast"),
    (refused(400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-1001),
     400, "permanent", 0, "chat_id=-1001"),
    (refused(401, "Unauthorized"), 401, "permanent", 0, "@BotFather"),
    (refused(403, "Forbidden: bot was kicked from the supergroup chat"), 403, "permanent", 0, "kicked"),
    (refused(403, "Forbidden: bot was blocked by the user"), 403, "permanent", 0, "blocked"),
    (refused(400, "Bad Request: chat not found"), 400, "permanent", 0, "chat does not exist"),
    (refused(400, "Bad Request: not enough rights to send text messages to the chat"), 400, "permanent", 0,
     "right to send"),
    (refused(400, "Bad Request: can't parse entities: Unsupported start tag"), 400, "rejected", 0,
     "chatlog bug"),
    (refused(400, "Bad Request: message is too long"), 400, "rejected", 0, "chatlog bug"),
    (refused(400, "Bad Request: something new"), 400, "rejected", 0, "something new"),
    (refused(404, "Not Found"), 404, "permanent", 0, "Not Found"),
    (refused(502, "Bad Gateway"), 502, "retry", 0, "HTTP 502"),
    (b"<html>bad gateway</html>", 502, "retry", 0, "HTTP 502"),
    (b"", 429, "retry", 60, "too fast"),
    ({"ok": "yes"}, 200, "retry", 0, "unexpected answer"),
    (b"not json", 404, "retry", 0, "HTTP 404"),  # a proxy's page, not Telegram's verdict
])
def test_telegram_answers(body: Any, status: int, kind: str, wait: float, words: str) -> None:
    outcome = telegram.classify(answer(body, status))
    assert (outcome.kind, outcome.retry_after) == (kind, wait)
    assert words in outcome.reason


def test_the_fake_refuses_what_telegram_refuses(fake: FakePlatforms) -> None:
    bot = fake.add_bot("telegram")
    chat = fake_telegram.chat_of(bot.token)
    with httpx.Client() as client:
        def send(**body: Any) -> str:
            answer = client.post(bot.url.split("?")[0], json={"chat_id": chat, **body})
            return str(answer.json().get("description"))

        assert send(text="<b>unclosed", parse_mode="HTML").startswith("Bad Request: can't parse entities")
        assert send(text="a < b", parse_mode="HTML").startswith("Bad Request: can't parse entities")
        assert send(text="<script>x</script>", parse_mode="HTML").startswith("Bad Request: can't parse")
        assert send(text="&nbsp;", parse_mode="HTML").startswith("Bad Request: can't parse entities")
        assert send(text="x" * 4_097) == "Bad Request: message is too long"
        assert send(text="&lt;" * 4_096, parse_mode="HTML") == "None"  # accepted: 4,096 after parsing
        assert send(text="   ") == "Bad Request: message text is empty"
        wrong_token = client.post(bot.url.replace(bot.token, "x" * 35), json={"chat_id": chat, "text": "x"})
    assert (wrong_token.status_code, wrong_token.json()["description"]) == (401, "Unauthorized")
    assert json.loads(bot.received[5].body)["text"] == "&lt;" * 4_096 and bot.received[5].accepted
