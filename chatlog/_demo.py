"""The parts of ``chatlog demo``: a simulated incident, the live message log, and the closing summary.

The summary compares what chatlog sent with what a handler sending one message per record would
have sent, judged by each fake platform's own rules (rate windows, blocks) on the incident's timeline.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from chatlog.destinations import platform_classes, resolve
from chatlog.dispatcher import ChatStats
from chatlog.testing import PLATFORM_RULES, FakeBot, FakePlatforms
from chatlog.testing.rules import RateState, Request

_MARKUP = re.compile(r"<[^>]*>|\*\*|^[#>\s]+")


@dataclass(frozen=True, slots=True)
class Logged:
    """One record as a one-message-per-record handler would send it."""

    at: float
    text: str


class Tally(logging.Handler):
    """Keeps each record it is given, so the summary can replay them one message per record."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[Logged] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's time and one line of text (the demo's own records never fail to format)."""
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        self.records.append(Logged(record.created, text))


@dataclass(frozen=True, slots=True)
class OnePerRecord:
    """What one message per record would have met at one platform."""

    sent: int
    refused: int
    blocked_s: float
    """How long the platform would still block the bot after the last record (DingTalk: 10 minutes)."""


def one_per_record(bot: FakeBot, records: Sequence[Logged]) -> OnePerRecord:
    """Judge one message per record by the bot's platform rules at the times the records were logged."""
    rules = next(rules for rules in PLATFORM_RULES if bot.platform in rules.names)
    destination = resolve(bot.url).destination
    # Only the rate limits are in question: the messages would be signed and carry the keyword.
    settings = dataclasses.replace(bot.settings, secret=None, keyword=None)
    # Addressed as chatlog's own requests to this bot were (some platforms read the path or query).
    sent = bot.received
    path, query = (sent[0].path, dict(sent[0].query)) if sent else ("/", {})
    query = {key: value for key, value in query.items() if key not in ("sign", "timestamp")}
    state = RateState()
    refused = 0
    for record in records:
        payload = destination.render_text(record.text)
        body = json.dumps(payload, ensure_ascii=False).encode()
        request = Request("POST", path, query, {"content-type": "application/json"}, body, payload)
        refused += not rules.judge(request, settings, state, record.at).accepted
    end = records[-1].at if records else 0.0
    return OnePerRecord(len(records), refused, max(0.0, state.blocked_until - end))


def simulate_incident(logger: logging.Logger, seconds: float, records: int) -> None:
    """A database outage: `records` records in all — alike errors with tracebacks, retries, one critical."""
    start = time.monotonic()
    for i in range(records - 1):
        target = start + seconds * i / records
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        _log_one(logger, i)
    logger.critical("payment provider unreachable for %d s, orders are failing", int(seconds))


def _log_one(logger: logging.Logger, i: int) -> None:
    kind = i % 10
    if kind < 5:
        try:
            raise ConnectionError(f"could not connect to db-primary:5432 (attempt {i})")
        except ConnectionError:
            logger.exception("order %s failed: database unavailable", 10_000 + i)
    elif kind < 8:
        logger.warning("retrying payment %s in %d s", f"pay_{i:06d}", 2)
    elif kind == 8:
        logger.error(f"cache miss storm on key user:{i}:profile")  # pre-formatted: still one group
    else:
        try:
            {"user": i}["order"]
        except KeyError:
            logger.exception("could not render receipt for user %d", i)


class Printer:
    """Prints each message as the fake platforms answer it: one line each, or the full body (`verbose`)."""

    def __init__(self, fake: FakePlatforms, *, verbose: bool) -> None:
        self._fake = fake
        self._verbose = verbose
        self._stop = threading.Event()
        self._seen = 0
        self._thread = threading.Thread(target=self._run, name="chatlog-demo-printer", daemon=True)

    def start(self) -> None:
        """Print new messages every 0.1 s until `stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and print what arrived since its last round."""
        self._stop.set()
        self._thread.join(5.0)
        self._print_new()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._print_new()

    def _print_new(self) -> None:
        received = self._fake.all_received()
        bots = {(bot.platform, bot.token): bot for bot in self._fake.bots}
        for item in received[self._seen:]:
            stamp = time.strftime("%H:%M:%S", time.localtime(item.at))
            verdict = "accepted" if item.accepted else f"REFUSED {item.answer}"
            bot = bots.get((item.platform, item.token))
            text = bot.text_of(item.payload) if bot is not None and item.payload is not None else ""
            if self._verbose:
                print(f"── {stamp} {item.platform} · {verdict} " + "─" * 40)
                print(text + "\n")
            else:
                print(f"  {stamp}  {item.platform:9} {verdict:9} {headline(text)}")
        self._seen = len(received)


def headline(text: str, width: int = 90) -> str:
    """The first two lines of a message without markup, on one line of at most `width` characters."""
    lines: list[str] = []
    for line in (_MARKUP.sub("", raw).strip() for raw in text.splitlines()):
        if line and line not in lines:  # DingTalk repeats its title as the first line of the text
            lines.append(line)
    shown = " — ".join(lines[:2])
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def summary(bots: Sequence[FakeBot], stats: Sequence[ChatStats], records: Sequence[Logged],
            seconds: float) -> list[str]:
    """The closing screen: records in, messages out, the one-message-per-record comparison."""
    lines = [f"\n{len(records):,} records logged in {seconds:g} s. What reached each group:\n",
             f"  {'platform':9} {'records':>8} {'messages':>9} {'refused':>8}   "
             f"one message per record: sent / refused by the platform"]
    for bot, stat in zip(bots, stats, strict=True):
        naive = one_per_record(bot, records)
        # What the group shows: a digest may take more than one request (WeCom's mentions).
        messages = sum(1 for item in bot.received if item.accepted)
        refused = len(bot.received) - messages
        share = 100.0 * naive.refused / naive.sent if naive.sent else 0.0
        blocked = f", then blocked {naive.blocked_s / 60:.0f} more min" if naive.blocked_s >= 60 else ""
        lines.append(f"  {bot.platform:9} {stat.accepted:>8,} {messages:>9,} {refused:>8,}   "
                     f"{naive.sent:,} / {naive.refused:,} ({share:.0f} %){blocked}")
    lost = [bot.platform for bot, stat in zip(bots, stats, strict=True)
            if stat.delivered_records != stat.accepted or stat.dropped]
    lines.append(f"\n  NOT all delivered: {', '.join(lost)}" if lost else
                 "\n  Every record was delivered, counted in its group (delivered_records == records).")
    return lines


def next_step() -> list[str]:
    """How to send to a real group instead of the fakes."""
    examples = [cls.example for cls in platform_classes() if cls.example]
    return [
        "\nNext: point CHATLOG_URL at your bot and try it:",
        f'  export CHATLOG_URL="{examples[0]}"' if examples else "  export CHATLOG_URL=...",
        '  chatlog send "$CHATLOG_URL" "hello from chatlog"',
        '  then in your app: logging.getLogger().addHandler(chatlog.ChatHandler(os.environ["CHATLOG_URL"]))',
        "  chatlog urls lists every destination form; the README links a set-up guide per platform.",
    ]
