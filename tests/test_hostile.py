"""Input that attackers (or accidents) shape: log text that tries to mention, link or add buttons, log
calls with objects that break formatting, storms that try to exhaust memory. The application never
sees an exception, every payload stays well-formed and inert, and chatlog's memory stays bounded.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import shutil
import string
import subprocess
import sys
import time
import tracemalloc
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlog import ChatHandler
from chatlog.capture import capture
from chatlog.destinations import resolve
from chatlog.digest import Context, Digest, GroupSummary, Mentions
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.entry import Entry, format_message
from chatlog.platforms._base import Payload
from chatlog.testing import PLATFORM_RULES, FakePlatforms
from tests import registry
from tests.conftest import assert_accounting, attach_only

# --- what "inert" means, per platform -----------------------------------------------------------------------

INJECTIONS = [
    '<at user_id="all">所有人</at>', "<at id=all></at>", '<at id="ou_evil"></at>', "<at email=a@b.c></at>",
    "@all", "@13912345678", "@user-1", "<@all>", "<@zhangsan>", '<font color="warning">', "</font>",
    "[click](http://evil.example)", "![img](http://evil.example/x.png)", "[ref]: http://evil.example",
    "[x][ref]",
    '<a href="http://evil.example">x</a>', "<link>",
    '"},{"tag":"action","actions":[{"tag":"button","url":"http://evil.example"}]},{"tag":"markdown","content":"',
    '{"tag":"button","text":{"tag":"plain_text","content":"pay"},"url":"http://evil.example"}',
    "```", "\n```\n", "`", "**", "\n# Resolved\n", "\n> quoted", "\\", "\u202e", "\x00", "\x1b[31m",
    "\ud800", "\udfff", "\u2028", "<script>alert(1)</script>", "&lt;at id=all&gt;", "\n[ref]: http://evil",
]
VALID_MENTIONS = ["all", "@all", "ou_abc", "13800000000", "user-1"]
MALFORMED_MENTIONS = ["x></at><at id=all", "<@all>", "a b", '"quoted"', "all\n<at id=all>"]
_NO_LINK = re.compile(r"\][(\[:]")
_LIVE_KEYS = {"url", "href", "multi_url", "actions", "action", "behaviors", "btns", "singleURL", "messageURL",
              "picURL", "actionURL"}


def expected_mentions(configured: tuple[str, ...], module: ModuleType | None = None) -> list[str]:
    """The mentions the configuration asks for: well-formed ids, ``@all`` spelled ``all``, no repeats;
    with `module`, only those its platform can notify (its fake's ``mentionable``, when it has one:
    Discord mentions user ids, not ``ou_abc``)."""
    mentionable = getattr(registry.fake_of(module), "mentionable", None) if module else None
    ids: list[str] = []
    for raw in configured:
        value = "all" if raw in ("all", "@all") else raw
        if raw in VALID_MENTIONS and value not in ids and (mentionable is None or mentionable(raw)):
            ids.append(value)
    return ids


def assert_well_formed(module: ModuleType, payload: Payload) -> None:
    """Valid JSON, strict UTF-8 (no lone surrogate), taken by the fake platform (sizes, shape), inert."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    assert json.loads(body) == payload
    assert registry.refusal(module, payload) == ""
    assert registry.live_markup(module, payload) == []


def module_named(platform: str) -> ModuleType:
    """The platform module serving a platform name."""
    return next(module for module in registry.MODULES if platform in registry.class_of(module).names)


BOT_PLATFORMS = [rules.names[0] for rules in PLATFORM_RULES]


# --- any digest, any text -----------------------------------------------------------------------------------

PIECES = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(max_size=16),
    st.text(alphabet=st.characters(categories=["Cs", "Cc", "Cf", "Zl", "Zp", "So"]), max_size=8),
    st.sampled_from(list("<>[]()!@`*_#~|\\\"\n\t:")),
)
TEXT = st.builds(lambda parts, times: "".join(parts) * times, st.lists(PIECES, max_size=6),
                 st.sampled_from([1, 1, 1, 40, 2_000]))
MENTION = st.sampled_from(VALID_MENTIONS + MALFORMED_MENTIONS)


@st.composite
def hostile_groups(draw: st.DrawFn) -> GroupSummary:
    count = draw(st.integers(1, 10**6))
    level = draw(st.sampled_from([logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]))
    sample = Entry(created=1.7e9, level=level, level_name=draw(TEXT), logger=draw(TEXT), message=draw(TEXT),
                   pathname=draw(TEXT), lineno=draw(st.integers(0, 10**6)), func=draw(TEXT),
                   exc_type=draw(st.none() | TEXT), traceback=draw(st.none() | TEXT),
                   extra=tuple(draw(st.lists(st.tuples(TEXT, TEXT), max_size=3))))
    return GroupSummary(sample=sample, count=count, total=count + draw(st.integers(0, 10)),
                        first_seen=1.7e9, last_seen=1.7e9 + draw(st.integers(0, 10**5)),
                        repeat=draw(st.booleans()), merged_groups=draw(st.sampled_from([0, 0, 0, 7])))


@st.composite
def hostile_digests(draw: st.DrawFn) -> Digest:
    groups = tuple(draw(st.lists(hostile_groups(), max_size=12)))
    context = Context(service=draw(st.none() | TEXT), environment=draw(st.none() | TEXT), host=draw(TEXT),
                      pid=draw(st.integers(0, 2**22)))
    return Digest(groups=groups, level_counts=(("ERROR", sum(g.count for g in groups)),),
                  window_start=1.7e9, window_end=1.7e9 + 60, context=context,
                  dropped=draw(st.integers(0, 10**6)), mentions=tuple(draw(st.lists(MENTION, max_size=4))))


@settings(max_examples=120, deadline=None)
@given(one=hostile_digests(), keyword=st.none() | st.text(string.ascii_lowercase, min_size=3, max_size=12))
def test_any_digest_renders_inert_well_formed_payloads_with_only_the_configured_mentions(
    one: Digest, keyword: str | None
) -> None:
    for module in registry.MODULES:
        destination = resolve(registry.class_of(module).example, keyword=keyword).destination
        payloads = destination.render_all(one)
        notified: list[str] = []
        for payload in payloads:
            assert_well_formed(module, payload)
            notified += registry.notified(module, payload)
        assert sorted(set(notified)) == sorted(expected_mentions(one.mentions, module)), module.__name__
        assert len(notified) == len(set(notified)), module.__name__


# --- the same through the whole pipeline: logger → handler → fake platform ----------------------------------


@pytest.mark.parametrize("platform", BOT_PLATFORMS)
@pytest.mark.parametrize("configured", [(), ("ou_abc", "13800000000")], ids=["no-mentions", "two-mentions"])
def test_injections_in_log_records_reach_the_platform_inert(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    platform: str, configured: tuple[str, ...],
) -> None:
    bot = fake_platforms.add_bot(platform, **registry.rules_of(module_named(platform)).demo)  # type: ignore[union-attr]
    handler = make_handler(bot.url, mentions={"ERROR": list(configured)} if configured else None,
                           service=INJECTIONS[0], environment=INJECTIONS[7])
    attach_only(app_logger, handler)
    for n, injection in enumerate(INJECTIONS):
        app_logger.error("kind %d: %s", n, injection, extra={"note": injection, injection: "value"})
    try:
        raise RuntimeError(" ".join(INJECTIONS))
    except RuntimeError:
        app_logger.exception("\n".join(INJECTIONS))
    app_logger.critical(" ".join(INJECTIONS) * 200)
    assert handler.flush(timeout=5.0)
    assert bot.messages and all(r.accepted for r in bot.received)
    for payload in bot.messages:
        assert_well_formed(module_named(platform), payload)
    assert sorted(set(bot.notified())) == sorted(expected_mentions(configured, module_named(platform)))
    assert handler.stats().delivered_records == len(INJECTIONS) + 2


# --- log calls that break formatting ------------------------------------------------------------------------


class StrRaises:
    def __str__(self) -> str:
        raise RuntimeError("broken __str__")


class StrNotStr:
    def __str__(self) -> Any:
        return 42


class ReprRecurses:
    def __repr__(self) -> str:
        return f"<{self!r}>"


class ExceptionStrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("broken exception __str__")


HUNDRED_MB = 100_000_000


@pytest.fixture(scope="module")
def huge_text() -> Iterator[str]:
    text = "x" * HUNDRED_MB
    yield text
    del text


def _raise_and_log(logger: logging.Logger, exc: BaseException) -> None:
    try:
        raise exc
    except BaseException:
        logger.exception("request failed")


HOSTILE_CALLS: list[tuple[str, Callable[[logging.Logger, str], None], str]] = [
    ("str-raises", lambda log, _: log.error(StrRaises()), "unprintable StrRaises"),
    ("str-returns-non-str", lambda log, _: log.error(StrNotStr()), "unprintable StrNotStr"),
    ("repr-recursion", lambda log, _: log.error("state: %r", ReprRecurses()), "RecursionError"),
    ("too-few-args", lambda log, _: log.error("%s and %s", 1), "could not format"),
    ("wrong-arg-type", lambda log, _: log.error("%d apples", "many"), "could not format"),
    ("too-many-args", lambda log, _: log.error("no placeholder", 1, 2), "could not format"),
    ("bytes-message", lambda log, _: log.error(b"\xff\xfe raw"), "b'\\xff\\xfe raw'"),
    ("extra-with-a-non-str-key", lambda log, _: log.error("with extra", extra={1: "one", "ok": "fine"}),  # type: ignore[dict-item]
     "ok=fine"),
    ("exception-str-raises", lambda log, _: _raise_and_log(log, ExceptionStrRaises()), "str() failed"),
    ("100MB-message", lambda log, huge: log.error(huge), "xxxxxxxxxx"),
    ("100MB-argument-as-repr", lambda log, huge: log.error("payload %r", huge), "payload 'xxxxxxxxxx"),
    ("100MB-in-a-dict-argument", lambda log, huge: log.error("body %(body)s", {"body": huge}),
     "body xxxxxxxx"),
    ("100MB-exception-message", lambda log, huge: _raise_and_log(log, ValueError(huge)), "ValueError: xxxx"),
]


@pytest.mark.parametrize(("call", "shown"), [c[1:] for c in HOSTILE_CALLS], ids=[c[0] for c in HOSTILE_CALLS])
def test_hostile_log_call_never_raises_stays_fast_and_the_alert_says_what_happened(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str], huge_text: str, call: Callable[[logging.Logger, str], None],
    shown: str,
) -> None:
    bot = fake_platforms.add_bot("feishu")
    handler = make_handler(bot.url)
    attach_only(app_logger, handler)
    began = time.thread_time()  # CPU time of this thread: what formatting costs, whatever the machine's load
    call(app_logger, huge_text)
    took = time.thread_time() - began
    assert took < 0.05, f"the log call took {took * 1000:.0f} ms of CPU"
    assert handler.flush(timeout=5.0)
    text = "\n".join(bot.texts())
    assert shown in text, text[:2000]
    assert len(text) < 20_000
    assert handler.stats().delivered_records == 1
    assert capsys.readouterr().err == ""


def test_100mb_of_bytes_is_cut_before_it_is_formatted() -> None:
    record = logging.LogRecord("app", logging.ERROR, "app.py", 1, b"\x00" * HUNDRED_MB, None, None)
    began = time.thread_time()
    message = format_message(record)
    took = time.thread_time() - began
    assert took < 0.05 and len(message) < 20_000
    assert message.startswith("b'\\x00\\x00") and "bytes cut" in message


# --- memory stays bounded -----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _retained_by(work: Callable[[], None]) -> int:
    """Bytes still allocated (by anything) after `work` returned and garbage was collected."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_storm_of_distinct_long_templates_keeps_memory_bounded_and_every_record_counted(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("wecom", rate_limit=False)
    clock = Clock()
    dispatcher = Dispatcher(resolve(bot.url).destination, timing=Timing(max_groups=200), clock=clock,
                            start=False)
    try:

        def storm() -> None:
            for chunk in range(10):
                for n in range(1_000):
                    # f-string templates: each record brings its own 3,000-character template
                    template = f"job {chunk * 1_000 + n:05d} failed: " + "detail " * 430 + "%s"
                    record = logging.LogRecord("jobs", logging.ERROR, "jobs.py", 9, template, (n,), None)
                    dispatcher.queue(capture(record, format_message(record)))
                dispatcher.step()

        retained = _retained_by(storm)
        assert retained < 6_000_000, f"{retained / 1e6:.1f} MB kept for 10,000 records"
        clock.now += 5.0
        dispatcher.step()
        assert dispatcher.stats().delivered_records == 10_000
        assert "ERROR · 10,000 records" in bot.texts()[0] and "10,000 ERROR · 10,000 groups" in bot.texts()[0]
    finally:
        dispatcher.close(1.0)
        assert_accounting(dispatcher.stats())


def test_per_group_memory_is_bounded_whatever_a_record_carries(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("feishu", rate_limit=False)
    dispatcher = Dispatcher(resolve(bot.url).destination, timing=Timing(max_groups=200), clock=Clock(),
                            start=False)
    megabyte = "m" * 1_000_000
    try:
        raise ValueError(megabyte)
    except ValueError:
        exc_info = sys.exc_info()
    extra = {f"field_{n}": megabyte for n in range(30)}
    try:

        def heavy_records() -> None:
            for n in range(200):
                record = logging.LogRecord("app", logging.ERROR, "app.py", n, f"kind {n} " + megabyte, None,
                                           exc_info, "handler", megabyte)
                record.__dict__.update(extra)
                dispatcher.queue(capture(record, format_message(record)))
                if n % 10 == 0:
                    dispatcher.step()
            dispatcher.step()

        retained = _retained_by(heavy_records)
        assert dispatcher.stats().pending == 200
        assert retained < 8_000_000, f"{retained / 1e6:.1f} MB kept for 200 groups"
    finally:
        dispatcher.close(1.0)


def test_new_error_after_many_delivered_ones_is_shown_on_its_own(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("dingtalk", rate_limit=False)
    clock = Clock()
    timing = Timing(group_wait=5.0, group_interval=60.0, max_groups=5)
    dispatcher = Dispatcher(resolve(bot.url).destination, timing=timing, clock=clock, start=False)
    try:
        for kind in range(12):
            record = logging.LogRecord("app", logging.ERROR, "app.py", kind, f"known failure {kind} %s",
                                       (1,), None)
            dispatcher.queue(capture(record, record.getMessage()))
        dispatcher.step()
        clock.now += 5.0
        dispatcher.step()
        assert len(bot.messages) == 1
        record = logging.LogRecord("app", logging.ERROR, "app.py", 99, "disk %s is full", ("/var",), None)
        dispatcher.queue(capture(record, record.getMessage()))
        clock.now += 60.0
        dispatcher.step()
        clock.now += 5.0
        dispatcher.step()
        latest = bot.texts()[-1]
        assert len(bot.messages) == 2 and "disk /var is full" in latest, latest
        assert dispatcher.stats().delivered_records == 13
    finally:
        dispatcher.close(1.0)
        assert_accounting(dispatcher.stats())


def test_overflowing_critical_records_keep_their_level_and_their_mention(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("dingtalk", rate_limit=False)
    clock = Clock()
    dispatcher = Dispatcher(resolve(bot.url).destination, timing=Timing(max_groups=5), clock=clock,
                            mentions=Mentions(((logging.CRITICAL, ("all",)),)), start=False)
    try:
        for n in range(25):  # the table fills with warnings, then distinct criticals overflow it
            level = logging.WARNING if n < 5 else logging.CRITICAL
            text = f"slow query {n}" if n < 5 else f"shard {n} lost"
            record = logging.LogRecord("db", level, "db.py", n, text + " %s", (n,), None)
            dispatcher.queue(capture(record, record.getMessage()))
        dispatcher.step()
        clock.now += 5.0
        dispatcher.step()
        payload = bot.messages[0]
        assert payload["at"]["isAtAll"] is True
        assert "20 CRITICAL, 5 WARNING" in bot.texts()[0]
    finally:
        dispatcher.close(1.0)
        assert_accounting(dispatcher.stats())


# --- the secret scan itself ---------------------------------------------------------------------------------


def test_secret_scan_knows_every_bots_secrets_in_any_form(
    fake_platforms: FakePlatforms, find_secrets: Callable[[str], list[str]]
) -> None:
    secrets_in = find_secrets
    bot = fake_platforms.add_bot("dingtalk", secret="SECscan+/=0123456789")
    assert bot.secret is not None
    assert secrets_in(f"POST /robot/send?access_token={bot.token}")
    assert secrets_in(f"sign?secret={urllib.parse.quote_plus(bot.secret)}")
    assert secrets_in(f"sign?secret={urllib.parse.quote(bot.secret, safe='')}")
    assert secrets_in(repr(resolve(bot.url))) == []
    assert secrets_in("dingtalk://***") == []


def test_secret_scan_fails_a_run_that_prints_a_token(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_leaky.py").write_text(
        "import sys\n"
        "def test_prints_a_key(fake_platforms):\n"
        "    sys.stderr.write('sending with ' + fake_platforms.add_bot('wecom').token + '\\n')\n"
        "def test_prints_a_masked_key(fake_platforms):\n"
        "    fake_platforms.add_bot('wecom')\n"
        "    sys.stderr.write('sending to wecom://***\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout
    assert "secret leak(s): Captured stderr call" in result.stdout
    assert "1 failed, 1 passed" in result.stdout
