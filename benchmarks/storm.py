"""A log storm, server down: 1,000,000 records over 10,000 fingerprints, as fast as one thread can log.

Each candidate runs in a fresh child process (so peak RSS is its own), in interleaved rounds:

- ChatHandler to a closed port on 127.0.0.1 (connections refused: the server is down), defaults
  (``max_queue=10_000``, ``max_groups=200``);
- stdlib QueueHandler(queue.Queue(-1)) + QueueListener whose downstream handler is stuck, as a
  handler waiting on a down server is. That is the most favourable case for QueueHandler's throughput
  (its listener takes no CPU or GIL) and the case where its queue grows without bound.

Reported per candidate: records/s achieved by the logging thread (wall clock), the logging thread's own
CPU per record, background CPU per record (process CPU minus the logging thread's), peak RSS above the
RSS before the first record, and ChatHandler's accounting (accepted = delivered + dropped + pending).

Then the delivery storm (issue 9 item 1): one thread logs as fast as it can for 60 s over four
templates to a fake Feishu bot (a separate process, so the server does not share the storm's GIL),
with ``group_wait=1`` and ``group_interval=1``. Reported: records/s next to QueueHandler's from the
first table, when the first message arrived after the first record, the spacing of the messages
during the storm, and whether every count shown is exact and nothing was dropped.

    python benchmarks/storm.py            # the issue's numbers: 1,000,000 records, 10,000 fingerprints
    python benchmarks/storm.py --quick    # 100,000 records over 1,000 fingerprints, one round; 10 s storm
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import logging
import logging.handlers
import os
import queue
import re
import subprocess
import sys
import threading
import time
from typing import Any

import _common as common

CANDIDATES = ("ChatHandler", "QueueHandler")
BACKGROUND_DRAIN_S = 30.0
DELIVERY_WAIT_S = 1.0
DELIVERY_INTERVAL_S = 1.0
DELIVERY_TEMPLATES = 4
_COUNT_LINE = re.compile(r"×([\d,]+)\**(?: more since last alert)?\** · ERROR · (bench\.delivery\.t\d+)")


class StuckHandler(logging.Handler):
    """A downstream handler that never finishes, like one whose server hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.released.wait()


def _logger() -> logging.Logger:
    logger = logging.getLogger("bench.storm")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def run_one(candidate: str, records: int, fingerprints: int) -> dict[str, Any]:
    """Runs in the child process: set up, log the storm, measure, and return the numbers."""
    templates = [f"job {k} failed for order %s" for k in range(fingerprints)]
    logger = _logger()
    handler: logging.Handler
    if candidate == "ChatHandler":
        from chatlog import ChatHandler

        url = f"http://127.0.0.1:{common.closed_port()}/robot/send?access_token=storm"
        handler = ChatHandler(url, level=logging.INFO)
        dispatcher = handler._dispatcher  # private: only to wait until the thread has drained the buffer
    else:
        q: queue.Queue[logging.LogRecord] = queue.Queue(-1)
        stuck = StuckHandler()
        listener = logging.handlers.QueueListener(q, stuck)
        listener.start()
        handler = logging.handlers.QueueHandler(q)
    logger.addHandler(handler)
    error = logger.error
    gc.collect()
    time.sleep(0.2)  # let the dispatcher thread settle into its poll loop
    rss_before = common.rss_bytes()
    cpu_before, thread_before, began = common.process_cpu_s(), time.thread_time(), time.perf_counter()
    for i in range(records):
        error(templates[i % fingerprints], i)
    logged_s = time.perf_counter() - began
    thread_s = time.thread_time() - thread_before
    drained = True
    if candidate == "ChatHandler":
        drained = common.wait_until(lambda: not dispatcher.buffer, BACKGROUND_DRAIN_S, poll_s=0.01)
    # Both sampled now: the logging thread only sleeps while the background finishes the buffer.
    background_s = (common.process_cpu_s() - cpu_before) - (time.thread_time() - thread_before)
    result: dict[str, Any] = {
        "candidate": candidate,
        "records": records,
        "fingerprints": fingerprints,
        "logged_s": logged_s,
        "records_per_s": records / logged_s,
        "thread_cpu_ns_per_record": thread_s / records * 1e9,
        "background_cpu_s": background_s,
        "rss_before": rss_before,
        "peak_rss_growth": common.peak_rss_bytes() - rss_before,
        "drained": drained,
    }
    if candidate == "ChatHandler":
        stats = handler.stats()  # type: ignore[attr-defined]
        result["stats"] = dataclasses.asdict(stats)
        processed = stats.accepted - stats.dropped
        result["processed"] = processed
        result["accounting_holds"] = stats.accepted == stats.delivered_records + stats.dropped + stats.pending
    else:
        result["processed"] = 0  # the stuck listener took none
        result["queued"] = q.qsize()
    return result


def fake_server() -> int:
    """Runs in its own process: a fake Feishu bot; prints its URL, then on stdin's end what it received."""
    from chatlog.testing import FakePlatforms

    with FakePlatforms() as fake:
        bot = fake.add_bot("feishu", rate_limit=False)
        print(json.dumps({"url": bot.url}), flush=True)
        sys.stdin.read()
        received = [{"at": r.at, "accepted": r.accepted, "text": bot.text_of(r.payload) if r.payload else ""}
                    for r in bot.received]
    print(json.dumps(received), flush=True)
    return 0


def run_delivery(seconds: float) -> dict[str, Any]:
    """Runs in the child process: log for `seconds` as fast as one thread can; when did messages leave?"""
    from chatlog import ChatHandler

    server = subprocess.Popen([sys.executable, __file__, "--fake-server"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = json.loads(server.stdout.readline())["url"]
    handler = ChatHandler(url, level=logging.INFO, group_wait=DELIVERY_WAIT_S,
                          group_interval=DELIVERY_INTERVAL_S, close_timeout=10.0)
    loggers = []
    for k in range(DELIVERY_TEMPLATES):
        logger = logging.getLogger(f"bench.delivery.t{k}")
        logger.propagate = False
        logger.addHandler(handler)
        loggers.append(logger.error)
    time.sleep(0.2)
    logged, stop = 0, time.monotonic() + seconds
    began = time.time()
    while time.monotonic() < stop:
        for log in loggers * 250:
            log("order %s failed", logged)
            logged += 1
    ended = time.time()
    flushed = handler.flush(30.0)
    stats = handler.stats()
    handler.close()
    out, _ = server.communicate("", timeout=120)
    received = json.loads(out.strip().splitlines()[-1])
    sent = [r["at"] for r in received if r["accepted"]]
    during = [t for t in sent if t <= ended]
    shown: dict[str, int] = {}
    for r in received:
        if r["accepted"]:
            for number, group in _COUNT_LINE.findall(r["text"]):
                shown[group] = shown.get(group, 0) + int(number.replace(",", ""))
    gaps = [b - a for a, b in itertools.pairwise(during)]
    return {
        "seconds": seconds,
        "records": logged,
        "records_per_s": logged / (ended - began),
        "first_message_s": (during[0] - began) if during else float("nan"),
        "messages_during": len(during),
        "gap_median_s": common.median(gaps),
        "gap_min_s": min(gaps, default=float("nan")),
        "gap_max_s": max(gaps, default=float("nan")),
        "stats": dataclasses.asdict(stats),
        "flushed": flushed,
        "counts_exact": shown == {f"bench.delivery.t{k}": logged // DELIVERY_TEMPLATES
                                  for k in range(DELIVERY_TEMPLATES)},
    }


def child(args: argparse.Namespace) -> int:
    with common.captured_stderr():  # chatlog's "retrying" notice about the down server
        if args.one == "delivery":
            result = run_delivery(args.storm_seconds)
        else:
            result = run_one(args.one, args.records, args.fingerprints)
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # do not wait for a stuck listener or a close() against a down server


def spawn(candidate: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one", candidate, "--records", str(args.records),
               "--fingerprints", str(args.fingerprints), "--storm-seconds", str(args.storm_seconds)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"storm child {candidate} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def delivery_targets(delivery: dict[str, Any]) -> list[dict[str, Any]]:
    """The storm's delivery bounds (issue 9 items 1 and 2)."""
    stats = delivery["stats"]
    first, low, high = delivery["first_message_s"], delivery["gap_min_s"], delivery["gap_max_s"]
    return [
        {"target": f"delivery storm: first message after the first record (group_wait={DELIVERY_WAIT_S:g})",
         "measured": f"{first:.2f} s", "limit": f"≤ {DELIVERY_WAIT_S + 1:g} s",
         "pass": first <= DELIVERY_WAIT_S + 1},
        {"target": f"delivery storm: spacing of messages (group_interval={DELIVERY_INTERVAL_S:g})",
         "measured": f"{low:.2f}–{high:.2f} s", "limit": f"{DELIVERY_INTERVAL_S:g} ± 1 s",
         "pass": low >= DELIVERY_INTERVAL_S - 1 and high <= DELIVERY_INTERVAL_S + 1},
        {"target": "delivery storm: every count shown exact, nothing dropped",
         "measured": f"exact={delivery['counts_exact']}, dropped={stats['dropped']:,}", "limit": "exact, 0",
         "pass": delivery["counts_exact"] and stats["dropped"] == 0},
    ]


def summarise(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {c: [r for r in runs if r["candidate"] == c] for c in CANDIDATES}
    ratios = [c["records_per_s"] / q["records_per_s"]
              for c, q in zip(by["ChatHandler"], by["QueueHandler"], strict=True)]
    rows = []
    for name, results in by.items():
        processed = common.median([r["processed"] for r in results])
        background = common.median([r["background_cpu_s"] for r in results])
        rows.append({
            "name": name,
            "records_per_s": common.median([r["records_per_s"] for r in results]),
            "ratio": common.median(ratios) if name == "ChatHandler" else 1.0,
            "thread_cpu_ns_per_record": common.median([r["thread_cpu_ns_per_record"] for r in results]),
            "background_ns_per_record": background / args.records * 1e9,
            "background_ns_per_processed": background / processed * 1e9 if processed else float("nan"),
            "processed": processed,
            "peak_rss_growth_mb": common.median([r["peak_rss_growth"] for r in results]) / 2**20,
            "dropped": common.median([r.get("stats", {}).get("dropped", 0) for r in results]),
        })
    chat = rows[0]
    accounting = all(r["accounting_holds"] and r["drained"] for r in by["ChatHandler"])
    targets = [
        {"target": "logging-thread throughput: ChatHandler / QueueHandler", "measured": chat["ratio"],
         "limit": "≥ 1.0", "pass": chat["ratio"] >= 1.0},
        {"target": "peak RSS growth, ChatHandler (MB)", "measured": chat["peak_rss_growth_mb"],
         "limit": "< 64", "pass": chat["peak_rss_growth_mb"] < 64},
        {"target": "background CPU per record the dispatcher took (µs)",
         "measured": chat["background_ns_per_processed"] / 1000, "limit": "< 3",
         "pass": chat["background_ns_per_processed"] < 3000},
        {"target": "accounting: accepted = delivered + dropped + pending, buffer drained",
         "measured": "holds" if accounting else "broken", "limit": "holds", "pass": accounting},
    ]
    return {
        "benchmark": "storm",
        "machine": common.machine(),
        "parameters": {"records": args.records, "fingerprints": args.fingerprints, "rounds": args.rounds,
                       "quick": args.quick},
        "rows": rows,
        "runs": runs,
        "targets": targets,
    }


def report(result: dict[str, Any]) -> str:
    p = result["parameters"]
    head = (f"storm: {p['records']:,} records over {p['fingerprints']:,} fingerprints, server down, one "
            f"logging thread; median of {p['rounds']} interleaved rounds, each candidate in a fresh process. "
            f"{common.machine_line(result['machine'])}.")
    main = common.table(
        ["handler", "records/s", "×Queue", "thread CPU ns/rec", "background ns/rec logged",
         "background ns/rec taken", "records taken", "dropped", "peak RSS +MB"],
        [[r["name"], r["records_per_s"], r["ratio"], r["thread_cpu_ns_per_record"],
          r["background_ns_per_record"], r["background_ns_per_processed"], int(r["processed"]),
          int(r["dropped"]), r["peak_rss_growth_mb"]] for r in result["rows"]],
    )
    d = result["delivery"]
    queue_rate = next(r["records_per_s"] for r in result["rows"] if r["name"] == "QueueHandler")
    delivery_head = (f"delivery storm: {d['seconds']:.0f} s, one thread as fast as it can over "
                     f"{DELIVERY_TEMPLATES} templates to a fake Feishu bot in another process, "
                     f"group_wait={DELIVERY_WAIT_S:g} s, group_interval={DELIVERY_INTERVAL_S:g} s; "
                     "QueueHandler's records/s from the table above.")
    delivery = common.table(
        ["handler", "records/s", "QueueHandler records/s", "first message s", "messages during storm",
         "spacing median s", "spacing min s", "spacing max s", "dropped", "counts exact"],
        [["ChatHandler", d["records_per_s"], queue_rate, d["first_message_s"], d["messages_during"],
          d["gap_median_s"], d["gap_min_s"], d["gap_max_s"], d["stats"]["dropped"],
          "yes" if d["counts_exact"] else "no"]],
    )
    goals = common.targets_table(result["targets"])
    return f"{head}\n\n{main}\n\n{delivery_head}\n\n{delivery}\n\n{goals}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=None, help="records to log (default 1,000,000)")
    parser.add_argument("--fingerprints", type=int, default=None, help="distinct templates (default 10,000)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="100,000 records, 1,000 fingerprints, 1 round")
    parser.add_argument("--storm-seconds", type=float, default=None,
                        help="length of the delivery storm (default 60; quick 10)")
    parser.add_argument("--one", choices=(*CANDIDATES, "delivery"), help=argparse.SUPPRESS)
    parser.add_argument("--fake-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fake_server:
        return fake_server()
    args.storm_seconds = args.storm_seconds or (10.0 if args.quick else 60.0)
    args.records = args.records or (100_000 if args.quick else 1_000_000)
    args.fingerprints = args.fingerprints or (1_000 if args.quick else 10_000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.one:
        return child(args)
    runs = [spawn(name, args) for _round, name in common.interleaved(CANDIDATES, args.rounds)]
    result = summarise(runs, args)
    delivery = spawn("delivery", args)
    result["delivery"] = delivery
    result["targets"] += delivery_targets(delivery)
    print(report(result))
    path = common.write_json("storm", result)
    print(f"(written to {path.relative_to(common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
