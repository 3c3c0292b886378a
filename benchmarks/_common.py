"""What the three benchmarks share: interleaved rounds, percentiles, tables, JSON results, machine facts.

Importing this module also makes the working tree's ``chatlog`` importable when it is neither installed
nor on ``PYTHONPATH`` (``python benchmarks/emit.py`` puts only ``benchmarks/`` on ``sys.path``); point
``PYTHONPATH`` at another checkout to measure a proposed change against the same scripts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import platform
import random
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
if importlib.util.find_spec("chatlog") is None:  # not installed: use the working tree
    sys.path.insert(0, str(ROOT))

T = TypeVar("T")


# --- statistics ----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100) of `values`, by linear interpolation; `values` need not be sorted."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """The median of `values` (nan when empty)."""
    return percentile(values, 50.0)


def spread(values: Sequence[float]) -> float:
    """Relative interquartile range: (p75 - p25) / p50, a unitless measure of how noisy `values` are."""
    mid = median(values)
    return (percentile(values, 75.0) - percentile(values, 25.0)) / mid if mid else float("nan")


def interleaved(names: Sequence[str], rounds: int, seed: int = 6) -> Iterator[tuple[int, str]]:
    """``(round, name)`` for every name in every round, in a fresh random order each round.

    Interleaving spreads the machine's slow moments (other jobs, frequency changes) over all
    candidates, so their ratios stay meaningful on a shared, noisy machine.
    """
    rng = random.Random(seed)
    for round_no in range(rounds):
        order = list(names)
        rng.shuffle(order)
        for name in order:
            yield round_no, name


def max_in_window(times: list[float], window_s: float) -> int:
    """Most requests within any window of `window_s` seconds ending at a request: (t - window, t]."""
    best, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - window_s:
            first += 1
        best = max(best, last - first + 1)
    return best


# --- the machine and the process -----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What a reader needs to judge the numbers: cores, Python, OS, load at the time."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "time": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Highest resident set size this process has had (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def process_cpu_s() -> float:
    """User + system CPU seconds of every thread of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def closed_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (connections are refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def captured_stderr() -> Iterator[io.StringIO]:
    """Collect what is written to ``sys.stderr`` (chatlog's own retry notices) instead of printing it."""
    saved, sys.stderr = sys.stderr, io.StringIO()
    try:
        yield sys.stderr
    finally:
        sys.stderr = saved


def wait_until(done: Callable[[], bool], timeout_s: float, poll_s: float = 0.002) -> bool:
    """Poll `done` until it is true or `timeout_s` passed; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() >= deadline:
            return done()
        time.sleep(poll_s)
    return True


# --- output ----------------------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    """``PASS`` / ``FAIL`` / ``n/a`` (None: not measured here)."""
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def targets_table(targets: list[dict[str, Any]]) -> str:
    """The target / measured / limit / verdict table every benchmark ends with."""
    return table(
        ["target", "measured", "limit", "verdict"],
        [[t["target"], t["measured"], t["limit"], verdict(t["pass"])] for t in targets],
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table (it reads well in a terminal too); numbers right-aligned."""
    cells = [[str(c) for c in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                          for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_json(name: str, data: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (the folder is git-ignored) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return path


def machine_line(info: dict[str, Any]) -> str:
    """``"2 CPUs, CPython 3.11.7, load 0.12 0.20 0.15"``."""
    load = " ".join(f"{x:.2f}" for x in info["loadavg"])
    return f"{info['cpus']} CPUs, {info['implementation']} {info['python']}, load average {load}"


CALLGRIND_TOTALS = re.compile(r"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


def callgrind_instructions(args: list[str], out: Path, env: dict[str, str] | None = None) -> int:
    """Instructions of the main thread of ``python ARGS`` under callgrind (`out`: its files' prefix)."""
    command = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}.%p",
               sys.executable, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900, env=env)
    files = sorted(out.parent.glob(f"{out.name}.*-01"))
    if done.returncode != 0 or not files:
        raise RuntimeError(f"callgrind run {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    match = CALLGRIND_TOTALS.search(files[-1].read_text(errors="replace"))
    if match is None:
        raise RuntimeError(f"no totals in {files[-1]}")
    return int(match.group(1))
