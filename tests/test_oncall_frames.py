"""The application's own frame (issue 14, item 2): the where line and the fingerprint use the innermost
traceback frame in the application's code, not the standard library's (or a framework's)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable

from chatlog import ChatHandler
from chatlog.capture import capture, fingerprint, sample
from chatlog.entry import format_message
from chatlog.testing import FakePlatforms


def parse(text: str) -> object:
    return json.loads(text)  # the innermost frames are json/decoder.py's; this line is the app's


def parse_directly() -> logging.LogRecord:
    try:
        parse("{broken")
    except ValueError:
        return _record(sys.exc_info())
    raise AssertionError("parse did not fail")


def parse_through_the_stdlib() -> logging.LogRecord:
    try:
        list(map(parse, ["{broken"]))  # a different path to the same app frame
    except ValueError:
        return _record(sys.exc_info())
    raise AssertionError("parse did not fail")


def _record(exc_info: object) -> logging.LogRecord:
    return logging.LogRecord("app", logging.ERROR, "/srv/framework/handlers.py", 875, "request failed", None,
                             exc_info, "dispatch")  # type: ignore[arg-type]


def test_the_where_line_is_the_apps_frame_with_the_log_call_beside_it() -> None:
    record = parse_directly()
    entry = sample(capture(record, format_message(record)))
    line = parse.__code__.co_firstlineno + 1
    assert entry.location == f"{__file__}:{line} in parse (logged at /srv/framework/handlers.py:875)"
    assert "json" not in entry.location.rpartition("(")[0]


def test_one_bug_reached_through_different_paths_is_one_group() -> None:
    one, other = parse_directly(), parse_through_the_stdlib()
    first = fingerprint(capture(one, format_message(one)))
    assert first == fingerprint(capture(other, format_message(other)))
    assert first[4].startswith(f"{__file__}:")


def test_a_record_without_an_exception_keeps_its_call_site() -> None:
    record = logging.LogRecord("app", logging.ERROR, "/srv/app/jobs.py", 12, "job failed", None, None, "run")
    assert sample(capture(record, format_message(record))).location == "/srv/app/jobs.py:12 in run"


def _load_orders(text: str) -> object:
    return json.loads(text)  # one call site in the app; the failing frame is the stdlib's


def _load_users(text: str) -> object:
    return json.loads(text)  # another call site; the same failing stdlib line


def test_two_app_call_sites_failing_in_one_library_line_are_counted_as_two_groups(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    handler = make_handler(bot.url, group_wait=0.2)
    app_logger.addHandler(handler)
    for load, times in ((_load_orders, 3), (_load_users, 5), (_load_orders, 4)):
        for _ in range(times):
            try:
                load("{broken")
            except ValueError:
                app_logger.exception("could not load %s", "it")  # one template, level and logger
    assert handler.flush(timeout=5.0)
    text = "\n".join(bot.texts())
    assert "×7" in text and "×5" in text, text  # not ×12 in one group
    assert handler.stats().delivered_records == 12
