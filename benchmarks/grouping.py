"""How well chatlog groups messages that were logged without ``%``-arguments, against Drain3.

Reads Loghub-style ``*_structured.csv`` files (one log line per row: ``Content`` is the message,
``EventId`` its true event) and groups every line's ``Content`` three ways:

- **chatlog**: ``chatlog.templates.template_of`` (what the dispatcher uses for a pre-formatted message);
- **chatlog before**: the regex normaliser chatlog used before issue 13, for comparison;
- **Drain3**: ``drain3.TemplateMiner`` with its default configuration, fed the lines in file order.

Reported per system: Grouping Accuracy (Zhu et al., ICSE-SEIP 2019: a line counts as correct iff the set
of lines in its predicted group equals the set of lines of its true event), predicted groups against true
events, over-merged lines (in a group that mixes two or more true events: a distinct error hidden in
another's count) and over-split lines (in a pure group whose event is spread over several groups).

It then measures the cost: `extract` (the first record of a template: no cache) and `template_of` (a
record of a known template: the cache) per message over all the lines above, and the dispatcher's
background CPU per record in a storm through a real ChatHandler (server down, as in
``benchmarks/storm.py``), for ``%``-argument records and for the same records pre-formatted (f-strings):
for the first record of each template, and for records of templates already known.

    python benchmarks/grouping.py                          # the development subset + the Python corpus
    python benchmarks/grouping.py --data DIR [--data DIR]  # also every *_structured.csv under DIR
    python benchmarks/grouping.py --quick                  # a smaller storm
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common

DEV_DATA = common.ROOT.parent / "shared" / "data" / "loghub-dev"
PYTHON_CORPUS = common.ROOT / "benchmarks" / "data" / "python_corpus.csv"
PUBLISHED_TUNED_DRAIN = 0.865  # Zhu et al. 2019, Table III, average over the 16 Loghub-2k systems
PUBLISHED_DRAIN = {  # the same table, per system: Drain with its per-dataset settings and masks
    "HDFS": 0.998, "Hadoop": 0.948, "Spark": 0.920, "Zookeeper": 0.967, "OpenStack": 0.733, "BGL": 0.963,
    "HPC": 0.887, "Thunderbird": 0.955, "Windows": 0.997, "Linux": 0.690, "Mac": 0.787, "Android": 0.911,
    "HealthApp": 0.780, "Apache": 1.000, "OpenSSH": 0.788, "Proxifier": 0.527,
}

Grouper = Callable[[Sequence[str]], list[Hashable]]


@dataclass(frozen=True)
class System:
    """One labelled log: the messages and the true event of each."""

    name: str
    messages: tuple[str, ...]
    events: tuple[str, ...]


@dataclass(frozen=True)
class Score:
    """How one grouper did on one system."""

    accuracy: float
    groups: int
    events: int
    over_merged: float
    over_split: float


def load(path: Path) -> System:
    """A ``*_structured.csv`` file (columns ``Content`` and ``EventId``) as a `System`."""
    csv.field_size_limit(1 << 24)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    name = path.name.split("_structured")[0].removesuffix(".log").removesuffix("_2k")
    return System(name, tuple(row["Content"] for row in rows), tuple(row["EventId"] for row in rows))


def score(events: Sequence[str], predicted: Sequence[Hashable]) -> Score:
    """Grouping Accuracy and the kinds of error of `predicted` group keys against the true `events`."""
    by_group: dict[Hashable, list[int]] = defaultdict(list)
    by_event: dict[str, list[int]] = defaultdict(list)
    for line, (event, group) in enumerate(zip(events, predicted, strict=True)):
        by_group[group].append(line)
        by_event[event].append(line)
    correct = merged = split = 0
    for lines in by_group.values():
        kinds = {events[line] for line in lines}
        if len(kinds) > 1:
            merged += len(lines)
        elif len(by_event[events[lines[0]]]) == len(lines):
            correct += len(lines)
        else:
            split += len(lines)
    total = len(events) or 1
    return Score(correct / total, len(by_group), len(by_event), merged / total, split / total)


# --- the groupers ------------------------------------------------------------------------------------------

_BEFORE = re.compile(  # chatlog.entry.normalize before issue 13, kept here to show the change
    r"""'[^']*'|"[^"]*"|\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b|\b0x[0-9a-fA-F]+\b
    |\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b|-?\d+(?:[.:]\d+)*""",
    re.VERBOSE,
)


def group_chatlog(messages: Sequence[str]) -> list[Hashable]:
    """Group key of each message: its template (a pure function of the message)."""
    from chatlog.templates import template_of  # here: --storm-child also runs against older checkouts

    return [template_of(message) for message in messages]


def group_before(messages: Sequence[str]) -> list[Hashable]:
    """Group key of each message as chatlog computed it before issue 13."""
    return [_BEFORE.sub("<*>", message[:500]) for message in messages]


def group_drain3(messages: Sequence[str]) -> list[Hashable]:
    """Drain3's cluster of each message, default configuration, messages fed in order."""
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()  # its defaults; not drain3.ini from the working directory
    config.profiling_enabled = False
    miner = TemplateMiner(config=config)
    return [miner.add_log_message(message)["cluster_id"] for message in messages]


GROUPERS: dict[str, Grouper] = {"chatlog": group_chatlog, "chatlog before": group_before,
                                "Drain3": group_drain3}


# --- running and reporting ---------------------------------------------------------------------------------


def systems(data_dirs: Sequence[Path], python_corpus: bool) -> list[tuple[str, System]]:
    """``(set name, system)`` for every structured file found, development subset first."""
    found: list[tuple[str, System]] = []
    for label, folder in [("loghub-dev", DEV_DATA), *((str(d), d) for d in data_dirs)]:
        for path in sorted(folder.glob("*_structured.csv")):
            found.append((label, load(path)))
    if python_corpus:
        found.append(("python", load(PYTHON_CORPUS)))
    return found


def evaluate(found: list[tuple[str, System]]) -> list[dict[str, Any]]:
    """Every grouper on every system, with its score and the time it took per message."""
    rows = []
    for label, system in found:
        for name, grouper in GROUPERS.items():
            began = time.perf_counter()
            predicted = grouper(system.messages)
            seconds = time.perf_counter() - began
            result = score(system.events, predicted)
            rows.append({"set": label, "system": system.name, "grouper": name, **result.__dict__,
                         "us_per_message": seconds / max(len(system.messages), 1) * 1e6})
    return rows


def averages(rows: list[dict[str, Any]], label: str) -> dict[str, dict[str, float]]:
    """Per grouper, the mean of each score over the systems of one set."""
    out: dict[str, dict[str, float]] = {}
    for name in GROUPERS:
        mine = [r for r in rows if r["set"] == label and r["grouper"] == name]
        if mine:
            out[name] = {key: sum(r[key] for r in mine) / len(mine)
                         for key in ("accuracy", "over_merged", "over_split", "groups", "events")}
    return out


def _published_drain(rows: list[dict[str, Any]], label: str) -> float | None:
    """Tuned Drain's published average GA over the systems of one set (None if one is not in the paper)."""
    names = [r["system"] for r in rows if r["set"] == label and r["grouper"] == "chatlog"]
    if not names or any(name not in PUBLISHED_DRAIN for name in names):
        return None
    return sum(PUBLISHED_DRAIN[name] for name in names) / len(names)


def report(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The per-system table, the averages and the issue-13 targets."""
    headers = ["set", "system", "grouper", "GA", "groups", "true events", "over-merged", "over-split"]
    table_rows: list[list[object]] = [[r["set"], r["system"], r["grouper"], r["accuracy"], r["groups"],
                                       r["events"], f"{r['over_merged']:.1%}", f"{r['over_split']:.1%}"]
                                      for r in rows]
    labels = list(dict.fromkeys(r["set"] for r in rows))
    for label in labels:
        for name, mean in averages(rows, label).items():
            table_rows.append([label, "average", name, mean["accuracy"], mean["groups"], mean["events"],
                               f"{mean['over_merged']:.1%}", f"{mean['over_split']:.1%}"])
        published = _published_drain(rows, label)
        if published is not None:
            table_rows.append([label, "average", "Drain, tuned (published)", published, "–", "–", "–", "–"])
    targets: list[dict[str, Any]] = []
    for label in labels:
        if label == "python":
            continue
        mean = averages(rows, label)
        same = _published_drain(rows, label)
        if same is not None:
            targets.append({"target": f"{label}: GA above published tuned Drain on these systems",
                            "measured": mean["chatlog"]["accuracy"], "limit": f"> {same:.3f}",
                            "pass": mean["chatlog"]["accuracy"] > same})
        ga, merged = mean["chatlog"]["accuracy"], mean["chatlog"]["over_merged"]
        drain = mean["Drain3"]["accuracy"]
        targets += [
            {"target": f"{label}: average GA", "measured": ga, "limit": "≥ 0.90", "pass": ga >= 0.90},
            {"target": f"{label}: GA above published tuned Drain (16-system average)", "measured": ga,
             "limit": f"> {PUBLISHED_TUNED_DRAIN}", "pass": ga > PUBLISHED_TUNED_DRAIN},
            {"target": f"{label}: GA above Drain3 defaults (same run)", "measured": ga,
             "limit": f"> {drain:.3f}", "pass": ga > drain},
            {"target": f"{label}: over-merged lines", "measured": f"{merged:.2%}", "limit": "≤ 1 %",
             "pass": merged <= 0.01},
        ]
    text = common.table(headers, table_rows) + "\n\n" + common.targets_table(targets)
    return text, targets


# --- cost ---------------------------------------------------------------------------------------------------


def template_cost(found: list[tuple[str, System]]) -> dict[str, float]:
    """µs per message: `extract` (no cache), then `template_of` over the same lines twice (cache filling, then
    warm: what a record of a template already seen costs)."""
    from chatlog.templates import extract, template_of

    messages = [message for _, system in found for message in system.messages]
    out: dict[str, float] = {}
    for name, function in [("extract", extract), ("template_of, first pass", template_of),
                           ("template_of, second pass", template_of)]:
        began = time.perf_counter()
        for message in messages:
            function(message)
        out[name] = (time.perf_counter() - began) / len(messages) * 1e6
    return out


def storm_child(kind: str, records: int, fingerprints: int) -> dict[str, Any]:
    """In a fresh process: log errors through a ChatHandler whose server is down; background CPU per record.

    `kind` is ``%-args`` (the template is the record's msg) or ``pre-formatted`` (f-strings: template_of).
    Three phases, each filed before the next starts: one record (the handler's one-off start: the HTTP
    client is built on chatlog's thread), the first record of each of `fingerprints` templates (a new
    template), then `records` records of those templates (known templates: the issue-13 budget).
    """
    from chatlog import ChatHandler

    logger = logging.getLogger("bench.grouping")
    logger.propagate = False
    url = f"http://127.0.0.1:{common.closed_port()}/robot/send?access_token=grouping"
    handler = ChatHandler(url, level=logging.INFO)
    dispatcher = handler._dispatcher  # private: only to wait until the thread has drained the buffer
    logger.addHandler(handler)
    error = logger.error
    names = [_word(k) for k in range(fingerprints)]  # a word per template: numbers would be values
    templates = [f"job {name} failed for order %s" for name in names]

    def log(start: int, stop: int) -> None:
        if kind == "%-args":
            for i in range(start, stop):
                error(templates[i % fingerprints], i)
        else:
            for i in range(start, stop):
                error(f"job {names[i % fingerprints]} failed for order {i}")

    def background_s(start: int, stop: int) -> float:
        cpu_before, thread_before = common.process_cpu_s(), time.thread_time()
        log(start, stop)
        common.wait_until(lambda: not dispatcher.buffer, 60.0, poll_s=0.01)
        time.sleep(0.1)  # two poll intervals: the counts tallied on this thread are collected too
        return (common.process_cpu_s() - cpu_before) - (time.thread_time() - thread_before)

    error("the storm begins")
    courier = dispatcher._sender.courier if hasattr(dispatcher, "_sender") else dispatcher._courier  # older
    common.wait_until(lambda: not dispatcher.buffer and courier._client is not None, 30.0, 0.01)
    time.sleep(0.2)
    first = background_s(0, fingerprints)
    known = background_s(fingerprints, fingerprints + records)
    stats = handler.stats()
    groups = len(dispatcher._groups)  # private: how many groups the records made
    return {"kind": kind, "records": records, "processed": stats.accepted - stats.dropped - 1 - fingerprints,
            "groups": groups, "first_us_per_template": first / fingerprints * 1e6,
            "background_us_per_record": known / records * 1e6}


def _word(k: int) -> str:
    letters = ""
    while True:
        k, digit = divmod(k, 26)
        letters += chr(ord("a") + digit)
        if not k:
            return "x" + letters


def storm_cost(quick: bool, baseline: Path | None) -> list[dict[str, Any]]:
    """`storm_child` for both kinds of record (and, with `baseline`, that checkout too), each in its own
    process, in interleaved rounds."""
    records, fingerprints = (50_000, 500) if quick else (200_000, 1_000)
    code = {"this tree": str(common.ROOT), **({"baseline": str(baseline)} if baseline else {})}
    candidates = [f"{kind}|{tree}" for kind in ("%-args", "pre-formatted") for tree in code]
    runs = []
    for _round, candidate in common.interleaved(candidates, 1 if quick else 3):
        kind, tree = candidate.split("|")
        command = [sys.executable, __file__, "--storm-child", kind, str(records), str(fingerprints)]
        env = {**os.environ, "PYTHONPATH": code[tree]}
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"storm child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        runs.append({**json.loads(lines[-1]), "tree": tree})
    return runs


def cost_report(cost: dict[str, float], runs: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The cost tables and the issue-6 budget as a target."""
    first = common.table(["function", "µs per message"], [[name, value] for name, value in cost.items()])
    rows, targets = [], []
    for kind, tree in dict.fromkeys((r["kind"], r["tree"]) for r in runs):
        mine = [r for r in runs if r["kind"] == kind and r["tree"] == tree]
        us = common.median([r["background_us_per_record"] for r in mine])
        new = common.median([r.get("first_us_per_template", float("nan")) for r in mine])
        rows.append([kind, tree, mine[0]["records"], mine[0]["groups"], new, us])
        if tree == "this tree":
            targets.append({"target": f"background CPU per {kind} record, known templates (µs)",
                            "measured": us, "limit": "< 3", "pass": us < 3})
    second = common.table(["records", "code", "logged", "groups", "first record of a template µs",
                           "background µs per record, known templates"], rows)
    return f"{first}\n\n{second}", targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, action="append", default=[],
                        help="a directory of more *_structured.csv files (repeatable)")
    parser.add_argument("--quick", action="store_true", help="a smaller storm, one round")
    parser.add_argument("--no-python", action="store_true", help="leave out the Python corpus")
    parser.add_argument("--baseline", type=Path, help="also run the storm with the chatlog package under "
                        "this directory (e.g. an export of main: git archive main chatlog | tar -x -C DIR)")
    parser.add_argument("--storm-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.storm_child:
        kind, records, fingerprints = args.storm_child
        with common.captured_stderr():  # chatlog's "retrying" notice about the down server
            result = storm_child(kind, int(records), int(fingerprints))
        print(json.dumps(result), flush=True)
        os._exit(0)  # do not wait for close() against a down server
    if args.baseline and not (args.baseline / "chatlog" / "__init__.py").exists():
        parser.error(f"--baseline {args.baseline}: no chatlog package there (example: --baseline /tmp/main)")
    for folder in args.data:
        if not folder.is_dir():
            parser.error(f"--data {folder}: not a directory (example: --data ~/loghub-2k/all)")
    found = systems(args.data, not args.no_python)
    rows = evaluate(found)
    text, targets = report(rows)
    print(f"grouping: {common.machine_line(common.machine())}\n\n{text}\n", flush=True)
    cost = template_cost(found)
    runs = storm_cost(args.quick, args.baseline)
    cost_text, cost_targets = cost_report(cost, runs)
    print(f"cost of grouping:\n\n{cost_text}\n\n{common.targets_table(cost_targets)}\n")
    targets += cost_targets
    path = common.write_json("grouping", {"benchmark": "grouping", "machine": common.machine(), "rows": rows,
                                          "cost_us": cost, "storm": runs, "targets": targets})
    print(f"(written to {path.relative_to(common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
