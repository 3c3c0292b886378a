"""What chatlog keeps of one log record: the `Entry` snapshot and its fingerprint.

The application thread only formats the message and queues ``(record, message)``;
everything here runs on the dispatcher thread.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from chatlog.templates import template_of

MESSAGE_LIMIT_CHARS = 4_000
TRACEBACK_LIMIT_CHARS = 6_000
TRACEBACK_LINE_LIMIT_CHARS = 1_000
"""One piece of a formatted traceback (a frame, or the exception line with its message)."""
EXTRA_VALUE_LIMIT_CHARS = 200
TEMPLATE_LIMIT_CHARS = 500
"""A fingerprint keeps this much of a message template (groups live up to ``repeat_interval``)."""

Fingerprint = tuple[int, str, str, str, str]
"""(level, logger name, message template, exception type, innermost frame "file:line")."""

Captured = tuple[
    str, float, int, str, str, object, bool, str, int, str, int | None, object, str | None, str | None,
    tuple[tuple[Any, object], ...],  # extra={1: ...} puts a non-str key into __dict__
]
"""What ``ChatHandler.emit`` queues (`capture`): message, created, levelno, levelname, name, msg, whether
it had args, pathname, lineno, funcName, thread, exc_info, exc_text, stack_info, extra (name, value) pairs."""

# Positions in a `Captured` tuple (a plain tuple, not a NamedTuple: only exact tuples are untracked by gc).
C_MESSAGE: Final = 0
C_CREATED: Final = 1
C_LEVEL: Final = 2
C_LEVELNAME: Final = 3
C_NAME: Final = 4
C_MSG: Final = 5
C_HAS_ARGS: Final = 6
C_PATHNAME: Final = 7
C_LINENO: Final = 8
C_FUNC: Final = 9
C_THREAD: Final = 10
C_EXC_INFO: Final = 11
C_EXC_TEXT: Final = 12
C_STACK_INFO: Final = 13
C_EXTRA: Final = 14
_RECORD_ATTR_COUNT = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)

_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}



@dataclass(frozen=True, slots=True)
class Entry:
    """One log record as chatlog shows it: formatted text, where it came from, its traceback."""

    created: float
    level: int
    level_name: str
    logger: str
    message: str
    pathname: str
    lineno: int
    func: str
    exc_type: str | None = None
    traceback: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def location(self) -> str:
        """``"path/file.py:42 in func"`` — where the log call (or the exception) happened."""
        return f"{self.pathname}:{self.lineno} in {self.func}"


def normalize(message: str) -> str:
    """The template of an already formatted message (`chatlog.templates.template_of`): values become ``<*>``.

    ``"order 123 failed"`` and ``"order 456 failed"`` normalise to the same string.
    """
    return template_of(message)


def safe_str(value: object, limit: int = MESSAGE_LIMIT_CHARS) -> str:
    """``str(value)`` that never raises and never returns more than `limit` characters."""
    try:
        text = value if isinstance(value, str) else str(value)
        if not isinstance(text, str):
            raise TypeError(f"__str__ returned {type(text).__name__}")
    except Exception as exc:
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} chars cut]"


def format_message(record: logging.LogRecord) -> str:
    """``record.getMessage()`` for the application thread: never raises, capped in length.

    A huge ``str``/``bytes`` message or argument is cut before formatting: ``%r`` of 100 MB, or
    ``str()`` of 100 MB of bytes, would cost the application tenths of a second for text no alert shows.
    """
    try:
        message = _capped_message(record) if _has_huge_part(record) else record.getMessage()
    except Exception as exc:
        message = _describe_unformattable(record, exc)
    if not isinstance(message, str):
        return safe_str(message)
    return message if len(message) <= MESSAGE_LIMIT_CHARS else safe_str(message)


_SIZED = (str, bytes, bytearray)


def _has_huge_part(record: logging.LogRecord) -> bool:
    # On every log call: plain loops and exact type checks, no generator, no ABC isinstance.
    msg = record.msg
    if type(msg) is not str and isinstance(msg, (bytes, bytearray)) and len(msg) > MESSAGE_LIMIT_CHARS:
        return True
    args = record.args
    if not args:
        return False
    for value in args if type(args) is tuple else _values(args):
        if isinstance(value, _SIZED) and len(value) > MESSAGE_LIMIT_CHARS:
            return True
    return False


def _values(args: object) -> tuple[object, ...]:
    return tuple(args.values()) if isinstance(args, Mapping) else ()


def _cut(value: object) -> object:
    keep = MESSAGE_LIMIT_CHARS // 2  # leaves room for the rest of the message, also after repr()
    if isinstance(value, str) and len(value) > MESSAGE_LIMIT_CHARS:
        return safe_str(value, keep)
    if isinstance(value, (bytes, bytearray)) and len(value) > MESSAGE_LIMIT_CHARS:
        shown = keep // 4  # repr() shows a byte in up to 4 characters
        return f"{bytes(value[:shown])!r}… [{len(value) - shown} bytes cut]"
    return value


def _capped_message(record: logging.LogRecord) -> str:
    """What ``getMessage()`` says, with each huge part cut (visibly) to half of `MESSAGE_LIMIT_CHARS`."""
    message = str(_cut(record.msg))
    args = record.args
    if args:
        if isinstance(args, Mapping):
            message = message % {key: _cut(value) for key, value in args.items()}
        else:
            message = message % tuple(_cut(value) for value in args)
    return message


def _describe_unformattable(record: logging.LogRecord, exc: Exception) -> str:
    msg = safe_str(record.msg, 500)
    args = safe_str(_safe_repr(record.args), 500)
    return f"{msg} [chatlog could not format this message with args {args}: {type(exc).__name__}: {exc}]"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"


def _innermost(tb: TracebackType | None) -> str:
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


def _exc_type_name(exc_type: type[BaseException] | None) -> str:
    if exc_type is None:
        return ""
    module = getattr(exc_type, "__module__", "")
    name = getattr(exc_type, "__qualname__", "?")
    return name if module in ("builtins", "__main__", "") else f"{module}.{name}"


def fingerprint(record: logging.LogRecord, message: str) -> Fingerprint:
    """The group a record belongs to; records that differ only in their arguments share it."""
    return _fingerprint(record.levelno, record.name, record.msg, bool(record.args), message, record.exc_info)


def captured_fingerprint(item: Captured) -> Fingerprint:
    """`fingerprint` of a `capture`d record."""
    return _fingerprint(item[C_LEVEL], item[C_NAME], item[C_MSG], item[C_HAS_ARGS], item[C_MESSAGE],
                        item[C_EXC_INFO])


def _fingerprint(
    level: int, name: str, msg: object, has_args: bool, message: str, exc_info: object
) -> Fingerprint:
    if has_args:
        template = msg[:TEMPLATE_LIMIT_CHARS] if isinstance(msg, str) else safe_str(msg, TEMPLATE_LIMIT_CHARS)
    else:
        template = normalize(message)
    if isinstance(exc_info, tuple) and exc_info and exc_info[0] is not None:
        return (level, name, template, _exc_type_name(exc_info[0]), _innermost(exc_info[2]))
    return (level, name, template, "", "")


def capture(record: logging.LogRecord, message: str, fields: tuple[str, ...] | None = None) -> Captured:
    """What the application thread keeps of a record: its values in a plain tuple, not the record.

    A queued LogRecord keeps three or four container objects alive until the dispatcher drains it
    (up to a poll interval later); thousands of them survive collections, get promoted, and make the
    garbage collector run 1-11 ms generation-1/2 collections on the application thread. A tuple of
    strings and numbers is untracked by the first collection it meets, and the record is freed at once.
    """
    attrs = record.__dict__
    if fields is not None:
        extra = tuple((key, attrs[key]) for key in fields if key in attrs)
    elif len(attrs) > _RECORD_ATTR_COUNT:  # extra={...}, or a formatter added message/asctime
        extra = tuple((k, v) for k, v in attrs.items() if k not in _STANDARD_ATTRS)  # record_extra filters
    else:
        extra = ()
    return (message, record.created, record.levelno, record.levelname, record.name, record.msg,
            bool(record.args), record.pathname, record.lineno, record.funcName, record.thread,
            record.exc_info, record.exc_text, record.stack_info, extra)


def replay(item: Captured) -> logging.LogRecord:
    """A LogRecord with a `capture`d record's values, for `snapshot` (once per group; no ``__init__``)."""
    record = logging.LogRecord.__new__(logging.LogRecord)
    attrs = record.__dict__
    (_, attrs["created"], attrs["levelno"], attrs["levelname"], attrs["name"], attrs["msg"], _,
     attrs["pathname"], attrs["lineno"], attrs["funcName"], attrs["thread"], attrs["exc_info"],
     attrs["exc_text"], attrs["stack_info"], extra) = item
    attrs["args"] = ()
    attrs.update(extra)
    return record


def snapshot(record: logging.LogRecord, message: str, fields: tuple[str, ...] | None = None) -> Entry:
    """The `Entry` for a record, with its traceback rendered and capped; `fields` picks the extras."""
    exc_type, tb_text = _render_exception(record)
    if record.stack_info:
        tb_text = ((tb_text or "") + "\n" + record.stack_info).strip()
    return Entry(
        created=record.created,
        level=record.levelno,
        level_name=record.levelname,
        logger=record.name,
        message=message,
        pathname=record.pathname,
        lineno=record.lineno,
        func=record.funcName or "?",
        exc_type=exc_type,
        traceback=_cap_traceback(tb_text),
        extra=record_extra(record, fields),
    )


def safe_snapshot(record: logging.LogRecord, message: str, fields: tuple[str, ...] | None = None) -> Entry:
    """`snapshot`, or for a record it cannot read, an `Entry` that says so: the record still counts."""
    try:
        return snapshot(record, message, fields)
    except Exception as exc:
        return Entry(
            created=record.created if isinstance(record.created, (int, float)) else 0.0,
            level=record.levelno if isinstance(record.levelno, int) else logging.ERROR,
            level_name=safe_str(record.levelname, 40),
            logger=safe_str(record.name, 200),
            message=f"{safe_str(message)} [chatlog could not read this record: {type(exc).__name__}]",
            pathname=safe_str(record.pathname, 500),
            lineno=record.lineno if isinstance(record.lineno, int) else 0,
            func=safe_str(record.funcName, 200),
        )


def _render_exception(record: logging.LogRecord) -> tuple[str | None, str | None]:
    exc_info = record.exc_info
    if not exc_info or exc_info[0] is None:
        return None, record.exc_text or None
    try:
        # Cut each piece first: a huge exception message would otherwise fill the whole kept tail.
        text = "".join(_cap_line(piece) for piece in traceback.format_exception(*exc_info))
    except Exception as exc:
        text = f"<traceback could not be rendered: {type(exc).__name__}>"
    return _exc_type_name(exc_info[0]), text


def _cap_line(piece: str) -> str:
    if len(piece) <= TRACEBACK_LINE_LIMIT_CHARS:
        return piece
    return f"{piece[:TRACEBACK_LINE_LIMIT_CHARS]}… [{len(piece) - TRACEBACK_LINE_LIMIT_CHARS} chars cut]\n"


def _cap_traceback(text: str | None) -> str | None:
    """Keep the end of a long traceback: the innermost frames and the exception line matter most."""
    if text is None or len(text) <= TRACEBACK_LIMIT_CHARS:
        return text
    cut = len(text) - TRACEBACK_LIMIT_CHARS
    return f"[{cut} chars of traceback cut]\n" + text[cut:]


def record_extra(
    record: logging.LogRecord, names: tuple[str, ...] | None = None
) -> tuple[tuple[str, str], ...]:
    """Fields that the caller added with ``extra={...}``, as short ``(key, value)`` strings.

    With `names`, only those fields, in that order (standard attributes such as ``funcName`` too).
    """
    attrs = record.__dict__
    if names is not None:
        return tuple((key, safe_str(attrs[key], EXTRA_VALUE_LIMIT_CHARS)) for key in names if key in attrs)
    fields: list[tuple[str, str]] = []
    for key, value in attrs.items():
        # extra={1: ...} is accepted by logging and lands in __dict__ with a non-str key
        if not isinstance(key, str):
            key = safe_str(key, EXTRA_VALUE_LIMIT_CHARS)
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields.append((key, safe_str(value, EXTRA_VALUE_LIMIT_CHARS)))
    return tuple(fields[:20])
