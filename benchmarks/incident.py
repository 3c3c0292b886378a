"""A scripted 10-minute database outage on an injected clock, against each platform's fake and its limits.

The script (seconds from the start, handler level WARNING, default timing: group_wait 5 s,
group_interval 60 s, repeat_interval 1 h):

- 0–59 s quiet; at 59 s the connection pool starts to warn, at 60 s the errors begin;
- 60–480 s: 50,000 errors over 5 fingerprints (two with a traceback) and 5,000 warnings over 2;
- 480–540 s: recovery, 200 "replication lag" warnings; 540–600 s quiet;
- then, in 1 s steps, until the all-clear (``resolve_after`` 600 s after the last error) has had time to go
  out: its delay after the last error and that exactly one went to each destination are reported.

The dispatcher runs without its thread: this script appends to its buffer exactly what
``ChatHandler.emit`` appends and calls ``step()`` every 50 ms of simulated time. The fake platform shares
the simulated clock (as epoch seconds), so its rate limits apply on the simulated timeline; sends are
real HTTP to 127.0.0.1. Side by side: a one-message-per-record handler, judged record by record by the
same platform rules the fake server applies (no HTTP: 55,000 requests would only measure the server).

    python benchmarks/incident.py            # all platforms
    python benchmarks/incident.py --quick    # one platform, a tenth of the records
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import _common as common

from chatlog.destinations import resolve
from chatlog.digest import Context, Digest
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.platforms._base import Destination, Outcome, Payload, Payloads
from chatlog.testing import FakePlatforms
from chatlog.testing.rules import BotSettings, PlatformRules, RateState, Request
from chatlog.testing.server import PLATFORM_RULES

try:  # what ChatHandler.emit queues, when the front end snapshots records (proposed for issue #6)
    from chatlog.capture import capture as _queued
except ImportError:  # the front end queues the record itself, with its formatted message

    def _queued(record: logging.LogRecord, message: str) -> Any:
        return (record, message)

DURATION_S = 600.0
TICK_S = 0.05
RESOLVE_AFTER_S = 600.0
AFTER_S = 480.0 + RESOLVE_AFTER_S + 120.0
"""How long the run goes on: the last error (480 s), the quiet time, and two minutes more."""
TAIL_TICK_S = 1.0
PLATFORMS = ("feishu", "dingtalk", "wecom")
BOT_OPTIONS: dict[str, dict[str, str]] = {
    "feishu": {"secret": "feishu-bench-secret"},
    "dingtalk": {"secret": "SECbench0123456789", "keyword": "alert"},
    "wecom": {},
}
# The platforms' documented limits, as the fakes enforce them: (window seconds, requests).
PLATFORM_LIMITS: dict[str, tuple[tuple[float, int], ...]] = {
    "feishu": ((1.0, 5), (60.0, 100)),
    "dingtalk": ((60.0, 20),),
    "wecom": ((60.0, 20),),
}
MAX_MESSAGES = 12


class OperationalError(Exception):
    """Stands in for a database driver's connection error."""


@dataclass(frozen=True)
class Source:
    """One fingerprint of the incident: who logs what, how often, when, and whether with a traceback."""

    logger: str
    level: int
    template: str
    count: int
    start_s: float
    end_s: float
    traceback: bool = False
    arg: Callable[[int], object] | None = None
    where: tuple[str, int, str] = ("/srv/checkout/app/views.py", 120, "handle")


SCRIPT = (
    Source("app.db", logging.ERROR, "could not connect to database %s", 20_000, 60.0, 480.0, True,
           lambda i: "db-primary:5432", ("/srv/checkout/app/db.py", 88, "connect")),
    Source("app.orders", logging.ERROR, "order %s could not be saved", 15_000, 62.0, 478.0, True,
           lambda i: 100_000 + i, ("/srv/checkout/app/orders.py", 41, "save")),
    Source("app.payments", logging.ERROR, "payment %s timed out waiting for the database", 8_000, 65.0, 470.0,
           arg=lambda i: f"pay_{i:08d}", where=("/srv/checkout/app/payments.py", 203, "capture")),
    Source("app.http", logging.ERROR, "GET /api/orders/%s failed with 503", 6_000, 61.0, 480.0,
           arg=lambda i: 100_000 + i, where=("/srv/checkout/app/middleware.py", 57, "__call__")),
    Source("app.health", logging.ERROR, "health check failed: database unreachable", 1_000, 60.5, 480.0,
           where=("/srv/checkout/app/health.py", 19, "check")),
    Source("app.db.pool", logging.WARNING, "connection pool exhausted: %s requests waiting", 3_000, 59.0,
           480.0, arg=lambda i: 20 + i % 80, where=("/srv/checkout/app/db.py", 131, "acquire")),
    Source("app.db.retry", logging.WARNING, "retrying database connection in %s s", 2_000, 60.0, 480.0,
           arg=lambda i: 2 ** (i % 5), where=("/srv/checkout/app/db.py", 95, "connect")),
    Source("app.db.replication", logging.WARNING, "replication lag %s s after failover", 200, 480.0, 540.0,
           arg=lambda i: round(30 - i * 0.15, 1), where=("/srv/checkout/app/db.py", 160, "lag")),
)


def _exc_info(source: Source) -> tuple[type[BaseException], BaseException, TracebackType | None]:
    def query() -> None:
        raise OperationalError(f"connection to {source.logger} refused")

    try:
        query()
    except OperationalError as exc:
        return (OperationalError, exc, exc.__traceback__)
    raise AssertionError("unreachable")


@dataclass(order=True)
class Event:
    at: float
    record: logging.LogRecord = field(compare=False)
    message: str = field(compare=False)


def script_events(t0: float, scale: float, seed: int = 6) -> tuple[list[Event], dict[str, int]]:
    """Every record of the incident, in time order, and how many each source logged."""
    rng = random.Random(seed)
    events: list[Event] = []
    counts: dict[str, int] = {}
    for source in SCRIPT:
        n = max(1, round(source.count * scale))
        counts[source.logger] = n
        exc_info = _exc_info(source) if source.traceback else None
        pathname, lineno, func = source.where
        for i in range(n):
            at = t0 + (source.start_s if i == 0 else rng.uniform(source.start_s, source.end_s))
            args = (source.arg(i),) if source.arg is not None else ()
            record = logging.LogRecord(source.logger, source.level, pathname, lineno, source.template, args,
                                       exc_info, func)
            record.created = at
            record.msecs = (at % 1) * 1000
            events.append(Event(at, record, record.getMessage()))
    events.sort()
    return events, counts


class FakeClock:
    """Simulated epoch seconds, shared by the dispatcher, the destination's signing and the fake server."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Sent:
    at: float
    digest: Digest
    outcome: Outcome


def watch(destination: Destination, clock: FakeClock) -> list[Sent]:
    """Wrap the destination's render_all/send (on this instance only) to see which digest each request
    carried. (`render_all` is what the dispatcher calls; a platform's own may not go through `render`.)"""
    sent: list[Sent] = []
    rendered: list[Digest] = []
    render_all, send = destination.render_all, destination.send

    def watched_render(digest: Digest) -> Payloads:
        rendered.append(digest)
        return render_all(digest)

    def watched_send(client: Any, payload: Payload) -> Outcome:
        outcome = send(client, payload)
        sent.append(Sent(clock(), rendered[-1], outcome))
        return outcome

    destination.render_all = watched_render  # type: ignore[method-assign]
    destination.send = watched_send  # type: ignore[method-assign]
    return sent


def run_platform(platform: str, events: list[Event], counts: dict[str, int], clock: FakeClock,
                 t0: float) -> dict[str, Any]:
    """The incident through chatlog's dispatcher to one fake bot."""
    clock.now = t0
    with FakePlatforms(clock=clock) as fake:
        bot = fake.add_bot(platform, **BOT_OPTIONS[platform])
        destination = resolve(bot.url).destination
        if hasattr(destination, "clock"):
            destination.clock = clock  # the signature's timestamp lives on the simulated timeline too
        timing = Timing(resolve_after=RESOLVE_AFTER_S)  # the handler's default
        dispatcher = Dispatcher(destination, timing=timing, clock=clock, start=False,
                                context=Context(service="checkout", environment="prod"))
        sent = watch(destination, clock)
        began = time.monotonic()
        next_event = 0
        while clock.now < t0 + AFTER_S:
            clock.now = round(clock.now + (TICK_S if clock.now < t0 + DURATION_S else TAIL_TICK_S), 6)
            while next_event < len(events) and events[next_event].at <= clock.now:
                event = events[next_event]
                dispatcher.queue(_queued(event.record, event.message))
                next_event += 1
            dispatcher.step()
        seconds = time.monotonic() - began
        stats = dispatcher.stats()
        received = bot.received
        texts = [bot.text_of(r.payload) if r.payload is not None and r.accepted else "" for r in received]
    return judge_run(platform, events, counts, received, texts, sent, stats, timing, t0, seconds)


def judge_run(platform: str, events: list[Event], counts: dict[str, int], received: list[Any],
              texts: list[str], sent: list[Sent], stats: Any, timing: Timing, t0: float,
              seconds: float) -> dict[str, Any]:
    accepted = [r for r in received if r.accepted]
    times = sorted(r.at for r in received)
    windows = {f"{w:g}s": {"max": common.max_in_window(times, w), "limit": n}
               for w, n in PLATFORM_LIMITS[platform]}
    first_error = min(e.at for e in events if e.record.levelno >= logging.ERROR)
    first_alert = next((r.at for r in accepted if r.at >= first_error), None)
    # Which digest each accepted request carried: sends and received requests are in the same order.
    delivered = [s for s in sent if s.outcome.ok]
    last_error = max(e.at for e in events if e.record.levelno >= logging.ERROR)
    all_clears = [s.at for s in delivered if s.digest.all_clear is not None]
    shown: dict[str, int] = dict.fromkeys(counts, 0)
    accounted: dict[str, int] = dict.fromkeys(counts, 0)
    accepted_texts = [t for r, t in zip(received, texts, strict=True) if r.accepted]
    for s, text in zip(delivered, accepted_texts, strict=False):
        for group in s.digest.groups:
            name = group.sample.logger
            if name in accounted:
                accounted[name] += group.count
                if re.search(f"×{group.count:,}(?![0-9,])", text):
                    shown[name] += group.count
    exact = [name for name in counts if accounted[name] == counts[name] == shown[name]]
    logged = len(events)
    return {
        "platform": platform,
        "records": logged,
        "requests": len(received),
        "messages": len(accepted) - len(all_clears),
        "all_clears": len(all_clears),
        "all_clear_delay_s": round(all_clears[0] - last_error, 2) if all_clears else None,
        "resolve_after_s": timing.resolve_after,
        "rejected": len(received) - len(accepted),
        "windows": windows,
        "first_alert_s": None if first_alert is None else first_alert - first_error,
        "fingerprints": len(counts),
        "exact": exact,
        "counts": {name: {"logged": counts[name], "in_digests": accounted[name], "shown": shown[name]}
                   for name in counts},
        "stats": {"accepted": stats.accepted, "delivered": stats.delivered_records, "dropped": stats.dropped,
                  "pending": stats.pending},
        "accounting_holds": stats.accepted == logged
        and stats.accepted == stats.delivered_records + stats.dropped + stats.pending,
        "group_wait_s": timing.group_wait,
        "wall_s": seconds,
        "message_times_s": [round(r.at - t0, 2) for r in accepted],
        "all_clear_text": next((t for t in accepted_texts if "no ERROR for" in t), ""),
    }


def naive(platform: str, events: list[Event]) -> dict[str, Any]:
    """One message per record, each judged by the platform's own rules on the simulated timeline."""
    rules: PlatformRules = next(r for r in PLATFORM_RULES if platform in r.names)
    with FakePlatforms() as fake:  # only to build a destination that renders a plain text message
        destination = resolve(fake.add_bot(platform).url).destination
    settings = BotSettings(platform=platform, token="naive")
    state = RateState()
    accepted = 0
    for event in events:
        record = event.record
        payload = destination.render_text(f"{record.levelname} {record.name}: {event.message}")
        body = json.dumps(payload, ensure_ascii=False).encode()
        answer = rules.judge(Request("POST", "/", {}, {}, body, payload), settings, state, event.at)
        accepted += answer.accepted
    return {"messages": len(events), "accepted": accepted, "rejected": len(events) - accepted,
            "rejected_pct": 100.0 * (len(events) - accepted) / len(events)}


def targets_for(run: dict[str, Any]) -> list[dict[str, Any]]:
    p = run["platform"]
    in_limits = all(w["max"] <= w["limit"] for w in run["windows"].values()) and run["rejected"] == 0
    limit_text = ", ".join(f"{w['max']}/{name} ≤ {w['limit']}" for name, w in run["windows"].items())
    first = run["first_alert_s"]
    first_limit = run["group_wait_s"] + 1.0
    delay, delay_limit = run["all_clear_delay_s"], (run["resolve_after_s"] or 0.0) + 1.0
    return [
        {"target": f"{p}: messages in 10 min", "measured": run["messages"], "limit": f"≤ {MAX_MESSAGES}",
         "pass": run["messages"] <= MAX_MESSAGES},
        {"target": f"{p}: within the platform's limits, nothing refused", "measured":
         f"{limit_text}; {run['rejected']} refused", "limit": "every window", "pass": in_limits},
        {"target": f"{p}: first error → first alert (s)", "measured": first if first is not None else "never",
         "limit": f"≤ {first_limit:g}", "pass": first is not None and first <= first_limit},
        {"target": f"{p}: fingerprints shown with their exact count",
         "measured": f"{len(run['exact'])}/{run['fingerprints']}", "limit": "all",
         "pass": len(run["exact"]) == run["fingerprints"]},
        {"target": f"{p}: records accounted (delivered + dropped + pending)",
         "measured": f"{run['stats']['delivered']:,} delivered, {run['stats']['pending']} pending, "
                     f"{run['stats']['dropped']} dropped", "limit": "100 %", "pass": run["accounting_holds"]},
        {"target": f"{p}: all-clears sent", "measured": run["all_clears"], "limit": "exactly 1",
         "pass": run["all_clears"] == 1},
        {"target": f"{p}: last error → all-clear (s)", "measured": delay if delay is not None else "never",
         "limit": f"≤ {delay_limit:g}", "pass": delay is not None and delay <= delay_limit},
    ]


def report(result: dict[str, Any]) -> str:
    runs = result["runs"]
    head = (f"incident: a 10-minute database outage on a simulated clock ({runs[0]['records']:,} records, "
            f"{runs[0]['fingerprints']} fingerprints, handler level WARNING, default timing), against each "
            f"platform's fake with its rate limits. {common.machine_line(result['machine'])}.")
    main = common.table(
        ["platform", "records", "chatlog messages", "busiest window", "refused", "first alert s",
         "exact counts", "pending", "all-clears", "all-clear after last error s", "naive messages",
         "naive accepted", "naive refused"],
        [[r["platform"], r["records"], r["messages"],
          ", ".join(f"{w['max']}/{k} (limit {w['limit']})" for k, w in r["windows"].items()),
          r["rejected"], r["first_alert_s"] if r["first_alert_s"] is not None else "never",
          f"{len(r['exact'])}/{r['fingerprints']}", r["stats"]["pending"], r["all_clears"],
          r["all_clear_delay_s"] if r["all_clear_delay_s"] is not None else "never", r["naive"]["messages"],
          r["naive"]["accepted"], f"{r['naive']['rejected_pct']:.1f} %"] for r in runs],
    )
    goals = common.targets_table(result["targets"])
    return f"{head}\n\n{main}\n\n{goals}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--platforms", default=None, help="comma-separated (default: feishu,dingtalk,wecom)")
    parser.add_argument("--scale", type=float, default=None, help="fraction of the records (default 1)")
    parser.add_argument("--quick", action="store_true", help="dingtalk only, a tenth of the records")
    args = parser.parse_args(argv)
    platforms = (args.platforms or ("dingtalk" if args.quick else ",".join(PLATFORMS))).split(",")
    scale = args.scale or (0.1 if args.quick else 1.0)
    t0 = float(int(time.time()))  # signatures stay within the platforms' one-hour window
    events, counts = script_events(t0, scale)
    clock = FakeClock(t0)
    runs = []
    with common.captured_stderr():
        for platform in platforms:
            run = run_platform(platform, events, counts, clock, t0)
            run["naive"] = naive(platform, events)
            runs.append(run)
    result = {
        "benchmark": "incident",
        "machine": common.machine(),
        "parameters": {"platforms": platforms, "scale": scale, "duration_s": DURATION_S, "tick_s": TICK_S},
        "runs": runs,
        "targets": [t for run in runs for t in targets_for(run)],
    }
    print(report(result))
    path = common.write_json("incident", result)
    print(f"(written to {path.relative_to(common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
