"""What chatlog shows of one log record (`Entry`), and text made safely from application values.

`safe_str` and `format_message` run on the application thread at log time (see `chatlog.capture`);
`render_traceback` runs on the dispatcher, once per group.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping

from chatlog._record import Record
from chatlog.templates import template_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MESSAGE_LIMIT_CHARS = 4_000
TRACEBACK_LIMIT_CHARS = 6_000
TRACEBACK_LINE_LIMIT_CHARS = 1_000
"""One piece of a formatted traceback (a frame, or the exception line with its message)."""
EXTRA_VALUE_LIMIT_CHARS = 200
TEMPLATE_LIMIT_CHARS = 500
"""A fingerprint keeps this much of a message template (groups live up to ``repeat_interval``)."""



class Entry(Record):
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
    logged_at: str = ""
    """``"flask/app.py:875"``: the logging call, when the location is another frame (the app's own)."""

    @property
    def location(self) -> str:
        """``"app/views.py:12 in checkout (logged at flask/app.py:875)"`` — the application's own frame
        of the exception (or the log call), with the log call beside it when that is elsewhere."""
        place = f"{self.pathname}:{self.lineno} in {self.func}"
        return f"{place} (logged at {self.logged_at})" if self.logged_at else place


def normalize(message: str) -> str:
    """The template of an already formatted message (`chatlog.templates.template_of`): values become ``<*>``.

    ``"order 123 failed"`` and ``"order 456 failed"`` normalise to the same string.
    """
    return template_of(message)


PROPAGATED: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit)
"""Exceptions that application code raising inside a log call keeps raising, as with the stdlib's own
handlers: Ctrl-C and a signal handler's ``sys.exit()`` arrive this way, and swallowing them would keep
running a process that was told to stop. Every other exception, `BaseException` subclasses such as
``CancelledError`` and ``GeneratorExit`` included, becomes text that says what happened."""


def safe_str(value: object, limit: int = MESSAGE_LIMIT_CHARS) -> str:
    """``str(value)`` that returns at most `limit` characters and raises nothing but `PROPAGATED`."""
    try:
        text = value if type(value) is str else str(value)
        if not isinstance(text, str):
            raise TypeError(f"__str__ returned {type(text).__name__}")
    except PROPAGATED:
        raise
    except BaseException as exc:
        text = f"<unprintable {_type_name(value)}: {_type_name(exc)}>"
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} chars cut]"


def _type_name(value: object) -> str:
    name = getattr(type(value), "__name__", "?")
    return name if isinstance(name, str) else "?"


def format_message(record: logging.LogRecord) -> str:
    """``record.getMessage()`` for the application thread: never raises, capped in length.

    A huge ``str``/``bytes`` message or argument is cut before formatting: ``%r`` of 100 MB, or
    ``str()`` of 100 MB of bytes, would cost the application tenths of a second for text no alert shows.
    """
    try:
        message = _capped_message(record) if _has_huge_part(record) else record.getMessage()
    except PROPAGATED:
        raise
    except BaseException as exc:
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


def _describe_unformattable(record: logging.LogRecord, exc: BaseException) -> str:
    msg = safe_str(record.msg, 500)
    args = safe_str(_safe_repr(record.args), 500)
    return (f"{msg} [chatlog could not format this message with args {args}: "
            f"{_type_name(exc)}: {safe_str(exc, 500)}]")


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except PROPAGATED:
        raise
    except BaseException as exc:
        return f"<unrepresentable {_type_name(value)}: {_type_name(exc)}>"


def exception_type_name(exc_type: object) -> str:
    """``"ValueError"``, ``"requests.exceptions.Timeout"``: how an alert names an exception's type."""
    if exc_type is None:
        return ""
    module = getattr(exc_type, "__module__", "")
    name = getattr(exc_type, "__qualname__", "?")
    name = name if isinstance(name, str) else "?"
    if not isinstance(module, str) or module in ("builtins", "__main__", ""):
        return name
    return f"{module}.{name}"


def render_traceback(exc_info: tuple[Any, Any, Any] | None, exc_text: str | None,
                     stack_info: str | None) -> tuple[str | None, str | None]:
    """``(exception type name, capped traceback text)`` of a record; never raises.

    Runs on the dispatcher for a group's first record. Formatting calls the exception's own
    ``__str__`` (application code): anything it raises, `BaseException` included, becomes a note.
    """
    exc_type: str | None = None
    if not exc_info or exc_info[0] is None:
        text = exc_text or None
    else:
        exc_type = exception_type_name(exc_info[0])
        try:
            # Cut each piece first: a huge exception message would otherwise fill the whole kept tail.
            text = "".join(_cap_line(piece) for piece in traceback.format_exception(*exc_info))
        except BaseException as exc:
            text = f"<traceback could not be rendered: {_type_name(exc)}>"
    if stack_info:
        text = ((text or "") + "\n" + stack_info).strip()
    return exc_type, _cap_traceback(text)


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
