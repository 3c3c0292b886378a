"""Application objects run on the application thread, at log time, and never on chatlog's threads.

Over real HTTP against the fake platforms: extras and context fields become bounded text when the
record is logged; whatever an application object raises (BaseException subclasses included), the
dispatcher keeps running and the accounting holds after each one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import pytest

from chatlog import ChatHandler
from chatlog.testing import FakeBot, FakePlatforms
from tests.conftest import assert_accounting, attach_only


class Raises:
    """An ``extra=`` value whose ``__str__`` raises what it was given."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __str__(self) -> str:
        raise self.exc

    __repr__ = __str__


class Custom(BaseException):
    """A BaseException subclass that is neither Exception nor one of Python's own."""


class Brutal(ValueError):
    """An exception whose own text cannot be had."""

    def __str__(self) -> str:
        raise SystemExit(3)


@pytest.fixture
def bot(fake_platforms: FakePlatforms) -> FakeBot:
    return fake_platforms.add_bot("feishu", rate_limit=False)


@pytest.fixture
def handler(bot: FakeBot, make_handler: Callable[..., ChatHandler],
            app_logger: logging.Logger) -> ChatHandler:
    made = make_handler(bot.url, group_wait=0.05, group_interval=0.05)
    attach_only(app_logger, made)
    return made


def delivered_after(handler: ChatHandler, bot: FakeBot, logger: logging.Logger, text: str) -> bool:
    """A fresh record still reaches the chat: the dispatcher is alive."""
    logger.error(text)
    return handler.flush(5.0) and any(text in t for t in bot.texts())


@pytest.mark.parametrize("context_fields", [None, ["cart"]])
def test_extras_show_what_they_were_when_logged_not_what_they_became(
    bot: FakeBot, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    context_fields: list[str] | None,
) -> None:
    handler = make_handler(bot.url, context_fields=context_fields)
    attach_only(app_logger, handler)
    cart = ["apple"]
    app_logger.error("checkout failed", extra={"cart": cart})
    cart.append("stolen-later")
    assert handler.flush(5.0)
    text = bot.texts()[0]
    assert "apple" in text and "stolen-later" not in text


@pytest.mark.parametrize("exc", [asyncio.CancelledError(), GeneratorExit(), Custom("odd"), RuntimeError("x")],
                         ids=["CancelledError", "GeneratorExit", "custom-BaseException", "RuntimeError"])
def test_an_extra_raising_anything_is_described_and_alerting_goes_on(
    handler: ChatHandler, bot: FakeBot, app_logger: logging.Logger, exc: BaseException
) -> None:
    app_logger.error("payment failed", extra={"order": Raises(exc)})  # returns normally
    assert_accounting(handler.stats())
    assert handler.flush(5.0)
    assert f"unprintable Raises: {type(exc).__name__}" in bot.texts()[0]
    assert delivered_after(handler, bot, app_logger, "still alerting")
    stats = handler.stats()
    assert_accounting(stats)
    assert (stats.accepted, stats.delivered_records, stats.dropped) == (2, 2, 0)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(2)], ids=["KeyboardInterrupt", "SystemExit"])
def test_ctrl_c_or_exit_raised_by_an_extra_reaches_the_caller_and_nothing_is_half_counted(
    handler: ChatHandler, bot: FakeBot, app_logger: logging.Logger, exc: BaseException
) -> None:
    with pytest.raises(type(exc)):  # as with the stdlib's own handlers: the process was told to stop
        app_logger.error("payment failed", extra={"order": Raises(exc)})
    assert_accounting(handler.stats())
    assert handler.stats().accepted == 0
    assert delivered_after(handler, bot, app_logger, "still alerting")
    assert_accounting(handler.stats())


def test_an_exception_whose_text_raises_system_exit_does_not_stop_the_dispatcher(
    handler: ChatHandler, bot: FakeBot, app_logger: logging.Logger
) -> None:
    try:
        raise Brutal()
    except Brutal:
        app_logger.exception("import failed")
    assert handler.flush(5.0)
    assert "import failed" in bot.texts()[0]
    assert_accounting(handler.stats())
    assert delivered_after(handler, bot, app_logger, "still alerting")
    assert_accounting(handler.stats())


def test_a_slow_extra_delays_only_its_own_log_call(
    handler: ChatHandler, bot: FakeBot, app_logger: logging.Logger
) -> None:
    class Slow:
        def __str__(self) -> str:
            time.sleep(2.0)
            return "slow value"

    slow_call = threading.Thread(target=app_logger.error, args=("report failed",),
                                 kwargs={"extra": {"report": Slow()}})
    slow_call.start()
    time.sleep(0.1)
    began = time.monotonic()
    app_logger.error("database down")
    assert bot.wait_for(1, 1.5), "another thread's slow __str__ held every alert back"
    assert time.monotonic() - began < 1.5
    assert slow_call.is_alive()  # the slow one is still in its own log call
    slow_call.join(5.0)
    assert handler.flush(5.0)
    assert any("slow value" in t for t in bot.texts())
    assert_accounting(handler.stats())
