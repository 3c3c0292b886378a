"""The one shape a log record takes inside chatlog: a `Captured` tuple, made once on the application thread.

`capture` (stdlib records) and `capture_values` (loguru) build it; the dispatcher only reads it through
`fingerprint` and `sample`, and never rebuilds a `LogRecord`. Everything that could run application
code (``__str__`` of an argument, an ``extra=`` value, a non-str message) runs here, at log time, and
becomes bounded text; what the dispatcher receives is chatlog's own data, plus the exception's
traceback object, which it renders only for a group's first record.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from types import TracebackType
from typing import Any

from chatlog.entry import (
    EXTRA_VALUE_LIMIT_CHARS,
    TEMPLATE_LIMIT_CHARS,
    Entry,
    exception_type_name,
    normalize,
    render_traceback,
    safe_str,
)

Fingerprint = tuple[int, str, str, str, str]
"""(level, logger name, message template, exception type, innermost frame "file:line")."""

ExcInfo = tuple[Any, Any, Any] | None
"""A record's ``exc_info`` as logging keeps it (``(None, None, None)`` is possible)."""

Captured = tuple[
    str, float, int, str, str, "str | None", str, int, str, "int | None", ExcInfo, "str | None",
    "str | None", tuple[tuple[str, str], ...], Hashable,
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
    """
    msg = record.msg
    template = (msg if type(msg) is str else safe_str(msg, TEMPLATE_LIMIT_CHARS)) if record.args else None
    return capture_values(
        message, record.created, record.levelno, record.levelname, record.name, template, record.pathname,
        record.lineno, record.funcName, record.thread, record.exc_info, record.exc_text, record.stack_info,
        extras_text(record.__dict__, fields), key,
    )


def capture_values(message: str, created: float, level: int, level_name: object, logger: object,
                   template: str | None, pathname: object, lineno: int, func: object, thread: int | None,
                   exc_info: ExcInfo, exc_text: object, stack_info: object,
                   extras: tuple[tuple[str, str], ...], key: Hashable = None) -> Captured:
    """A `Captured` from loose values (the loguru sink has no LogRecord); odd types become text here."""
    return (
        message,
        created if type(created) is float else _number(created, 0.0),
        level if type(level) is int else int(_number(level, logging.ERROR)),
        level_name if type(level_name) is str else safe_str(level_name, 40),
        logger if type(logger) is str else safe_str(logger, 200),
        template,
        pathname if type(pathname) is str else safe_str(pathname, 500),
        lineno if type(lineno) is int else int(_number(lineno, 0)),
        func if type(func) is str else safe_str(func, 200),
        thread,
        exc_info if isinstance(exc_info, tuple) and len(exc_info) == 3 else None,
        exc_text if exc_text is None or type(exc_text) is str else safe_str(exc_text),
        stack_info if stack_info is None or type(stack_info) is str else safe_str(stack_info),
        extras,
        key,
    )


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


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
    for key, value in list(attrs.items()):
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
    message, _, level, _, logger, template = item[:6]
    exc_info = item[10]
    template = normalize(message) if template is None else template[:TEMPLATE_LIMIT_CHARS]
    if exc_info is not None and exc_info[0] is not None:
        return (level, logger, template, exception_type_name(exc_info[0]), _innermost(exc_info[2]))
    return (level, logger, template, "", "")


def sample(item: Captured) -> Entry:
    """The `Entry` a group shows for a captured record: its traceback rendered and capped."""
    (message, created, level, level_name, logger, _, pathname, lineno, func, _, exc_info, exc_text,
     stack_info, extras, _) = item
    exc_type, tb_text = render_traceback(exc_info, exc_text, stack_info)
    return Entry(created=created, level=level, level_name=level_name, logger=logger, message=message,
                 pathname=pathname, lineno=lineno, func=func or "?", exc_type=exc_type, traceback=tb_text,
                 extra=extras)


def level_of(item: Captured) -> int:
    """The captured record's level number."""
    return item[2]


def created_of(item: Captured) -> float:
    """When the captured record was made (``time.time()`` seconds)."""
    return item[1]


def thread_of(item: Captured) -> int | None:
    """The id of the thread that logged the captured record."""
    return item[9]


def key_of(item: Captured) -> Hashable:
    """The tally key the handler counts this record's group under (None: none)."""
    return item[14]


def _innermost(tb: TracebackType | None) -> str:
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
