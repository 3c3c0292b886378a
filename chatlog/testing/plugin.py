"""pytest plugin (entry point ``chatlog``): the ``fake_platforms`` fixture."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from chatlog.testing.server import FakePlatforms


def running_fake_platforms() -> Generator[FakePlatforms, None, None]:
    """A started FakePlatforms, stopped when the generator is closed (the fixture's body, testable alone)."""
    with FakePlatforms() as fake:
        yield fake


@pytest.fixture
def fake_platforms() -> Iterator[FakePlatforms]:
    """Fake Feishu/Lark, DingTalk and WeCom bots on 127.0.0.1, stopped after the test."""
    yield from running_fake_platforms()
