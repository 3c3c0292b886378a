"""From `logger.error` to a message the fake platform accepted, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import logging.config
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest

from chatlog import ChatHandler
from chatlog.testing import PLATFORM_RULES, FakePlatforms, Fault
from tests.conftest import assert_accounting

# Every platform name of every group-bot fake, set up as its fake's demo bot (signing on where it
# signs): a new platform is covered here with no edit.
PLATFORMS = [(name, dict(rules.demo)) for rules in PLATFORM_RULES for name in rules.names]


@pytest.mark.parametrize(("platform", "bot_options"), PLATFORMS, ids=[p for p, _ in PLATFORMS])
def test_dictconfig_handler_delivers_a_signed_grouped_alert(
    fake_platforms: FakePlatforms, platform: str, bot_options: dict[str, str]
) -> None:
    bot = fake_platforms.add_bot(platform, **bot_options)
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"chat": {
            "class": "chatlog.ChatHandler", "level": "ERROR", "url": bot.url,
            "service": "checkout", "environment": "prod", "group_wait": 0.05,
        }},
        "loggers": {"shop": {"handlers": ["chat"], "level": "INFO", "propagate": False}},
    })
    logger = logging.getLogger("shop")
    handler = logger.handlers[0]
    assert isinstance(handler, ChatHandler)
    try:
        for order in range(3):
            logger.error("order %s failed", order)
        logger.info("not alerted")
        assert handler.flush(timeout=5.0)
        texts = bot.texts()
        assert len(texts) == 1, [r.answer for r in bot.received]
        assert "order 0 failed" in texts[0] and "checkout" in texts[0] and "prod" in texts[0]
        assert "not alerted" not in texts[0]
        assert all(r.accepted for r in bot.received)
        assert handler.stats().delivered_records == 3
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "loggers": {"shop": {"handlers": [], "propagate": True}}})
        handler.close()
        assert_accounting(handler.stats())


def test_storm_of_one_template_arrives_as_one_group_with_its_count(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECstorm0123456789")
    handler = make_handler(bot.url, group_wait=0.2, group_interval=5.0)
    app_logger.addHandler(handler)
    for i in range(5000):
        app_logger.error("order %s not found", i)
    assert handler.flush(timeout=5.0)
    assert 1 <= len(bot.messages) <= 2
    assert handler.stats().delivered_records == 5000
    assert any("5,000" in text or "5000" in text for text in bot.texts()) or len(bot.messages) == 2


def test_storm_never_exceeds_the_platform_rate_limit(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("feishu")
    handler = make_handler(bot.url, group_wait=0.01, group_interval=0.01)
    app_logger.addHandler(handler)
    deadline = time.monotonic() + 2.5
    i = 0
    while time.monotonic() < deadline:
        app_logger.error("distinct failure %d in step %s", i, i % 7)
        i += 1
        if i % 200 == 0:
            time.sleep(0.01)
    handler.flush(timeout=3.0)
    refused = [r.answer for r in bot.received if not r.accepted]
    assert refused == []
    assert len(bot.messages) >= 5  # it did send, just never too fast (≤ 4/s is chatlog's own limit)


def test_slow_server_never_slows_the_application(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("wecom")
    bot.set_fault(Fault.slow(10.0))
    handler = make_handler(bot.url, close_timeout=0.5)
    app_logger.addHandler(handler)
    worst = 0.0
    for i in range(2000):
        start = time.perf_counter()
        app_logger.error("slow %s", i)
        worst = max(worst, time.perf_counter() - start)
        if i % 100 == 0:
            time.sleep(0.02)  # let the dispatcher start its (slow) send meanwhile
    assert worst < 0.5, f"one logger.error call took {worst * 1000:.1f} ms (a blocked send would take 10 s)"
    start = time.monotonic()
    handler.close()
    assert time.monotonic() - start < 1.5
    assert_accounting(handler.stats())


def test_close_returns_within_close_timeout_when_the_server_hangs(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("feishu")
    bot.set_fault(Fault.hang())
    handler = make_handler(bot.url, close_timeout=1.0)
    app_logger.addHandler(handler)
    app_logger.error("will hang")
    assert bot.wait_received(1, timeout=3.0)
    start = time.monotonic()
    handler.close()
    handler.close()  # idempotent
    assert time.monotonic() - start < 2.0
    assert handler.stats().pending == 1


def test_server_error_is_retried_and_the_backlog_delivered(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    bot.fail_next(1, Fault.status(503))
    handler = make_handler(bot.url)
    app_logger.addHandler(handler)
    app_logger.error("first %s", 1)
    assert bot.wait_received(1, timeout=3.0)
    app_logger.error("first %s", 2)
    assert handler.flush(timeout=5.0)
    stats = handler.stats()
    # the retry carries the second record too, unless (on a loaded machine) it left before that was logged
    assert stats.delivered_records == 2 and stats.messages_failed == 1 and stats.messages_sent in (1, 2)


def test_permanent_error_is_reported_once_without_the_secret(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECright0123456789")
    url = bot.url.replace("SECright0123456789", "SECwrong0123456789")
    handler = make_handler(url)
    app_logger.addHandler(handler)
    for i in range(3):
        app_logger.error("x %s", i)
        handler.flush(timeout=3.0)
    err = capsys.readouterr().err
    assert err.count("signature") == 1 or err.count("sign") >= 1
    assert len([line for line in err.splitlines() if line.startswith("chatlog:")]) == 1, err
    assert "SECwrong" not in err and bot.token not in err
    assert handler.stats().pending == 3  # kept for the next probe, 10 minutes on


def test_records_from_chatlogs_own_sends_never_feed_back(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler]
) -> None:
    bot = fake_platforms.add_bot("wecom")
    handler = make_handler(bot.url, level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)  # httpx logs each request at INFO, on chatlog's thread
    root.addHandler(handler)
    try:
        logging.getLogger("app").error("one")
        assert handler.flush(timeout=3.0)
        time.sleep(0.3)
        handler.flush(timeout=3.0)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert len(bot.messages) == 1
    assert bot.token not in "".join(bot.texts())


def test_hostile_log_calls_never_raise_and_are_reported_in_the_alert(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("broken __str__")

    bot = fake_platforms.add_bot("feishu")
    handler = make_handler(bot.url)
    for other in list(app_logger.handlers):  # pytest's capture handlers would raise on Broken themselves
        app_logger.removeHandler(other)
    app_logger.addHandler(handler)
    app_logger.error(Broken())
    app_logger.error("%d apples", "many")
    app_logger.error("x" * 1_000_000)
    app_logger.error(b"\xff\xfe bytes")
    app_logger.error("lone \ud800 surrogate \x00 control")
    assert handler.flush(timeout=5.0)
    text = "\n".join(bot.texts())
    assert "unprintable Broken" in text and "could not format" in text
    assert handler.stats().delivered_records == 5


def test_logging_shutdown_in_a_subprocess_delivers_before_exit(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECsub0123456789")
    script = textwrap.dedent(f"""
        import logging, chatlog
        logging.getLogger().addHandler(chatlog.ChatHandler({bot.url!r}, group_wait=60))
        logging.getLogger("cron").error("nightly export failed: %s", "disk full")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert any("nightly export failed: disk full" in t for t in bot.texts())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_delivers_its_own_alert(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("wecom")
    handler = make_handler(bot.url)
    app_logger.addHandler(handler)
    app_logger.error("parent record")
    assert handler.flush(timeout=3.0)
    pid = os.fork()
    if pid == 0:  # child: log, flush, exit without running the parent's test machinery
        code = 1
        try:
            app_logger.error("child record")
            code = 0 if handler.flush(timeout=5.0) and handler.stats().delivered_records == 1 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    texts = bot.texts()
    assert any("child record" in t for t in texts) and sum("parent record" in t for t in texts) == 1
    assert handler.stats().delivered_records == 1


def test_context_fields_choose_which_extra_fields_the_alert_shows(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("wecom")
    handler = make_handler(bot.url, context_fields=["request_id"])
    app_logger.addHandler(handler)
    app_logger.error("checkout failed", extra={"request_id": "req-77", "card_number": "4111-xxxx"})
    assert handler.flush(timeout=5.0)
    text = bot.texts()[0]
    assert "req-77" in text and "4111" not in text


def test_records_keep_being_grouped_while_a_request_hangs(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    bot.fail_next(1, Fault.hang())
    handler = make_handler(bot.url, max_queue=1000)
    app_logger.addHandler(handler)
    app_logger.error("first %s", 0)
    assert bot.wait_received(1, timeout=3.0)  # that request now hangs
    for batch in range(10):
        for i in range(500):
            app_logger.error("order %s failed", batch * 500 + i)
        time.sleep(0.05)  # the buffer holds 1,000: it must be drained while the request is out
    assert handler.stats().dropped == 0
    bot.release()
    assert handler.flush(timeout=10.0)
    stats = handler.stats()
    assert (stats.delivered_records, stats.dropped, stats.pending) == (5001, 0, 0)


def test_wecom_mentions_of_all_and_of_phone_numbers_notify(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    # WeCom markdown notifies only <@userid>: @all and phones go in one extra text message, when due.
    bot = fake_platforms.add_bot("wecom")
    handler = make_handler(bot.url, mentions={"CRITICAL": ["all", "13800000001"], "ERROR": ["zhangsan"]})
    app_logger.addHandler(handler)
    app_logger.error("disk almost full")
    assert handler.flush(timeout=5.0)
    assert bot.notified() == ["zhangsan"] and len(bot.messages) == 1
    app_logger.critical("database down")
    assert handler.flush(timeout=5.0)
    assert sorted(bot.notified()) == ["13800000001", "all", "zhangsan", "zhangsan"]
    assert len(bot.messages) == 3 and all(r.accepted for r in bot.received)
    assert handler.stats().messages_sent == 2


PROXY_ANSWERS = [
    (408, b"<html>Request Timeout</html>", {}, "HTTP 408 from 127.0.0.1"),
    (403, b"<html>Access denied by WAF</html>", {}, "firewall or WAF"),
    (404, b"<html>Not Found</html>", {}, "check the URL"),
    (407, b"Proxy Authentication Required", {}, "set proxy="),
    (421, b"Misdirected Request", {}, "wrong server"),
    (499, b"", {}, "HTTP 499"),
    (301, b"", {"Location": "https://open.feishu.cn/moved/TOKEN"}, "use the https://open.feishu.cn URL"),
    (302, b"", {"Location": "https://relay.example/x"}, "redirect to https://relay.example"),
    (307, b"", {"Location": "/elsewhere"}, "does not follow"),
    (308, b"", {"Location": "https://127.0.0.1:1/y"}, "HTTP 308"),
]


@pytest.mark.parametrize(("status", "body", "headers", "said"), PROXY_ANSWERS,
                         ids=[str(answer[0]) for answer in PROXY_ANSWERS])
def test_a_proxys_answer_is_retried_and_explained_not_a_verdict(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capfd: pytest.CaptureFixture[str], status: int, body: bytes, headers: dict[str, str], said: str,
) -> None:
    bot = fake_platforms.add_bot("feishu")
    bot.fail_next(1, Fault.status(status, body, headers))
    handler = make_handler(bot.url)
    app_logger.addHandler(handler)
    app_logger.error("payment failed")
    assert not handler.flush(timeout=0.5)  # the answer was not the platform's: kept, not dropped
    app_logger.error("payment failed again")
    assert handler.flush(timeout=5.0)  # the retry (flush() retries at once) reaches the platform
    assert handler.stats().delivered_records == 2 and handler.stats().dropped == 0
    assert [r.status for r in bot.received] == [status, 200]  # never followed to another host
    err = capfd.readouterr().err
    assert said in err and f"HTTP {status}" in err
    assert bot.token not in err


def test_platform_option_selects_the_platform_for_a_relay_path(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECrelay0123456789")
    relay = fake_platforms.relay("/relay/dingtalk", "/robot/send")
    handler = make_handler(f"{relay}?access_token={bot.token}&secret={bot.secret}", platform="dingtalk")
    app_logger.addHandler(handler)
    app_logger.error("payment failed")
    assert handler.flush(timeout=5.0)
    assert len(bot.messages) == 1 and "payment failed" in bot.texts()[0]
    assert bot.received[0].query["access_token"] == bot.token and "sign" in bot.received[0].query


@pytest.mark.parametrize(("url", "platform", "named"), [
    ("feishu://TOKEN1234", "dingtalk", ("feishu", "dingtalk")),
    ("lark://TOKEN1234", "feishu", ("lark", "feishu")),
    ("https://oapi.dingtalk.com/robot/send?access_token=TOKEN1234", "wecom", ("dingtalk", "wecom")),
    ("http://127.0.0.1:9/open-apis/bot/v2/hook/TOKEN1234", "dingtalk", ("feishu", "dingtalk")),
])
def test_platform_option_that_contradicts_the_url_is_refused_naming_both(
    url: str, platform: str, named: tuple[str, str]
) -> None:
    with pytest.raises(ValueError) as caught:
        ChatHandler(url, platform=platform)
    message = str(caught.value)
    assert all(name in message for name in named) and "contradicts" in message
    assert "TOKEN1234" not in message
