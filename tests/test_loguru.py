"""The loguru sink, from ``logger.error`` to a message the fake platform accepted."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import re
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

import chatlog.loguru
from chatlog import ChatHandler
from chatlog.loguru import Sink
from chatlog.testing import FakePlatforms
from tests.conftest import assert_accounting

AddSink = Callable[..., tuple[Sink, int]]


@pytest.fixture
def add_sink() -> Iterator[AddSink]:
    """``logger.add(chatlog.loguru.sink(url, **options))``; each sink is removed, its accounting checked."""
    added: list[tuple[Sink, int]] = []

    def add(url: str, *, loguru_level: str | int = "DEBUG", **options: Any) -> tuple[Sink, int]:
        options.setdefault("group_wait", 60.0)  # nothing goes out on its own: tests say when
        options.setdefault("close_timeout", 3.0)
        sink = chatlog.loguru.sink(url, **options)
        sink_id = logger.add(sink, level=loguru_level)
        added.append((sink, sink_id))
        return sink, sink_id

    yield add
    for sink, sink_id in added:
        with contextlib.suppress(ValueError):  # the test removed it already
            logger.remove(sink_id)
        assert_accounting(sink.stats())


def test_a_storm_of_one_loguru_template_arrives_as_one_group_with_its_count(
    fake_platforms: FakePlatforms, add_sink: AddSink
) -> None:
    bot = fake_platforms.add_bot("feishu", secret="feishu-signing-secret")
    sink, sink_id = add_sink(bot.url)
    for order in range(40):
        logger.error("order {} failed", order)
    logger.remove(sink_id)
    texts = bot.texts()
    assert len(texts) == 1, [r.answer for r in bot.received]
    assert "×40" in texts[0] and "order 0 failed" in texts[0]
    assert "order 1 failed" not in texts[0]  # one group with one sample, not forty lines
    stats = sink.stats()
    assert stats.accepted == stats.delivered_records == 40 and stats.pending == 0


def test_logger_exception_sends_the_traceback_of_the_exception_raised(
    fake_platforms: FakePlatforms, add_sink: AddSink
) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECloguru0123456789", keyword="alert")
    _, sink_id = add_sink(bot.url)

    def charge() -> None:
        raise ValueError("card declined")

    try:
        charge()
    except ValueError:
        logger.exception("charge failed for order {}", 7)
    logger.remove(sink_id)
    text = bot.texts()[0]
    assert "charge failed for order 7" in text
    assert "Traceback (most recent call last)" in text and "ValueError: card declined" in text
    assert "in charge" in text and __file__ in text  # the raising frame, from loguru's own record


def test_bound_and_contextualized_fields_are_shown_in_the_alert(
    fake_platforms: FakePlatforms, add_sink: AddSink
) -> None:
    bot = fake_platforms.add_bot("wecom")
    _, sink_id = add_sink(bot.url)
    with logger.contextualize(request_id="req-81"):
        logger.bind(user="alice").error("refund rejected")
    logger.remove(sink_id)
    text = bot.texts()[0]
    assert "refund rejected" in text and "user=alice" in text and "request_id=req-81" in text


def test_removing_the_sink_delivers_what_is_pending_at_once(
    fake_platforms: FakePlatforms, add_sink: AddSink
) -> None:
    bot = fake_platforms.add_bot("feishu")
    sink, sink_id = add_sink(bot.url, group_wait=3600.0, level="WARNING")
    logger.error("disk almost full on {}", "db-1")
    logger.warning("replica lag {} s", 12)
    assert bot.messages == []  # group_wait holds them back
    logger.remove(sink_id)
    assert any("disk almost full on db-1" in t and "replica lag 12 s" in t for t in bot.texts())
    stats = sink.stats()
    assert stats.delivered_records == 2 and stats.pending == 0
    assert_accounting(stats)


def test_awaiting_logger_complete_waits_for_delivery(
    fake_platforms: FakePlatforms, add_sink: AddSink
) -> None:
    bot = fake_platforms.add_bot("feishu")
    sink, _ = add_sink(bot.url)

    async def handle_request() -> list[str]:
        logger.error("upstream timeout after {} ms", 3000)
        await logger.complete()
        return bot.texts()

    texts = asyncio.run(handle_request())
    assert len(texts) == 1 and "upstream timeout after 3000 ms" in texts[0]
    assert sink.stats().pending == 0


def test_synchronous_logger_complete_prints_no_warning(
    fake_platforms: FakePlatforms, add_sink: AddSink
) -> None:
    bot = fake_platforms.add_bot("feishu")
    add_sink(bot.url)
    logger.error("anything")
    with warnings.catch_warnings(record=True) as caught:
        logger.complete()
        gc.collect()  # an unawaited coroutine warns when it is collected
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


def test_levels_loguru_has_and_stdlib_lacks_keep_their_names(
    fake_platforms: FakePlatforms, add_sink: AddSink
) -> None:
    bot = fake_platforms.add_bot("feishu")
    sink, sink_id = add_sink(bot.url, level="SUCCESS")
    logger.info("not alerted: below SUCCESS")
    logger.success("nightly backup done in {} s", 41)
    logger.remove(sink_id)
    text = bot.texts()[0]
    assert "nightly backup done in 41 s" in text and "SUCCESS" in text
    assert "not alerted" not in text
    assert sink.stats().accepted == 1


def test_records_from_chatlogs_own_sends_never_feed_back_through_loguru(
    fake_platforms: FakePlatforms, add_sink: AddSink
) -> None:
    class InterceptHandler(logging.Handler):  # loguru's documented recipe: stdlib logging into loguru
        def emit(self, record: logging.LogRecord) -> None:
            logger.opt(exception=record.exc_info).log(record.levelname, record.getMessage())

    bot = fake_platforms.add_bot("wecom")
    sink, sink_id = add_sink(bot.url, loguru_level="DEBUG")  # httpx logs each request at INFO

    async def log_and_wait() -> None:
        logger.error("one")
        await logger.complete()  # delivered; httpx logged the request on chatlog's thread meanwhile

    loop = asyncio.new_event_loop()  # before the intercept: asyncio logs its selector at DEBUG
    root = logging.getLogger()
    intercept, old_level = InterceptHandler(), root.level
    root.addHandler(intercept)
    root.setLevel(logging.DEBUG)
    try:
        loop.run_until_complete(log_and_wait())
        logger.remove(sink_id)
    finally:
        root.removeHandler(intercept)
        root.setLevel(old_level)
        loop.close()
    assert len(bot.texts()) == 1
    assert bot.token not in "".join(bot.texts()) and "HTTP Request" not in "".join(bot.texts())
    assert sink.stats().accepted == sink.stats().delivered_records == 1


def test_an_unknown_option_is_a_type_error_and_a_bad_value_fails_at_once(
    fake_platforms: FakePlatforms
) -> None:
    bot = fake_platforms.add_bot("feishu")
    with pytest.raises(TypeError, match="grop_wait"):
        chatlog.loguru.sink(bot.url, grop_wait=1.0)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="group_wait"):
        chatlog.loguru.sink(bot.url, group_wait=-1)
    with pytest.raises(ValueError, match="destination"):
        chatlog.loguru.sink("gopher://nowhere")


def test_sink_takes_exactly_the_options_of_chathandler() -> None:
    def options(func: Callable[..., object]) -> list[tuple[str, object]]:
        params = inspect.signature(func).parameters.values()
        return [(p.name, p.default) for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]

    assert options(chatlog.loguru.sink) == options(ChatHandler.__init__)


def test_importing_chatlog_does_not_import_loguru() -> None:
    code = "import sys, chatlog; print('loguru' in sys.modules, 'chatlog.loguru' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_custom_levels_keep_their_name_in_the_alert(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("wecom")
    chat = chatlog.loguru.sink(bot.url, group_wait=0.05, level="SUCCESS")
    sink_id = logger.add(chat, level="SUCCESS")
    try:
        logger.success("nightly backup done in {} s", 42)
        assert chat.stats().accepted == 1
    finally:
        logger.remove(sink_id)
    text = bot.texts()[0]
    assert "SUCCESS" in text and "Level 25" not in text


def test_a_sink_with_chatops_shows_the_command_and_honours_a_mute_typed_in_the_chat(
    fake_platforms: FakePlatforms, add_sink: AddSink, tmp_path: Path
) -> None:
    from chatlog.chatops import HTTPReceiver, Receiver

    state = f"sqlite:///{tmp_path / 'controls.db'}"
    wecom = {"token": "QDG6eK", "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}
    bot = fake_platforms.add_bot("wecom")
    sink, _ = add_sink(bot.url, chatops=state, group_wait=0.05, group_interval=0.05)
    server = HTTPReceiver(Receiver(wecom=wecom, state=state))
    server.serve_in_thread()
    try:
        logger.error("disk {} is full", "/var")
        hint = re.search(r"to silence, type: (mute #([0-9a-f]{4}) 1h)", bot.text_of(bot.wait_for(1)[0]))
        assert hint is not None
        chat = fake_platforms.add_chat("wecom", f"{server.url}/wecom", wecom, bot=bot)
        chat.say("alice", hint.group(1))
        assert chat.wait_replies(2)[-1].startswith(f"Muted #{hint.group(2)} until ")
        logger.error("disk {} is full", "/var")
        logger.error("cache {} is cold", "users")
        latest = bot.text_of(bot.wait_for(3)[-1])
        assert "cache users is cold" in latest and f"#{hint.group(2)} ×1 muted by alice" in latest
        assert sink.stats().muted == 1  # and the fixture checks accepted == delivered + ... + muted
    finally:
        server.stop()
