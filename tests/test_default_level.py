"""A handler or sink built with only a URL alerts on ERROR and up; an explicit ``level=`` wins."""

from __future__ import annotations

import logging
from collections.abc import Callable

from loguru import logger as loguru_logger

import chatlog.loguru
from chatlog import ChatHandler
from chatlog.testing import FakePlatforms
from tests.conftest import assert_accounting


def test_info_and_warning_do_not_reach_the_chat_by_default(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("wecom")
    handler = make_handler(bot.url)
    app_logger.addHandler(handler)
    app_logger.info("user signed in")
    app_logger.warning("slow query")
    app_logger.error("payment failed")
    assert handler.flush(timeout=5.0)
    texts = bot.texts()
    assert len(texts) == 1 and "payment failed" in texts[0]
    assert "user signed in" not in texts[0] and "slow query" not in texts[0]
    assert handler.level == logging.ERROR and handler.stats().accepted == 1


def test_an_explicit_level_delivers_info(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("wecom")
    handler = make_handler(bot.url, level="INFO")
    app_logger.addHandler(handler)
    app_logger.info("deploy finished")
    assert handler.flush(timeout=5.0)
    assert any("deploy finished" in text for text in bot.texts())


def test_the_loguru_sink_defaults_to_error_and_takes_an_explicit_level(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECdefaultlevel0123456789")
    default = chatlog.loguru.sink(bot.url, group_wait=0.05, close_timeout=2.0)
    chatty = chatlog.loguru.sink(bot.url, group_wait=0.05, close_timeout=2.0, level="INFO")
    sink_ids = [loguru_logger.add(default, level="DEBUG"), loguru_logger.add(chatty, level="DEBUG")]
    try:
        loguru_logger.info("cache warmed")
    finally:
        for sink_id in sink_ids:
            loguru_logger.remove(sink_id)  # delivers what is pending
    assert default.stats().accepted == 0
    assert chatty.stats().delivered_records == 1
    assert [text for text in bot.texts() if "cache warmed" in text] != []
    assert_accounting(chatty.stats())
