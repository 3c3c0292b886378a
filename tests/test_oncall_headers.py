"""Headers that read right (issue 14, item 3): the header names the most severe level and the total
of every level separately, and the next line splits that total by level, on every platform."""

from __future__ import annotations

import logging
import re
from types import ModuleType

import pytest

from chatlog.digest import Digest
from chatlog.platforms import _text
from tests import registry
from tests.test_render import T0, digest, group

_MARKUP = re.compile(r"<[^>]*>|\*+|^[#>\s]+")


def reader_lines(module: ModuleType, digest_shown: Digest) -> list[str]:
    """The non-blank lines a reader sees, markup stripped, a platform's repeated title shown once."""
    lines: list[str] = []
    for raw in registry.shown(module, module.render(digest_shown)).splitlines():
        line = _MARKUP.sub("", raw).strip()
        if line and line not in lines:
            lines.append(line)
    return lines


def one_critical_among_many() -> Digest:
    critical = group("payment provider unreachable", count=1, level=logging.CRITICAL, logger="pay")
    errors = group("order 7 failed", count=880, first=T0, last=T0 + 420)
    warnings = group("retrying payment", count=12, level=logging.WARNING, logger="retry")
    return digest(critical, errors, warnings)


@pytest.mark.parametrize("module", registry.MODULES, ids=registry.IDS)
def test_one_critical_among_892_others_is_not_counted_as_893_criticals(module: ModuleType) -> None:
    lines = reader_lines(module, one_critical_among_many())
    assert lines[0] == "CRITICAL · 893 records · checkout · prod"
    assert "CRITICAL ×" not in "\n".join(lines)


@pytest.mark.parametrize("module", registry.MODULES, ids=registry.IDS)
def test_the_line_after_the_header_splits_the_total_by_level(module: ModuleType) -> None:
    lines = reader_lines(module, one_critical_among_many())
    assert lines[1].startswith("1 CRITICAL, 880 ERROR, 12 WARNING · 3 groups within 7m")


@pytest.mark.parametrize("module", registry.MODULES, ids=registry.IDS)
def test_a_single_level_digest_still_says_records_and_their_level(module: ModuleType) -> None:
    lines = reader_lines(module, digest(group(count=1), service=None, environment=None))
    assert lines[0] == "ERROR · 1 record"
    assert lines[1].startswith("1 ERROR · 1 group")


def test_header_and_split_count_the_same_records() -> None:
    shown = one_critical_among_many()
    header = _text.header_line(shown, _text.inert)
    split = _text.summary_line(shown, _text.inert)
    found = re.search(r"· ([\d,]+) records", header)
    assert found is not None
    total = int(found.group(1).replace(",", ""))
    parts = re.findall(r"([\d,]+) (CRITICAL|ERROR|WARNING)", split)
    assert total == sum(int(n.replace(",", "")) for n, _ in parts) == 893


@pytest.mark.parametrize("module", registry.MODULES, ids=registry.IDS)
def test_a_digest_of_drops_only_says_what_was_dropped(module: ModuleType) -> None:
    lines = reader_lines(module, digest(dropped=7))
    assert lines[0] == "ERROR · 7 records dropped · checkout · prod"
