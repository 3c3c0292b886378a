"""The README's own code runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from chatlog.testing import FakePlatforms

README = Path(__file__).resolve().parent.parent / "README.md"


def _block_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, f"no python block after {heading!r}"
    return match.group(1)


def test_testing_your_own_alerting_example_passes(fake_platforms: FakePlatforms) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_block_after("## Testing your own alerting"), "README.md", "exec"), namespace)
    namespace["test_errors_reach_the_team"](fake_platforms)


def test_dictconfig_example_builds_a_handler() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_block_after("### dictConfig / Django `LOGGING`"), "README.md", "exec"), namespace)
    handler_config = namespace["LOGGING"]["handlers"]["chat"]
    assert handler_config["class"] == "chatlog.ChatHandler"
    options = {k: v for k, v in handler_config.items() if k not in ("class", "level")}
    import chatlog

    handler = chatlog.ChatHandler(**options)
    try:
        assert "feishu://***" in repr(handler)
    finally:
        handler.close()
