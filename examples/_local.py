"""Demo plumbing for the examples, not part of them: where alerts go when ``CHATLOG_URL`` is not set.

`use_fake_bot_unless_configured()` starts local fake platforms (``chatlog.testing``), points
``CHATLOG_URL`` at a fake Feishu bot (child processes inherit it) and prints each message the
bot accepts. At exit it delivers what is pending (``logging.shutdown()``) before stopping.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

from chatlog.testing import FakeBot, FakePlatforms

_printed = 0
_lock = threading.Lock()


def use_fake_bot_unless_configured() -> None:
    """Set ``CHATLOG_URL`` to a local fake bot that prints what it receives, unless it is set already."""
    if os.environ.get("CHATLOG_URL"):
        return
    fake = FakePlatforms()
    bot = fake.add_bot("feishu")
    os.environ["CHATLOG_URL"] = bot.url
    print(f"CHATLOG_URL is not set: alerts go to a local fake Feishu bot at {fake.base_url}", flush=True)
    threading.Thread(target=_print_arrivals, args=(bot,), name="fake-bot-printer", daemon=True).start()
    atexit.register(_deliver_print_stop, fake, bot, os.getpid())


def _print_new(bot: FakeBot) -> None:
    global _printed
    with _lock:
        texts = bot.texts()
        for text in texts[_printed:]:
            print(f"\n--- alert received by the fake bot ---\n{text}\n--------------------------------------",
                  flush=True)
        _printed = len(texts)


def _print_arrivals(bot: FakeBot) -> None:
    while True:
        bot.wait_for(_printed + 1, timeout=1.0)
        _print_new(bot)


def _deliver_print_stop(fake: FakePlatforms, bot: FakeBot, pid: int) -> None:
    if os.getpid() != pid:
        return  # a forked child (gunicorn, celery) inherits this hook; the server lives in the parent
    logging.shutdown()  # deliver what this process still holds before the fake bot goes away
    _print_new(bot)
    fake.stop()
