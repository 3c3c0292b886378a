"""Fingerprints and the group table: what becomes one line of an alert."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlog import ChatHandler
from chatlog.capture import capture, fingerprint, level_of, sample
from chatlog.digest import Context, GroupTable
from chatlog.entry import format_message, normalize
from chatlog.filing import Filing
from chatlog.tally import Tallies
from chatlog.testing import FakePlatforms
from chatlog.testing.rules import PlatformRules
from chatlog.timing import BatchSchedule
from tests import registry

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "benchmarks" / "data" / "python_corpus.csv"


def _record(msg: object, *args: object, level: int = logging.ERROR, name: str = "app",
            exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, level, "/app/orders.py", 42, msg, args or None, exc_info, "pay")


def _key(record: logging.LogRecord) -> object:
    return fingerprint(capture(record, format_message(record)))


def test_records_that_differ_only_in_arguments_share_a_group() -> None:
    assert _key(_record("order %s not found", 1)) == _key(_record("order %s not found", 2))
    assert _key(_record("order %s not found", 1)) != _key(_record("user %s not found", 1))


def test_preformatted_messages_group_by_their_normalised_text() -> None:
    assert _key(_record("order 123 failed")) == _key(_record("order 456 failed"))
    assert _key(_record("user='bob' id 0x1f3a uuid 0b8f3c2e-1d2a-4c3b-9e8f-123456789abc")) == _key(
        _record("user='ann' id 0xbeef uuid 7c9e6679-7425-40de-944b-e07fc1f90ae7"))
    # A quoted word outside key='value' names what went wrong: KeyError 'id' is not KeyError 'email'.
    assert _key(_record("KeyError: 'id'")) != _key(_record("KeyError: 'email'"))
    assert _key(_record("order 123 failed")) != _key(_record("order 123 refunded"))


def test_level_logger_and_exception_type_separate_groups() -> None:
    base = _key(_record("x %s", 1))
    assert base != _key(_record("x %s", 1, level=logging.WARNING))
    assert base != _key(_record("x %s", 1, name="other"))
    assert base != _key(_record("x %s", 1, exc=True))


def test_normalize_keeps_words_and_replaces_variable_parts() -> None:
    assert normalize('paid 12.50 EUR for "item" at 10:42:01') == 'paid <*> EUR for "item" at <*>'


def test_unformattable_messages_are_described_not_raised() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert "could not format" in format_message(_record("%d items", "many"))
    assert "unprintable Broken" in format_message(_record(Broken()))
    assert "1 2" in format_message(_record("%s %s", 1, 2))


def test_snapshot_renders_the_traceback_of_the_sample() -> None:
    record = _record("failed %s", 1, exc=True)
    entry = sample(capture(record, format_message(record)))
    assert entry.exc_type == "ValueError"
    assert entry.traceback is not None and "ValueError: boom" in entry.traceback
    # the raising frame is the application's; the log call beside it
    raise_line = _record.__code__.co_firstlineno + 5  # raise ValueError("boom")
    assert entry.location.endswith(f"test_grouping.py:{raise_line} in _record (logged at /app/orders.py:42)")


def test_extra_fields_are_kept_as_short_strings() -> None:
    record = _record("x")
    record.__dict__.update(request_id="r-1", user={"id": 7})
    entry = sample(capture(record, "x"))
    assert ("request_id", "r-1") in entry.extra
    assert ("user", "{'id': 7}") in entry.extra


def _add(table: GroupTable, record: logging.LogRecord, at: float) -> None:
    message = format_message(record)
    item = capture(record, message)
    table.add(fingerprint(item), at, lambda: sample(item))


def test_storm_of_one_template_becomes_one_group_with_its_count() -> None:
    table = GroupTable()
    for i in range(5000):
        _add(table, _record("order %s not found", i), 100.0 + i / 1000)
    digest = table.digest(200.0, Context(service="checkout"), dropped=0)
    assert len(digest.groups) == 1
    assert digest.groups[0].count == 5000 and digest.total == 5000
    assert digest.groups[0].sample.message == "order 0 not found"
    assert digest.window_start == 100.0 and digest.window_end == 100.0 + 4999 / 1000


def test_groups_are_ordered_by_severity_then_count() -> None:
    table = GroupTable()
    for i in range(3):
        _add(table, _record("warn %s", i, level=logging.WARNING), 1.0)
    _add(table, _record("crit %s", 1, level=logging.CRITICAL), 1.0)
    for i in range(5):
        _add(table, _record("err %s", i), 1.0)
    digest = table.digest(2.0, Context(), 0)
    assert [g.sample.level_name for g in digest.groups] == ["CRITICAL", "ERROR", "WARNING"]
    assert digest.level_counts == (("CRITICAL", 1), ("ERROR", 5), ("WARNING", 3))


def test_group_shown_within_repeat_interval_is_a_repeat_then_full_again() -> None:
    table = GroupTable(repeat_interval=3600.0)
    _add(table, _record("x %s", 1), 0.0)
    first = table.digest(0.0, Context(), 0)
    assert not first.groups[0].repeat
    table.mark_sent(first, 0.0)
    _add(table, _record("x %s", 2), 10.0)
    second = table.digest(10.0, Context(), 0)
    assert second.groups[0].repeat and second.groups[0].count == 1 and second.groups[0].total == 2
    table.mark_sent(second, 10.0)
    _add(table, _record("x %s", 3), 4000.0)
    assert not table.digest(4000.0, Context(), 0).groups[0].repeat


def test_mark_sent_leaves_nothing_unsent_and_forgets_idle_groups() -> None:
    table = GroupTable(repeat_interval=60.0)
    _add(table, _record("x %s", 1), 0.0)
    table.mark_sent(table.digest(0.0, Context(), 0), 0.0)
    assert table.unsent == 0 and len(table) == 1
    _add(table, _record("y %s", 1), 100.0)
    table.mark_sent(table.digest(100.0, Context(), 0), 100.0)
    assert len(table) == 1  # "x" expired out of its repeat window


def test_past_max_groups_new_fingerprints_are_counted_in_one_bucket() -> None:
    table = GroupTable(max_groups=10)
    for i in range(1000):
        _add(table, _record(f"distinct message number {i} " + "abcdefghij"[i % 10] * (i % 7 + 1)), 1.0)
    digest = table.digest(2.0, Context(), 0)
    assert len(table) <= 11
    assert digest.total == 1000
    assert any(g.merged_groups > 0 for g in digest.groups)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a %s", "b %s", "c"]), st.integers(0, 50)), max_size=200))
def test_every_added_record_is_counted_exactly_once(calls: list[tuple[str, int]]) -> None:
    table = GroupTable(max_groups=2)
    for template, arg in calls:
        _add(table, _record(template, arg) if "%" in template else _record(template), 1.0)
    assert table.unsent == len(calls) == table.digest(1.0, Context(), 0).total


GROUP_BOTS = [rules for rules in map(registry.rules_of, registry.MODULES) if rules is not None]


@pytest.mark.parametrize("rules", GROUP_BOTS, ids=[rules.names[0] for rules in GROUP_BOTS])
def test_alert_shows_the_template_of_varied_records_and_one_sample_verbatim(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    rules: PlatformRules,
) -> None:
    bot = fake_platforms.add_bot(rules.names[0], **rules.demo)
    handler = make_handler(bot.url, group_wait=0.05)
    app_logger.addHandler(handler)
    for name, address in [("webmaster", "173.234.31.186"), ("oracle", "10.0.0.8"), ("git", "10.0.0.9")]:
        app_logger.error(f"Invalid user {name} from {address}")  # pre-formatted: template_of
    for order in (7, 8):
        app_logger.error("order %s not found", order)  # %-arguments: record.msg
    app_logger.error("disk full")  # one record: no template line
    assert handler.flush(timeout=5.0)
    # As a reader sees it: full-width brackets (inert markdown) and entities (Slack, Telegram) undone.
    text = "\n".join(bot.texts()).translate(str.maketrans("＜＞", "<>"))
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert "Invalid user webmaster from 173.234.31.186" in text  # the sample, verbatim
    assert "template: Invalid user <*> from <*>" in text
    assert "order 7 not found" in text and "template: order <*> not found" in text
    assert "disk full" in text and text.count("template:") == 2


def test_count_takes_a_known_groups_records_and_a_full_tables_but_makes_no_group() -> None:
    table = GroupTable(max_groups=1)
    assert not table.count("a", 1.0, logging.ERROR) and table.unsent == 0  # `add` makes a group
    _add(table, _record("a %s", 1), 1.0)
    key = _key(_record("a %s", 2))
    assert table.count(key, 2.0, logging.ERROR)
    assert table.count(_key(_record("b %s", 1)), 3.0, logging.ERROR)  # full, none idle: "other"
    assert table.count(_key(_record("b %s", 2)), 3.5, logging.ERROR)  # "other" still, by its key
    digest = table.digest(4.0, Context(), 0)
    assert [(g.count, g.merged_groups) for g in digest.groups] == [(2, 0), (2, 1)]
    table.mark_sent(digest, 4.0)
    # "a" is idle: a new key, and one that went to "other" before, may take its place
    assert not table.count(_key(_record("c %s", 1)), 5.0, logging.ERROR)
    assert not table.count(_key(_record("b %s", 3)), 5.0, logging.ERROR)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a %s", "b %s", "c", "order {} failed", "job {} done"]),
                          st.integers(0, 30), st.sampled_from([logging.WARNING, logging.ERROR])),
                max_size=300), st.integers(1, 4))
def test_filing_in_batches_counts_what_adding_one_by_one_counts(
        calls: list[tuple[str, int, int]], max_groups: int) -> None:
    records = [_record(t, n, level=level) if "%" in t else _record(t.format(n), level=level)
               for t, n, level in calls]
    items = [capture(r, format_message(r), key=(r.msg, r.levelno, r.name, not r.args)) for r in records]
    one_by_one = GroupTable(max_groups=max_groups)
    for item in items:
        one_by_one.add(fingerprint(item), 1.0, lambda item=item: sample(item), level_of(item))
    batched = GroupTable(max_groups=max_groups)
    filing = Filing(batched, BatchSchedule(1.0, 1.0), Tallies(), threading.Lock(), lambda: 1.0)
    assert filing.drain(deque(items), budget_s=None) == (True, len(items))

    def counts(table: GroupTable) -> list[tuple[str, int, int]]:
        return sorted((g.group_id, g.count, g.merged_groups) for g in table.digest(1.0, Context(), 0).groups)

    assert counts(batched) == counts(one_by_one) and filing.processed == len(items)


_FLEET_CHILD = """
import json, logging, random, sys
from chatlog.capture import capture, fingerprint, sample
from chatlog.digest import Context, GroupTable, group_id
from chatlog.entry import format_message

def item(i, text):
    level, name = (logging.ERROR, logging.WARNING)[i % 2], ("app", "app.db", "worker")[i % 3]
    args = (i,) if i % 5 == 0 else None
    record = logging.LogRecord(name, level, "/app/x.py", 7, "job %s failed" if args else text, args, None)
    return capture(record, format_message(record))

messages = json.load(sys.stdin)
rng = random.Random(int(sys.argv[1]))
table = GroupTable(max_groups=100_000)
for n in range(int(sys.argv[2])):  # what this process happened to see before
    it = item(n, "warm-up %d %s" % (rng.randrange(10**6), rng.choice(messages)[::-1]))
    table.add(fingerprint(it), 0.0, lambda: sample(it), it[2])
order = list(range(len(messages)))
rng.shuffle(order)
ids = {}
for i in order:
    it = item(i, messages[i])
    table.add(fingerprint(it), 1.0, lambda: sample(it), it[2])
    ids[i] = group_id(fingerprint(it))
shown = {g.group_id for g in table.digest(2.0, Context(), 0).groups}
assert set(ids.values()) <= shown, "an id the alert does not show"
print(json.dumps(ids, sort_keys=True))
"""


def test_every_process_of_a_fleet_gives_a_record_the_same_group_id_whatever_it_saw_before() -> None:
    with CORPUS.open(newline="", encoding="utf-8") as handle:
        messages = [row["Content"] for row in csv.DictReader(handle)]
    outputs = []
    for seed, warm_up in [(1, 0), (2, 3_000), (3, 400)]:  # hash seeds, histories and orders differ
        env = {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", _FLEET_CHILD, str(seed), str(warm_up)],
                              input=json.dumps(messages), capture_output=True, text=True, env=env,
                              timeout=120, check=True)
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1] == outputs[2] and len(outputs[0]) == len(messages)
    assert len(set(outputs[0].values())) > 40  # distinct events keep distinct ids


def test_a_groups_total_counts_records_taken_out_for_the_fleet_and_given_back_once() -> None:
    table = GroupTable()
    for i in range(3):
        _add(table, _record("x %s", i), 1.0)
    taken = table.take_unsent(2.0)
    assert [t.summary.total for t in taken] == [3] and table.unsent == 0
    _add(table, _record("x %s", 9), 3.0)
    assert table.digest(3.0, Context(), 0).groups[0].total == 4
    table.give_back(taken)
    group = table.digest(4.0, Context(), 0).groups[0]
    assert (group.count, group.total) == (4, 4)
