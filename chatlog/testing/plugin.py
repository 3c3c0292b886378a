"""pytest plugin (entry point ``chatlog``): the ``fake_platforms`` and ``redis_server`` fixtures."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator

import pytest

from chatlog.testing.redis_server import RedisServer, RedisUnavailable
from chatlog.testing.server import FakePlatforms


def running_fake_platforms() -> Generator[FakePlatforms, None, None]:
    """A started FakePlatforms, stopped when the generator is closed (the fixture's body, testable alone)."""
    with FakePlatforms() as fake:
        yield fake


@pytest.fixture
def fake_platforms() -> Iterator[FakePlatforms]:
    """Fake Feishu/Lark, DingTalk and WeCom bots on 127.0.0.1, stopped after the test."""
    yield from running_fake_platforms()


def in_ci() -> bool:
    """True when ``CI`` is set (``true``, ``1``, ``yes``): a missing service then fails, never skips."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` of the test's own on a unix socket (``state=redis_server.url``), stopped
    after the test; ``stop()``/``start()`` take it down and bring it back empty. Without an installed
    ``redis-server`` the test skips, or fails when ``CI`` is set."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(RedisServer.started())
        except RedisUnavailable as exc:
            if in_ci():
                pytest.fail(str(exc), pytrace=False)
            pytest.skip(str(exc))
        yield server
