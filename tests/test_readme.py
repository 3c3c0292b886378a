"""The README's own code runs as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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


def test_make_example_runs_an_example_with_the_projects_venv() -> None:
    make = shutil.which("make")
    assert make is not None, "make is needed: the README's first commands use it"
    venv = sys.prefix  # the venv running the tests stands in for .venv; -o: never reinstall it here
    env = {key: value for key, value in os.environ.items() if key != "CHATLOG_URL"}
    result = subprocess.run(
        [make, "-s", "-o", f"{venv}/.installed-dev", "example", "NAME=script", f"VENV={venv}"],
        cwd=README.parent, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alert received by the fake bot" in result.stdout
    assert "warehouse API timed out" in result.stdout
    usage = subprocess.run([make, "-s", "-o", f"{venv}/.installed-dev", "example", f"VENV={venv}"],
                           cwd=README.parent, env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode != 0
    assert "make example NAME=script" in usage.stderr and "loguru_app" in usage.stderr


GUIDES = README.parent / "docs" / "platforms"


def _registered_names() -> set[str]:
    from chatlog.destinations import platform_classes

    return {name for cls in platform_classes() for name in cls.names}


def test_every_group_bot_platform_has_a_guide_the_readme_links() -> None:
    from chatlog.testing import PLATFORM_RULES

    text = README.read_text(encoding="utf-8")
    assert "](docs/platforms/)" in text, "the README links no list of platform guides"
    linked = set(re.findall(r"\]\((docs/platforms/[\w-]+\.md)\)", text))
    assert {"docs/platforms/feishu.md", "docs/platforms/dingtalk.md", "docs/platforms/wecom.md"} <= linked
    for path in linked:
        assert (README.parent / path).is_file(), path
    for rules in PLATFORM_RULES:  # a platform added to the registry needs its guide too
        assert any((GUIDES / f"{name}.md").is_file() for name in rules.names), rules.names


def test_platform_guides_code_builds_handlers_as_shown(make_handler: Any) -> None:
    import logging
    import types

    root = logging.getLogger()
    made: list[Any] = []

    def build(url: str, **options: Any) -> Any:
        made.append(make_handler(url, **options))
        return made[-1]

    registered = _registered_names()
    guides = [guide for guide in sorted(GUIDES.glob("*.md")) if guide.stem in registered]
    assert {"feishu", "lark", "dingtalk", "wecom"} <= {guide.stem for guide in guides}
    for guide in guides:
        for block in re.findall(r"```python\n(.*?)```", guide.read_text(encoding="utf-8"), re.S):
            namespace: dict[str, Any] = {"chatlog": types.SimpleNamespace(ChatHandler=build)}
            code = block.replace("import chatlog\n", "")
            try:
                exec(compile(code, str(guide), "exec"), namespace)
            finally:
                for handler in made:
                    root.removeHandler(handler)
    assert len(made) >= 7  # the examples of the Feishu, DingTalk and WeCom guides at least
    assert all("***" in repr(handler) and "SEC..." not in repr(handler) for handler in made)
