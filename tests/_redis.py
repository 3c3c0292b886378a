"""The ``redis_server`` fixture: a real ``redis-server`` of the test's own (`chatlog.testing.redis_server`).

It yields a `RedisServer`: its ``url`` (``unix:///…/redis.sock``), ``stop()`` and ``start()`` for "Redis
down mid-incident" (a restarted server has lost its data), ``command()`` for a raw command. With
``CI=true`` a missing or broken ``redis-server`` fails the test (``.ci/run`` installs it); elsewhere it
skips with the reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from chatlog.testing.redis_server import RedisServer, RedisUnavailable


def in_ci() -> bool:
    """True when the suite runs in CI, where a missing service is a failure, never a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A running `RedisServer`, stopped (and its directory removed) after the test."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(RedisServer.started())
        except RedisUnavailable as exc:
            if in_ci():
                pytest.fail(str(exc), pytrace=False)
            pytest.skip(str(exc))
        yield server
