"""Cost of one log call on the application thread: ChatHandler against the stdlib and loguru queues.

Every candidate runs in this one process, in interleaved rounds (a fresh random order each round),
so slow moments of a shared machine hit all of them alike. Each round times, for each candidate, a
batch of ``logger.error("order %s failed", i)``, the same with three ``extra=`` fields, a batch where
every call is a new group (an f-string message with extras: the full capture path), a batch of
``logger.exception(...)`` inside an ``except`` block, and a batch of single calls timed one by one
(for p99/p99.9). Between batches the
candidate's background thread is let to catch up, untimed, so a batch never overflows a bounded
buffer. Ratios are taken within a round (candidate / QueueHandler, or / NullHandler, of the same
round), then the median over rounds is reported.

    python benchmarks/emit.py            # the issue's numbers (>= 200k records per candidate and mode)
    python benchmarks/emit.py --quick    # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import os
import queue
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import _common as common

from chatlog import ChatHandler
from chatlog.testing import FakePlatforms, Fault

MODES = ("error", "extras", "fresh", "exception", "latency")
SLOW_CALL_NS = 1_000_000
NOISE_CALLS = 3
"""Calls over 1 ms that the scheduler of a shared 2-core machine causes anyway (no handler has 0-3)."""
STORE: dict[str, str] = {}
"""``state=`` for every ChatHandler (``--state``); empty: the handler's default."""
QUEUE = "QueueHandler+Listener"
NULL = "NullHandler"


# --- the candidates ----------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One way of handling the log call, with what the benchmark needs to drive and judge it."""

    name: str
    error: Callable[..., Any]
    exception: Callable[..., Any]
    template: str = "order %s failed"
    settle: Callable[[], None] = lambda: None
    close: Callable[[], None] = lambda: None
    dropped: Callable[[], int] = lambda: 0
    note: str = ""
    chat: bool = False
    scale: dict[str, float] = field(default_factory=dict)
    """Fraction of the batch this candidate runs per mode (loguru's exception path costs milliseconds)."""
    results: dict[str, list[float]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    latencies: array = field(default_factory=lambda: array("q"))


def _stdlib_logger(name: str, handler: logging.Handler | None) -> logging.Logger:
    logger = logging.getLogger(f"bench.emit.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    if handler is not None:
        logger.addHandler(handler)
    return logger


def _from_logger(name: str, logger: logging.Logger, **options: Any) -> Candidate:
    return Candidate(name, logger.error, logger.exception, **options)


class SnapshotFloor(logging.Handler):
    """The issue's floor: snapshot the record (message formatted, exc_info kept, not rendered) into a
    bounded deque, and nothing else: no lock, no thread, no grouping."""

    def __init__(self, max_queue: int = 10_000) -> None:
        super().__init__()
        self.buffer: deque[tuple[Any, ...]] = deque(maxlen=max_queue)

    def handle(self, record: logging.LogRecord) -> bool:
        if self.filter(record):
            self.emit(record)
            return True
        return False

    def emit(self, record: logging.LogRecord) -> None:
        self.buffer.append((record.levelno, record.name, record.msg, record.getMessage(), record.pathname,
                            record.lineno, record.funcName, record.created, record.exc_info))


class CountingHandler(logging.Handler):
    """A trivial downstream handler for QueueListener: counts what it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def make_queue() -> Candidate:
    """The stdlib cookbook pattern: QueueHandler(queue.Queue(-1)) + QueueListener on another thread."""
    q: queue.Queue[logging.LogRecord] = queue.Queue(-1)
    listener = logging.handlers.QueueListener(q, CountingHandler())
    listener.start()
    logger = _stdlib_logger("queue", logging.handlers.QueueHandler(q))

    def settle() -> None:
        common.wait_until(lambda: q.unfinished_tasks == 0, 30.0)

    return _from_logger(QUEUE, logger, settle=settle, close=listener.stop, note="queue.Queue(-1)")


def make_loguru() -> Candidate | None:
    """loguru with ``enqueue=True`` and a sink that does nothing; None when loguru is not installed."""
    try:
        from loguru import logger
    except ImportError:
        return None
    logger.remove()
    received = [0]

    def sink(message: object) -> None:
        received[0] += 1

    sink_id = logger.add(sink, enqueue=True, level="INFO")
    return Candidate("loguru enqueue=True", logger.error, logger.exception, template="order {} failed",
                     settle=logger.complete, close=lambda: logger.remove(sink_id),
                     note="default format; 1/10 of the calls (1/100 for exception)",
                     scale={"error": 0.1, "extras": 0.1, "fresh": 0.1, "latency": 0.1, "exception": 0.01})


def _buffered(handler: ChatHandler) -> int:
    dispatcher = getattr(handler, "_dispatcher", None)  # private; only to know when the thread caught up
    return len(dispatcher.buffer) if dispatcher is not None else 0


def make_chat(fake: FakePlatforms, state: str) -> Candidate:
    """ChatHandler to a DingTalk bot on the fake platform that answers normally, hangs, or answers 503."""
    bot = fake.add_bot("dingtalk", secret="SECbench0123456789", keyword="alert")
    fast = {"group_wait": 0.05, "close_timeout": 0.5} if state != "ok" else {}
    handler = ChatHandler(bot.url, level=logging.INFO, **fast, **STORE)
    logger = _stdlib_logger(f"chat.{state}", handler)
    if state == "hung":
        bot.set_fault(Fault.hang())
    elif state == "503":
        bot.set_fault(Fault.status(503))
    if state != "ok":
        logger.error("make the dispatcher send now")
        common.wait_until(lambda: len(bot.received) >= 1, 5.0)

    def settle() -> None:
        if state != "hung":  # a hung send keeps the thread busy for request_timeout: nothing to wait for
            common.wait_until(lambda: _buffered(handler) == 0, 5.0)

    def close() -> None:
        bot.release()
        handler.close()

    def dropped() -> int:
        return handler.stats().dropped

    notes = {"ok": "fake DingTalk answers", "hung": "server never answers", "503": "server answers 503"}
    return _from_logger(f"ChatHandler ({state})", logger, settle=settle, close=close, dropped=dropped,
                        note=notes[state], chat=True)


# --- the timed loops ----------------------------------------------------------------------------------


def _fail(order: int) -> None:
    def load(order: int) -> None:
        raise ValueError(f"order {order} has no customer")

    def save(order: int) -> None:
        load(order)

    save(order)


def time_errors(log: Callable[..., Any], template: str, start: int, n: int) -> int:
    clock = time.perf_counter_ns
    began = clock()
    for i in range(start, start + n):
        log(template, i)
    return clock() - began


def time_extras(log: Callable[..., Any], template: str, start: int, n: int) -> int:
    clock = time.perf_counter_ns
    began = clock()
    for i in range(start, start + n):
        log(template, i, extra={"request_id": i, "user": "alice", "cart": ("apple", "pear")})
    return clock() - began


def time_fresh(log: Callable[..., Any], template: str, start: int, n: int) -> int:
    clock = time.perf_counter_ns
    began = clock()
    for i in range(start, start + n):
        log(f"order {i} failed at step {i % 7}", extra={"request_id": i, "user": "alice"})
    return clock() - began


def time_exceptions(log: Callable[..., Any], template: str, start: int, n: int) -> int:
    try:
        _fail(start)
    except ValueError:
        clock = time.perf_counter_ns
        began = clock()
        for i in range(start, start + n):
            log(template, i)
        return clock() - began
    raise AssertionError("unreachable")


def time_each(log: Callable[..., Any], template: str, start: int, n: int, into: array) -> int:
    clock = time.perf_counter_ns
    began = clock()
    for i in range(start, start + n):
        t = clock()
        log(template, i)
        into.append(clock() - t)
    return clock() - began


def timer_overhead_ns(samples: int = 100_000) -> float:
    """What one ``t = clock(); ...; clock() - t`` pair adds to a single-call latency."""
    clock = time.perf_counter_ns
    values = array("q")
    for _ in range(samples):
        t = clock()
        values.append(clock() - t)
    return common.median(values)


def run_batch(candidate: Candidate, mode: str, start: int, batch: int) -> None:
    n = max(1, int(batch * candidate.scale.get(mode, 1.0)))
    if mode == "error":
        elapsed = time_errors(candidate.error, candidate.template, start, n)
    elif mode == "extras":
        elapsed = time_extras(candidate.error, candidate.template, start, n)
    elif mode == "fresh":
        elapsed = time_fresh(candidate.error, candidate.template, start, n)
    elif mode == "exception":
        elapsed = time_exceptions(candidate.exception, candidate.template, start, n)
    else:
        elapsed = time_each(candidate.error, candidate.template, start, n, candidate.latencies)
    candidate.results[mode].append(elapsed / n)


# --- the run -------------------------------------------------------------------------------------------


def factories(fake: FakePlatforms) -> dict[str, Callable[[], Candidate | None]]:
    """Short key → how to build that candidate (the order is the table's)."""
    return {
        "none": lambda: _from_logger("no handler", _stdlib_logger("none", None), note="no handlers"),
        "null": lambda: _from_logger(NULL, _stdlib_logger("null", logging.NullHandler())),
        "floor": lambda: _from_logger("floor: snapshot→deque", _stdlib_logger("floor", SnapshotFloor()),
                                      note="the issue's floor, for reference"),
        "queue": make_queue,
        "loguru": make_loguru,
        "chat": lambda: make_chat(fake, "ok"),
        "chat-hung": lambda: make_chat(fake, "hung"),
        "chat-503": lambda: make_chat(fake, "503"),
    }


def build(fake: FakePlatforms, with_loguru: bool) -> list[Candidate]:
    made = [make() for key, make in factories(fake).items() if with_loguru or key != "loguru"]
    return [c for c in made if c is not None]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    logging.lastResort = None  # "no handler" must mean no output at all
    logging.Logger.manager.emittedNoHandlerWarning = True
    with common.captured_stderr() as chatlog_stderr, FakePlatforms() as fake:
        candidates = build(fake, not args.no_loguru)
        by_name = {c.name: c for c in candidates}
        items = [f"{c.name}\t{mode}" for c in candidates for mode in MODES]
        try:
            for c in candidates:  # warm-up: imports, caches, linecache, first allocations
                for mode in MODES:
                    run_batch(c, mode, 0, min(1000, args.batch))
                    c.settle()
                c.results = {mode: [] for mode in MODES}
                c.latencies = array("q")
            gc.collect()
            overhead = timer_overhead_ns()
            start = 1000
            began = time.monotonic()
            for _round, item in common.interleaved(items, args.rounds):
                name, mode = item.split("\t")
                candidate = by_name[name]
                run_batch(candidate, mode, start, args.batch)
                start += args.batch
                candidate.settle()
            seconds = time.monotonic() - began
        finally:
            dropped = {c.name: c.dropped() for c in candidates}
            for c in candidates:
                c.close()
    return summarise(candidates, args, overhead, dropped, seconds, chatlog_stderr.getvalue())


def _round_ratios(candidate: Candidate, reference: Candidate, mode: str) -> list[float]:
    # Same round, same mode: both lists are in round order, one batch per round.
    return [a / b for a, b in zip(candidate.results[mode], reference.results[mode], strict=True)]


def summarise(candidates: list[Candidate], args: argparse.Namespace, overhead: float,
              dropped: dict[str, int], seconds: float, stderr_text: str) -> dict[str, Any]:
    reference = next(c for c in candidates if c.name == QUEUE)
    null = next(c for c in candidates if c.name == NULL)
    rows = []
    for c in candidates:
        lat = c.latencies
        rows.append({
            "name": c.name,
            "note": c.note,
            "error_ns": common.median(c.results["error"]),
            "error_ratio": common.median(_round_ratios(c, reference, "error")),
            "error_null_ratio": common.median(_round_ratios(c, null, "error")),
            "error_spread": common.spread(c.results["error"]),
            "extras_ns": common.median(c.results["extras"]),
            "extras_ratio": common.median(_round_ratios(c, reference, "extras")),
            "extras_null_ratio": common.median(_round_ratios(c, null, "extras")),
            "fresh_ns": common.median(c.results["fresh"]),
            "fresh_ratio": common.median(_round_ratios(c, reference, "fresh")),
            "exception_ns": common.median(c.results["exception"]),
            "exception_ratio": common.median(_round_ratios(c, reference, "exception")),
            "exception_spread": common.spread(c.results["exception"]),
            "p50_ns": common.percentile(lat, 50.0),
            "p99_ns": common.percentile(lat, 99.0),
            "p999_ns": common.percentile(lat, 99.9),
            "max_ns": max(lat) if lat else float("nan"),
            "slow_calls": sum(1 for x in lat if x > SLOW_CALL_NS),
            "calls": {mode: len(c.results[mode]) * max(1, int(args.batch * c.scale.get(mode, 1.0)))
                      for mode in MODES},
            "dropped": dropped.get(c.name, 0),
            "chat": c.chat,
        })
    return {
        "benchmark": "emit",
        "machine": common.machine(),
        "parameters": {"rounds": args.rounds, "batch": args.batch, "quick": args.quick},
        "timer_overhead_ns": overhead,
        "seconds": seconds,
        "chatlog_stderr_lines": len(stderr_text.splitlines()),
        "rows": rows,
        "targets": targets(rows),
    }


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {r["name"]: r for r in rows}
    ok, null = by["ChatHandler (ok)"], by[NULL]
    baseline_slow = max(by["no handler"]["slow_calls"], null["slow_calls"])
    chats = [r for r in rows if r["chat"]]
    worst_p99 = max(chats, key=lambda r: r["p99_ns"])
    worst_slow = max(chats, key=lambda r: r["slow_calls"])
    failing = [by["ChatHandler (hung)"], by["ChatHandler (503)"]]
    server_slow = max(r["slow_calls"] for r in failing)
    server_limit = 1.5 * ok["slow_calls"] + NOISE_CALLS
    return [
        {"target": "logger.error(): ChatHandler / QueueHandler", "measured": ok["error_ratio"],
         "limit": "≤ 0.75", "pass": ok["error_ratio"] <= 0.75},
        {"target": "logger.exception(): ChatHandler / QueueHandler", "measured": ok["exception_ratio"],
         "limit": "≤ 0.35", "pass": ok["exception_ratio"] <= 0.35},
        {"target": "logger.error(): ChatHandler / NullHandler (the logging framework's own cost)",
         "measured": ok["error_null_ratio"], "limit": "≤ 1.25", "pass": ok["error_null_ratio"] <= 1.25},
        {"target": "logger.error(extra=...): ChatHandler / QueueHandler", "measured": ok["extras_ratio"],
         "limit": "≤ 0.75", "pass": ok["extras_ratio"] <= 0.75},
        {"target": f"p99 latency: worst ChatHandler ({worst_p99['name']}) / NullHandler",
         "measured": worst_p99["p99_ns"] / null["p99_ns"], "limit": "≤ 1.5",
         "pass": worst_p99["p99_ns"] / null["p99_ns"] <= 1.5},
        {"target": "calls > 1 ms with the server hung or answering 503 vs answering",
         "measured": " / ".join(f"{r['slow_calls']}" for r in failing) + f" vs {ok['slow_calls']}",
         "limit": f"≤ 1.5 × answering + {NOISE_CALLS}", "pass": server_slow <= server_limit},
        {"target": f"calls > 1 ms: worst ChatHandler ({worst_slow['name']}) vs no handler/NullHandler",
         "measured": f"{worst_slow['slow_calls']} vs {baseline_slow}",
         "limit": f"≤ theirs + {NOISE_CALLS}",
         "pass": worst_slow["slow_calls"] <= baseline_slow + NOISE_CALLS},
    ]


def report(result: dict[str, Any]) -> str:
    rows = result["rows"]
    n = rows[0]["calls"]["error"]
    head = (f"emit: ns per call on the application thread, median of {result['parameters']['rounds']} "
            f"interleaved rounds ({n:,} calls per candidate and mode); ×Queue = median of same-round ratios; "
            f"latencies per single call include ~{result['timer_overhead_ns']:.0f} ns of timer overhead. "
            f"{common.machine_line(result['machine'])}.")
    main = common.table(
        ["handler", "error() ns", "×Queue", "×Null", "extras ns", "×Queue", "×Null", "new group ns", "×Queue",
         "exception() ns", "×Queue", "p50 ns", "p99 ns", "p99.9 ns", "max µs", "calls >1 ms", "dropped"],
        [[r["name"], r["error_ns"], r["error_ratio"], r["error_null_ratio"], r["extras_ns"],
          r["extras_ratio"], r["extras_null_ratio"], r["fresh_ns"], r["fresh_ratio"], r["exception_ns"],
          r["exception_ratio"],
          r["p50_ns"], r["p99_ns"], r["p999_ns"], r["max_ns"] / 1000, r["slow_calls"], r["dropped"]]
         for r in rows],
    )
    goals = common.targets_table(result["targets"])
    return f"{head}\n\n{main}\n\n{goals}\n"


def run_one(key: str, mode: str, records: int, batch: int) -> None:
    """Only this candidate, only this mode, `records` calls: what ``callgrind_emit.py`` counts."""
    logging.lastResort = None
    logging.Logger.manager.emittedNoHandlerWarning = True
    with common.captured_stderr(), FakePlatforms() as fake:
        candidate = factories(fake)[key]()
        if candidate is None:
            raise SystemExit(f"{key} is not available here")
        run_batch(candidate, mode, 0, min(batch, 200))  # warm-up: the same for every record count
        candidate.settle()
        done = 0
        while done < records:
            n = min(batch, records - done)
            run_batch(candidate, mode, 1000 + done, n)
            candidate.settle()
            done += n
    sys.stdout.flush()
    os._exit(0)  # no teardown: the instruction count is the same for every record count anyway


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 40; quick 4)")
    parser.add_argument("--batch", type=int, default=None,
                        help="calls per timed batch, below max_queue (default 5000; quick 2000)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--no-loguru", action="store_true", help="leave loguru out even when installed")
    parser.add_argument("--state", help="state= of every ChatHandler: memory, sqlite:///FILE, redis://… or "
                        "redis (a redis-server of this run's own); the store is touched on chatlog's "
                        "threads only, so the ratios must not change")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # callgrind_emit.py: KEY:MODE:RECORDS
    args = parser.parse_args(argv)
    if args.state == "redis":
        from chatlog.testing.redis_server import RedisServer

        with RedisServer.started() as server:
            return main([*(argv if argv is not None else sys.argv[1:]), "--state", server.url])
    if args.state:
        STORE["state"] = args.state
    if args.one:
        key, mode, records = args.one.split(":")
        run_one(key, mode, int(records), 2000)
    args.rounds = args.rounds or (4 if args.quick else 40)
    args.batch = args.batch or (2000 if args.quick else 5000)
    result = measure(args)
    print(report(result))
    path = common.write_json("emit" + (f"-{args.state.partition(':')[0]}" if args.state else ""), result)
    print(f"(written to {path.relative_to(common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
