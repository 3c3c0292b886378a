"""The application's own frame (issue 14, item 2): the where line and the fingerprint use the innermost
traceback frame in the application's code, not the standard library's (or a framework's)."""

from __future__ import annotations

import json
import logging
import sys

from chatlog.capture import capture, fingerprint, sample
from chatlog.entry import format_message


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
