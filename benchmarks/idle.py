"""What an idle handler costs: CPU of chatlog's threads while nothing is logged (issue 9 item 3).

A ChatHandler to a fake Feishu bot (in another process, so its server threads are not counted)
delivers one record, then the process sleeps. Measured over the
quiet period: the CPU time of chatlog's own threads (per-thread CPU clocks) and of the whole process
(getrusage), next to a stdlib QueueHandler + QueueListener measured the same way. In a fleet every
process pays this, so the target is no periodic wake-ups at all.

    python benchmarks/idle.py            # 10 s quiet period
    python benchmarks/idle.py --quick    # 3 s
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import queue
import subprocess
import sys
import threading
import time
from typing import Any

import _common as common

from chatlog import ChatHandler


def _thread_cpu_s(threads: list[threading.Thread]) -> float:
    return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident)) for t in threads
               if t.ident is not None and t.is_alive())


def _quiet(threads: list[threading.Thread], seconds: float) -> dict[str, float]:
    threads_before, process_before = _thread_cpu_s(threads), common.process_cpu_s()
    time.sleep(seconds)
    return {
        "thread_cpu_ms_per_s": (_thread_cpu_s(threads) - threads_before) * 1000 / seconds,
        "process_cpu_ms_per_s": (common.process_cpu_s() - process_before) * 1000 / seconds,
    }


def measure_chat(seconds: float) -> dict[str, float]:
    server = subprocess.Popen([sys.executable, str(common.ROOT / "benchmarks" / "storm.py"), "--fake-server"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = json.loads(server.stdout.readline())["url"]
    before = set(threading.enumerate())
    handler = ChatHandler(url, group_wait=0.1)
    threads = [t for t in threading.enumerate() if t not in before]
    logger = logging.getLogger("bench.idle.chat")
    logger.propagate = False
    logger.addHandler(handler)
    logger.error("one alert before the quiet")
    if not handler.flush(10.0):
        raise RuntimeError("the fake bot did not take the alert")
    time.sleep(0.5)  # the answer is settled: nothing pending from here on
    try:
        return _quiet(threads, seconds)
    finally:
        handler.close()
        server.communicate("", timeout=30)


def measure_queue(seconds: float) -> dict[str, float]:
    q: queue.Queue[logging.LogRecord] = queue.Queue(-1)
    before = set(threading.enumerate())
    listener = logging.handlers.QueueListener(q, logging.NullHandler())
    listener.start()
    threads = [t for t in threading.enumerate() if t not in before]
    logger = logging.getLogger("bench.idle.queue")
    logger.propagate = False
    logger.addHandler(logging.handlers.QueueHandler(q))
    logger.error("one record before the quiet")
    time.sleep(0.5)
    try:
        return _quiet(threads, seconds)
    finally:
        listener.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=None, help="quiet period (default 10; quick 3)")
    parser.add_argument("--quick", action="store_true", help="a 3 s quiet period")
    args = parser.parse_args(argv)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    with common.captured_stderr():
        chat = measure_chat(seconds)
    stdlib = measure_queue(seconds)
    rows = [{"name": "ChatHandler", **chat}, {"name": "QueueHandler+Listener", **stdlib}]
    targets: list[dict[str, Any]] = [
        {"target": "idle ChatHandler: CPU of chatlog's threads (ms per s)",
         "measured": chat["thread_cpu_ms_per_s"], "limit": "≤ 0.01 (no periodic wake-ups)",
         "pass": chat["thread_cpu_ms_per_s"] <= 0.01},
    ]
    result = {"benchmark": "idle", "machine": common.machine(), "parameters": {"seconds": seconds},
              "rows": rows, "targets": targets}
    head = (f"idle: CPU while nothing is logged, over {seconds:g} s after one delivered record. "
            f"{common.machine_line(result['machine'])}.")
    table = common.table(["handler", "its threads' CPU ms/s", "process CPU ms/s"],
                         [[r["name"], r["thread_cpu_ms_per_s"], r["process_cpu_ms_per_s"]] for r in rows])
    print(f"{head}\n\n{table}\n\n{common.targets_table(targets)}\n")
    path = common.write_json("idle", result)
    print(f"(written to {path.relative_to(common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
