"""`ChatHandler`: the `logging.Handler` front end. The application thread only queues."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Hashable, Iterator, Mapping, Sequence

from chatlog import lifecycle
from chatlog.capture import Captured, capture
from chatlog.courier import http_options
from chatlog.destinations import platform_options, resolve
from chatlog.digest import Context, Mentions
from chatlog.dispatcher import ChatStats, Dispatcher, Timing
from chatlog.entry import format_message
from chatlog.links import parse_links
from chatlog.tally import KEY_TEXT_LIMIT_CHARS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatlog.state.controls import ControlStore
    from chatlog.state.url import StateURL

_MENTIONS_EXAMPLE = 'mentions={"CRITICAL": ["all"], "ERROR": ["ou_xxx"]}'


class ChatHandler(logging.Handler):
    """Sends log records to a chat group as grouped, counted, signed digests.

    ``emit()`` formats the message and queues the record; it never blocks, never raises and
    never logs. A background thread groups records by fingerprint and sends one message per
    batch (``group_wait`` / ``group_interval`` / ``repeat_interval``, in seconds) within the
    platform's rate limits. ``url`` is a destination string such as
    ``"dingtalk://ACCESS_TOKEN?secret=SEC..."`` or a platform webhook URL; ``secret``,
    ``keyword`` and ``platform`` win over the URL's query options. ``context_fields`` picks which
    ``extra={...}`` / ``bind()`` fields an alert shows (default: all, up to 20).
    ``platform_options`` are the options a platform declares (`chatlog.platforms._base.Option`),
    e.g. ``app_id``, ``app_secret``, ``receive_id_type`` and ``receive_ids`` of a Feishu/Lark app
    bot: a string, or a list of strings for a list option; an option no platform declares fails here,
    naming the valid ones. ``proxy`` (``"http://proxy:3128"``) and ``verify`` (a CA bundle path, or
    False) say how to connect; by default ``HTTPS_PROXY``/``NO_PROXY``/``SSL_CERT_FILE`` are honoured.
    ``state`` is what the processes attached to the same destination share: by default (or
    ``$CHATLOG_STATE``) this host's SQLite file, so every worker on the host shares one budget and one
    digest per batch; ``"sqlite:///path.db"``, ``"redis://host:6379/0"`` for a fleet of hosts, or
    ``"memory"`` for a process of its own; ``handover_interval`` is how often a process hands its
    records to it (what a SIGKILL can cost).
    A closed handler that still receives records starts again, like ``logging.FileHandler``. Usable
    from ``logging.config.dictConfig`` with ``"class": "chatlog.ChatHandler"`` and these keys.
    """

    def __init__(
        self,
        url: str,
        *,
        # where to send (the platform's own options arrive in platform_options)
        secret: str | None = None, keyword: str | None = None, platform: str | None = None,
        level: int | str = logging.ERROR,
        # who is speaking
        service: str | None = None, environment: str | None = None,
        # when batches go out
        group_wait: float = 5.0, group_interval: float = 60.0, repeat_interval: float = 3600.0,
        # bounds
        max_queue: int = 10_000, close_timeout: float = 5.0, max_groups: int = 200,
        # what an alert shows
        mentions: Mapping[str | int, Sequence[str]] | None = None,
        context_fields: Sequence[str] | None = None,
        links: Mapping[str, str] | None = None,
        # how to connect (default: HTTPS_PROXY / NO_PROXY / SSL_CERT_FILE from the environment)
        proxy: str | None = None, verify: bool | str = True,
        chatops: bool | str | None = None,
        # what the processes attached to this destination share (default: this host's SQLite file)
        state: str | None = None, handover_interval: float = 1.0,
        **platform_options: str | Sequence[str] | None,
    ) -> None:
        """Validate everything here: a bad option fails now with an example, never in the thread."""
        # Validate before Handler.__init__: it registers the handler with logging.shutdown(),
        # and a half-built handler there would break every later dictConfig() and exit.
        resolved = resolve(url, secret=secret, keyword=keyword, platform=platform,
                           options=_platform_options(platform_options))
        timing = Timing(
            group_wait=_seconds("group_wait", group_wait),
            group_interval=_seconds("group_interval", group_interval),
            repeat_interval=_seconds("repeat_interval", repeat_interval),
            close_timeout=_seconds("close_timeout", close_timeout),
            max_queue=_count("max_queue", max_queue),
            max_groups=_count("max_groups", max_groups),
            handover_interval=_seconds("handover_interval", handover_interval),
        )
        http = http_options(proxy, verify)
        levels = _mention_levels(mentions)
        who = Mentions(tuple((level, tuple(levels[level])) for level in sorted(levels)), resolved.at)
        context = Context(
            service=_optional_text("service", service),
            environment=_optional_text("environment", environment),
            links=parse_links(links),
        )
        super().__init__(level)
        self._context_fields = _field_names(context_fields)
        self._dispatcher = Dispatcher(resolved.destination, timing=timing, context=context, mentions=who,
                                      context_fields=self._context_fields, http=http,
                                      controls=_controls(chatops), state=_state(state))
        self._buffer = self._dispatcher.buffer
        self._counters: dict[Hashable, Iterator[int]] = self._dispatcher.tallies.counters
        self._max_queue = timing.max_queue
        self._queue_limit = timing.max_queue
        self._close_timeout = timing.close_timeout
        self._reopen_lock = threading.Lock()

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<ChatHandler {self._dispatcher.destination.masked()} ({level})>"

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit without the handler lock: the buffer is thread-safe on its own."""
        rv = self.filter(record)
        if rv:
            if isinstance(rv, logging.LogRecord):
                record = rv
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        """Count the record when its group is known already, else capture it: the message formatted and
        the extras rendered now, as they are at log time (`chatlog.capture`, `chatlog.tally`)."""
        dispatcher = self._dispatcher
        try:
            msg = record.msg
            if type(msg) is str and record.exc_info is None and len(msg) <= KEY_TEXT_LIMIT_CHARS:
                key: Hashable = (msg, record.levelno, record.name, not record.args)  # the common case, inline
            else:
                key = _tally_key(record)
            counter = self._counters.get(key)  # None is never a key
            if counter is not None:
                next(counter)  # atomic: one C call under the GIL
            elif len(self._buffer) < self._max_queue:
                item = capture(record, format_message(record), self._context_fields, key)
                # With arguments the template is the group: count its next records from now on (registered
                # before the append, so the thread links it when filing). Without, the thread decides:
                # an f-string's text is new every time, and its key would only fill the table.
                if key is not None and record.args and record.thread not in dispatcher.own_thread_ids:
                    dispatcher.tallies.register(key)
                self._buffer.append(item)
            elif self._max_queue == 0 and self._reopen():  # closed: start again, like FileHandler
                self.emit(record)
                return
            else:
                dispatcher.count_overflow()
            if dispatcher.idle:
                dispatcher.wake()
        except Exception:
            dispatcher.count_overflow()  # never raise into the application; the loss is counted

    @property
    def context_fields(self) -> tuple[str, ...] | None:
        """The ``extra`` / ``bind()`` fields an alert shows (None: all, up to 20)."""
        return self._context_fields

    def enqueue(self, item: Captured) -> None:
        """Queue a record another front end captured (the loguru sink); never blocks or raises."""
        try:
            if len(self._buffer) < self._max_queue or (self._max_queue == 0 and self._reopen()):
                self._dispatcher.queue(item)
            else:
                self._dispatcher.count_overflow()
        except Exception:
            self._dispatcher.count_overflow()

    def stats(self) -> ChatStats:
        """Accounting: accepted, dropped, pending, delivered_records, messages_sent, messages_failed."""
        return self._dispatcher.stats()

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Send what is pending now and wait up to `timeout` (default ``close_timeout``) for the answer.

        Returns True when nothing is left pending. Returns at once on a closed handler.
        """
        return self._dispatcher.flush(self._close_timeout if timeout is None else max(0.0, timeout))

    def close(self) -> None:
        """Deliver what is pending within ``close_timeout``, stop the thread. Idempotent.

        A record that reaches the handler afterwards starts it again (``dictConfig()`` closes every old
        handler, also those that stay attached); while the interpreter exits it is counted as dropped.
        """
        self._max_queue = 0  # the next record takes the slow path: _reopen()
        self._counters = {}
        try:
            self._dispatcher.close(self._close_timeout)
        finally:
            super().close()

    def _reopen(self) -> bool:
        """Start the closed handler again (new threads); False while the interpreter exits."""
        with self._reopen_lock:
            if self._max_queue:
                return True  # another thread reopened it meanwhile
            if lifecycle.interpreter_exiting():
                self._dispatcher.reporter.report(
                    "after-close", "a record logged after the handler was closed at exit is counted as "
                    "dropped (no thread can start now)", once=True)
                return False
            self._dispatcher.restart()
            self._closed = False  # logging.Handler's flag: logging.shutdown() closes it again at exit
            lifecycle.register_for_shutdown(self)
            self._counters = self._dispatcher.tallies.counters
            self._max_queue = self._queue_limit
            return True


def _tally_key(record: logging.LogRecord) -> Hashable:
    """What makes a record's fingerprint, cheaply and exactly: the ``%``-template object, level, logger,
    whether it had arguments, and for an exception its type and traceback frames. None: not countable."""
    msg = record.msg
    if type(msg) is not str or len(msg) > KEY_TEXT_LIMIT_CHARS:
        return None
    exc_info = record.exc_info
    if exc_info is None:
        return (msg, record.levelno, record.name, not record.args)
    if type(exc_info) is not tuple or len(exc_info) != 3:
        return None
    tb = exc_info[2]
    if tb is None:
        return (msg, record.levelno, record.name, not record.args, exc_info[0])
    # The whole chain, not only the innermost frame: the fingerprint's frame is the innermost one in the
    # application's code, so two call sites failing inside one library line are two groups.
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    return (msg, record.levelno, record.name, not record.args, exc_info[0], tuple(frames))


def _state(state: str | None) -> StateURL:
    """``state=`` checked (`chatlog.state.store.parse_state`); None: ``$CHATLOG_STATE``, else this host's
    SQLite file. Nothing is opened here: the dispatcher thread does that."""
    import os

    from chatlog.state.url import parse_state

    return parse_state(state if state is not None else os.environ.get("CHATLOG_STATE") or None)


def _controls(chatops: object) -> ControlStore | None:
    """The ChatOps control store to honour: None (off), True (the host's default file), "memory", or
    "sqlite:///path". Nothing is opened here: the dispatcher thread does that."""
    if chatops is None or chatops is False:
        return None
    try:
        if chatops is True or isinstance(chatops, str):
            # Imported here: a handler without chatops= never loads sqlite3 and pathlib.
            from chatlog.state.controls import ControlStore

            return ControlStore(None if chatops is True else chatops)
    except ValueError:
        pass
    raise ValueError("chatops= is True (this host's control store), 'memory' or 'sqlite:///path', e.g. "
                     f"chatops=True; got {chatops!r}")


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{name} must be a number of seconds, e.g. {name}=5.0; got {type(value).__name__}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, e.g. {name}=5.0; got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, e.g. {name}=5.0; got {value!r}")
    return seconds


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{name} must be a whole number, e.g. {name}=10000; got {type(value).__name__}")
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, e.g. {name}=10000; got {value!r}") from None
    if count <= 0:
        raise ValueError(f"{name} must be positive, e.g. {name}=10000; got {value!r}")
    return count


def _optional_text(name: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise TypeError(f"{name} must be a string, e.g. {name}='checkout'; got {type(value).__name__}")


def _platform_options(given: Mapping[str, str | Sequence[str] | None]) -> dict[str, str]:
    """Options a platform declares, as strings (lists comma-joined); TypeError for a name no platform has."""
    if not given:  # the usual case: no need to import every platform to learn their option names
        return {}
    known = platform_options()
    unknown = sorted(name for name in given if name not in known)
    if unknown:
        import inspect  # here: only this error needs it, and it costs `import chatlog` 6 ms

        mine = [name for name in inspect.signature(ChatHandler.__init__).parameters if name != "self"]
        raise TypeError(f"ChatHandler got unknown option(s) {', '.join(unknown)}: its options are "
                        f"{', '.join(mine[:-1])}, and platform options {', '.join(sorted(known))}")
    return {name: text for name, value in given.items() if (text := _joined(name, value)) is not None}


def _joined(name: str, value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, Sequence) and all(isinstance(item, str) and item for item in value):
        return ",".join(value)
    raise TypeError(f"{name} must be a string or a list of strings, e.g. {name}=['ou_a', 'ou_b'] or "
                    f"{name}='ou_a,ou_b'; got {type(value).__name__}")


def _field_names(value: Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(item, str) and item for item in value):
        raise TypeError("context_fields must be a list of names, e.g. "
                        f"context_fields=['request_id', 'user']; got {value!r}")
    return tuple(value)


def _mention_levels(mentions: Mapping[str | int, Sequence[str]] | None) -> dict[int, list[str]]:
    if mentions is None:
        return {}
    if not isinstance(mentions, Mapping):
        raise TypeError(f"mentions must map a level to ids, e.g. {_MENTIONS_EXAMPLE}")
    levels: dict[int, list[str]] = {}
    for level, ids in mentions.items():
        if isinstance(ids, str) or not all(isinstance(i, str) and i for i in ids):
            raise ValueError(f"mentions[{level!r}] must be a list of ids, e.g. {_MENTIONS_EXAMPLE}")
        levels[_level_number(level)] = list(ids)
    return levels


def _level_number(level: str | int) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    number = logging.getLevelName(str(level).upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown level {level!r} in mentions, e.g. {_MENTIONS_EXAMPLE}")
    return number
