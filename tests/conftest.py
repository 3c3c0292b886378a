"""Shared fixtures: handlers that are always closed and whose accounting is always checked."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatlog import ChatHandler, ChatStats


def assert_accounting(stats: ChatStats) -> None:
    """The invariant every handler keeps: nothing disappears silently."""
    assert stats.accepted == stats.delivered_records + stats.dropped + stats.pending, stats


@pytest.fixture
def make_handler() -> Iterator[Callable[..., ChatHandler]]:
    """Build ChatHandlers; each is closed after the test and its accounting checked."""
    made: list[ChatHandler] = []

    def make(url: str, **options: Any) -> ChatHandler:
        options.setdefault("group_wait", 0.05)
        options.setdefault("group_interval", 0.1)
        options.setdefault("close_timeout", 2.0)
        handler = ChatHandler(url, **options)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()
        assert_accounting(handler.stats())


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A logger of the application's, isolated from the root logger and cleaned up after."""
    logger = logging.getLogger(f"app.test.{id(object())}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
