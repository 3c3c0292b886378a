"""The loguru front end: ``logger.add(chatlog.loguru.sink(url, level=...))``.

Each loguru message becomes the same capture a stdlib record becomes (`chatlog.capture`), built from
loguru's own record (level, name, file, line, function, exception, ``extra``), not from the formatted
string, and goes to a `ChatHandler`; grouping, tracebacks and accounting are the same as for stdlib
records.
Needs the ``loguru`` extra (``pip install 'chatlog-alerts[loguru]'``); ``import chatlog`` never imports this.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

from chatlog.capture import Captured, capture_values, mapping_text
from chatlog.dispatcher import ChatStats
from chatlog.entry import safe_str
from chatlog.handler import ChatHandler

if TYPE_CHECKING:
    from loguru import Message, Record

__all__ = ["Sink", "sink"]

_UNAWAITED_COMPLETE = r"coroutine 'Sink\.complete' was never awaited"


class Sink:
    """A loguru sink object that sends messages to a chat group through a `ChatHandler`.

    Build it with `sink`. loguru calls `write` for each message and `stop` on ``logger.remove(id)``
    and at interpreter exit (pending alerts are delivered within ``close_timeout``);
    ``await logger.complete()`` waits until pending alerts are delivered.
    """

    def __init__(self, handler: ChatHandler) -> None:
        """Wrap `handler`; it is closed when loguru stops the sink."""
        self._handler = handler
        # loguru calls an object sink's `complete` only if it is a coroutine function, and a synchronous
        # `logger.complete()` then drops the coroutine unawaited: loguru's design, not the caller's fault,
        # so no RuntimeWarning for it. (Waiting right there instead would hold loguru's handler lock
        # while the network answers.) Set here, not at import, so a reset of the filters does not lose it.
        warnings.filterwarnings("ignore", _UNAWAITED_COMPLETE, RuntimeWarning)

    def __repr__(self) -> str:
        return f"<chatlog.loguru.Sink {self._handler!r}>"

    def write(self, message: Message) -> None:
        """Queue one loguru message (called by loguru under its handler lock); never blocks or raises."""
        handler = self._handler
        try:
            if message.record["level"].no < handler.level:
                return
            item = _captured(message.record, handler.context_fields)
        except Exception as exc:  # a record we cannot read still counts, with the text loguru formatted
            text = (f"{safe_str(message).strip()} [chatlog could not read the loguru record: "
                    f"{type(exc).__name__}]")
            item = capture_values(text, time.time(), logging.ERROR, "ERROR", "loguru", None, "?", 0, "?",
                                  threading.get_ident(), None, None, None, ())
        handler.enqueue(item)

    def stop(self) -> None:
        """Deliver what is pending within ``close_timeout`` and stop (loguru's ``logger.remove``)."""
        self._handler.close()

    async def complete(self) -> None:
        """Wait until pending alerts are delivered (``close_timeout`` at most): ``await logger.complete()``.

        The wait runs in a worker thread, so the event loop keeps serving meanwhile.
        """
        await asyncio.to_thread(self._handler.flush)

    def stats(self) -> ChatStats:
        """Accounting, as `ChatHandler.stats`: ``accepted == delivered_records + dropped + pending
        + muted``."""
        return self._handler.stats()


def sink(url: str, **options: Any) -> Sink:
    """A loguru sink for ``logger.add(...)`` with the options of `ChatHandler` (the same signature), e.g.

    ``logger.add(chatlog.loguru.sink("wecom://KEY", service="checkout"), level="ERROR")``.

    `level` (default ``ERROR``, as for the handler) may also name a loguru level (``"SUCCESS"``, a
    custom one); loguru's own ``level=`` in ``logger.add`` filters first. ``context_fields`` picks the
    ``bind()`` / ``contextualize()`` fields an alert shows (default: all). A bad option fails here, with
    an example.
    """
    if "level" in options:
        options["level"] = _level_number(options["level"])
    return Sink(ChatHandler(url, **options))


# One signature to read and to keep: the handler's (tests check they stay the same).
sink.__signature__ = inspect.signature(ChatHandler).replace(return_annotation=Sink)  # type: ignore[attr-defined]


def _captured(record: Record, fields: tuple[str, ...] | None) -> Captured:
    """The capture of a loguru record: same level number, location, exception and extras as loguru's.

    The message is loguru's, already formatted, so chatlog groups it by its normalised text.
    """
    exception = record["exception"]
    exc_info = None
    if exception is not None and exception.type is not None and exception.value is not None:
        exc_info = (exception.type, exception.value, exception.traceback)
    level = record["level"]
    return capture_values(
        safe_str(record["message"]), record["time"].timestamp(), level.no, level.name,
        record["name"] or "loguru", None, record["file"].path, record["line"], record["function"],
        record["thread"].id, exc_info, None, None, mapping_text(record["extra"], fields),
    )


def _level_number(level: int | str) -> int | str:
    """loguru level names (``"SUCCESS"``, custom ones) as numbers; anything else as given."""
    if not isinstance(level, str) or isinstance(logging.getLevelName(level.upper()), int):
        return level
    from loguru import logger

    try:
        return logger.level(level).no
    except ValueError:
        return level  # ChatHandler explains what a valid level looks like
