"""The one shape a log record takes inside chatlog: a `Captured` tuple, made once on the application thread.

`capture` (stdlib records) and `capture_values` (loguru) build it; the dispatcher only reads it through
`fingerprint` and `sample`, and never rebuilds a `LogRecord`. Everything that could run application
code (``__str__`` of an argument, an ``extra=`` value, a non-str message) runs here, at log time, and
becomes bounded text; what the dispatcher receives is chatlog's own data, plus the exception's
traceback object, which it renders only for a group's first record.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Hashable, Mapping
from types import TracebackType

from chatlog.entry import (
    EXTRA_VALUE_LIMIT_CHARS,
    TEMPLATE_LIMIT_CHARS,
    Entry,
    exception_type_name,
    render_traceback,
    safe_str,
)
from chatlog.templates import template_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Fingerprint = tuple[int, str, str, str, str]
"""(level, logger name, message template, exception type, innermost frame "file:line")."""

if TYPE_CHECKING:
    ExcInfo = tuple[Any, Any, Any] | None
else:
    ExcInfo = tuple | None  # no `typing` at run time (for Any): `import chatlog` stays cheap
"""A record's ``exc_info`` as logging keeps it (``(None, None, None)`` is possible)."""

Captured = tuple[
    str, float, int, str, str, str | None, str, int, str, int | None, ExcInfo, str | None,
    str | None, tuple[tuple[str, str], ...], Hashable,
]
"""message, created, level, level name, logger, template (None: the message has no arguments), pathname,
lineno, function, thread id, exc_info, exc_text, stack_info, extras as ``(name, text)``, tally key.

A plain tuple, not a dataclass or NamedTuple: an exact tuple of strings and numbers is untracked by
the garbage collector at its first collection, so a full buffer costs the application no gc pauses."""

EXTRA_FIELDS_SHOWN = 20
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_RECORD_ATTR_COUNT = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)


def capture(record: logging.LogRecord, message: str, fields: tuple[str, ...] | None = None,
            key: Hashable = None) -> Captured:
    """What the application thread keeps of a record: its values and its extras as text, not the record.

    `message` is the formatted message; `fields` picks the extras shown (None: all, up to 20); `key` is
    the tally key the handler counts the group's later records under (None: not counted that way).
    Other values are kept as they are: the dispatcher reads only strings and numbers among them and
    shows anything else by its type name, so no application code runs there.
    """
    msg = record.msg
    template = (msg if type(msg) is str else safe_str(msg, TEMPLATE_LIMIT_CHARS)) if record.args else None
    return (message, record.created, record.levelno, record.levelname, record.name, template,
            record.pathname, record.lineno, record.funcName, record.thread, record.exc_info, record.exc_text,
            record.stack_info, extras_text(record.__dict__, fields), key)


def capture_values(message: str, created: float, level: int, level_name: str, logger: str,
                   template: str | None, pathname: str, lineno: int, func: str, thread: int | None,
                   exc_info: ExcInfo, exc_text: str | None, stack_info: str | None,
                   extras: tuple[tuple[str, str], ...], key: Hashable = None) -> Captured:
    """A `Captured` from loose values (the loguru sink has no LogRecord)."""
    return (message, created, level, level_name, logger, template, pathname, lineno, func, thread, exc_info,
            exc_text, stack_info, extras, key)


def extras_text(attrs: dict[Any, Any], names: tuple[str, ...] | None = None) -> tuple[tuple[str, str], ...]:
    """Fields that the caller added with ``extra={...}`` (or `names`, in that order), as bounded text.

    Runs at log time: a value mutated afterwards shows what it was when logged, and a value's ``__str__``
    runs on the thread that logged it, never on chatlog's.
    """
    if names is not None:
        return tuple((key, safe_str(attrs[key], EXTRA_VALUE_LIMIT_CHARS)) for key in names if key in attrs)
    if len(attrs) <= _RECORD_ATTR_COUNT:  # the common case: no extra=, nothing to look at
        return ()
    fields: list[tuple[str, str]] = []
    # logging sets its own attributes first and adds extra= after them: start looking there.
    for key, value in list(itertools.islice(attrs.items(), _RECORD_ATTR_COUNT, None)):
        # extra={1: ...} is accepted by logging and lands in __dict__ with a non-str key
        name = key if type(key) is str else safe_str(key, EXTRA_VALUE_LIMIT_CHARS)
        if name not in _STANDARD_ATTRS and not name.startswith("_"):
            fields.append((name, safe_str(value, EXTRA_VALUE_LIMIT_CHARS)))
            if len(fields) == EXTRA_FIELDS_SHOWN:
                break
    return tuple(fields)


def mapping_text(values: Mapping[Any, Any],
                 names: tuple[str, ...] | None = None) -> tuple[tuple[str, str], ...]:
    """`extras_text` for a plain mapping (loguru's ``extra``): every field, or `names`, as bounded text."""
    if names is not None:
        return tuple((key, safe_str(values[key], EXTRA_VALUE_LIMIT_CHARS)) for key in names if key in values)
    return tuple((safe_str(key, EXTRA_VALUE_LIMIT_CHARS), safe_str(value, EXTRA_VALUE_LIMIT_CHARS))
                 for key, value in list(values.items())[:EXTRA_FIELDS_SHOWN])


def fingerprint(item: Captured) -> Fingerprint:
    """The group a captured record belongs to; records that differ only in their arguments share it."""
    return for_filing(item)[1]


def for_filing(item: Captured) -> tuple[int | None, Fingerprint, int, float, Hashable, bool]:
    """What the dispatcher files a captured record by, read in one go (once per record):
    ``(thread id, fingerprint, level, created, tally key, whether it had a %-template)``."""
    message, created, level, _, logger, template, _, _, _, thread, exc_info, _, _, _, key = item
    # The dispatcher's cost per record: the common case (ints, strs, no exception) is tested first.
    if type(level) is not int:
        level = logging.ERROR
    if type(logger) is not str:
        logger = _text(logger, 200)
    if template is None:
        template, has_template = template_of(message), False
    else:
        template, has_template = template[:TEMPLATE_LIMIT_CHARS], True
    if exc_info is None or type(exc_info) is not tuple or len(exc_info) != 3 or exc_info[0] is None:
        key_parts = (level, logger, template, "", "")
    else:
        key_parts = (level, logger, template, exception_type_name(exc_info[0]), _innermost(exc_info[2]))
    return (thread if type(thread) is int else None, key_parts, level,
            created if type(created) is float else created_of(item), key, has_template)


def sample(item: Captured) -> Entry:
    """The `Entry` a group shows for a captured record: its traceback rendered and capped."""
    exc_info, exc_text, stack_info = _exc_info(item[10]), _optional_text(item[11]), _optional_text(item[12])
    exc_type, tb_text = render_traceback(exc_info, exc_text, stack_info)
    pathname, lineno, func = _text(item[6], 500), item[7] if type(item[7]) is int else 0, _text(item[8], 200)
    logged_at = ""
    frame = app_frame(exc_info[2]) if exc_info is not None and exc_info[0] is not None else None
    if frame is not None and (frame[0], frame[1]) != (pathname, lineno):
        logged_at = f"{pathname}:{lineno}"  # the where line shows the app's frame, the log call beside it
        pathname, lineno, func = frame[0][:500], frame[1], frame[2][:200]
    return Entry(created=created_of(item), level=level_of(item), level_name=_text(item[3], 40),
                 logger=_text(item[4], 200), message=item[0], pathname=pathname, lineno=lineno,
                 func=func or "?", exc_type=exc_type, traceback=tb_text, extra=item[13], logged_at=logged_at)


def level_of(item: Captured) -> int:
    """The captured record's level number (ERROR when the record's was not a number)."""
    level = item[2]
    return level if type(level) is int else logging.ERROR


def created_of(item: Captured) -> float:
    """When the captured record was made (``time.time()`` seconds; 0.0 when not a number)."""
    created = item[1]
    return float(created) if type(created) in (float, int) else 0.0


def _text(value: object, limit: int) -> str:
    # The dispatcher never calls an application object's __str__: an odd value shows its type only.
    if type(value) is str:
        return value[:limit]
    return f"<{type(value).__name__}>"


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value, 100_000)


def _exc_info(value: object) -> ExcInfo:
    return value if type(value) is tuple and len(value) == 3 else None


def _innermost(tb: TracebackType | None) -> str:
    """The fingerprint's frame: the innermost frame of the application's own code (`app_frame`)."""
    frame = app_frame(tb)
    return "" if frame is None else f"{frame[0]}:{frame[1]}"


def app_frame(tb: TracebackType | None) -> tuple[str, int, str] | None:
    """``(file, line, function)`` of the innermost traceback frame in the application's code: not the
    standard library, site-packages/dist-packages or chatlog; the innermost frame of all when none is."""
    found: tuple[str, int, str] | None = None
    innermost: tuple[str, int, str] | None = None
    while tb is not None:
        code = tb.tb_frame.f_code
        innermost = (code.co_filename, tb.tb_lineno, code.co_name)
        if is_app_file(code.co_filename):
            found = innermost
        tb = tb.tb_next
    return found or innermost


_NOT_APP_DIRS: list[tuple[str, ...]] = []
"""The stdlib's and chatlog's directories, found on first use (on chatlog's thread: `import chatlog`
stays cheap, tests/test_import_cost.py)."""


def _not_app_dirs() -> tuple[str, ...]:
    if not _NOT_APP_DIRS:
        import sysconfig

        paths = sysconfig.get_paths()
        mine = os.path.dirname(os.path.abspath(__file__))
        _NOT_APP_DIRS.append(tuple(dict.fromkeys(
            os.path.normcase(os.path.realpath(path)) + os.sep
            for path in (paths.get("stdlib"), paths.get("platstdlib"), mine) if path)))
    return _NOT_APP_DIRS[0]


_APP_FILES: dict[str, bool] = {}


def is_app_file(filename: str) -> bool:
    """True for a file of the application's own code (cached per file name, bounded)."""
    known = _APP_FILES.get(filename)
    if known is not None:
        return known
    path = os.path.normcase(os.path.realpath(filename)) if not filename.startswith("<") else ""
    parts = set(path.split(os.sep))
    installed = bool(parts & {"site-packages", "dist-packages"})
    mine = bool(path) and not path.startswith(_not_app_dirs()) and not installed
    if len(_APP_FILES) < 10_000:
        _APP_FILES[filename] = mine
    return mine
