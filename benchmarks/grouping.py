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

    python benchmarks/grouping.py                          # the development subset + the Python corpus
    python benchmarks/grouping.py --data DIR [--data DIR]  # also every *_structured.csv under DIR
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common

from chatlog.templates import template_of

DEV_DATA = common.ROOT.parent / "shared" / "data" / "loghub-dev"
PYTHON_CORPUS = common.ROOT / "benchmarks" / "data" / "python_corpus.csv"
PUBLISHED_TUNED_DRAIN = 0.865  # Zhu et al. 2019, Table III, average over the 16 Loghub-2k systems

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
    targets: list[dict[str, Any]] = []
    for label in labels:
        if label == "python":
            continue
        mean = averages(rows, label)
        ga, merged = mean["chatlog"]["accuracy"], mean["chatlog"]["over_merged"]
        drain = mean["Drain3"]["accuracy"]
        targets += [
            {"target": f"{label}: average GA", "measured": ga, "limit": "≥ 0.90", "pass": ga >= 0.90},
            {"target": f"{label}: GA above published tuned Drain", "measured": ga,
             "limit": f"> {PUBLISHED_TUNED_DRAIN}", "pass": ga > PUBLISHED_TUNED_DRAIN},
            {"target": f"{label}: GA above Drain3 defaults (same run)", "measured": ga,
             "limit": f"> {drain:.3f}", "pass": ga > drain},
            {"target": f"{label}: over-merged lines", "measured": f"{merged:.2%}", "limit": "≤ 1 %",
             "pass": merged <= 0.01},
        ]
    text = common.table(headers, table_rows) + "\n\n" + common.targets_table(targets)
    return text, targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, action="append", default=[],
                        help="a directory of more *_structured.csv files (repeatable)")
    parser.add_argument("--quick", action="store_true", help="accepted for make bench; changes nothing")
    parser.add_argument("--no-python", action="store_true", help="leave out the Python corpus")
    args = parser.parse_args(argv)
    for folder in args.data:
        if not folder.is_dir():
            parser.error(f"--data {folder}: not a directory (example: --data ~/loghub-2k/all)")
    rows = evaluate(systems(args.data, not args.no_python))
    text, targets = report(rows)
    print(f"grouping: {common.machine_line(common.machine())}\n\n{text}\n")
    path = common.write_json("grouping", {"benchmark": "grouping", "machine": common.machine(),
                                          "rows": rows, "targets": targets})
    print(f"(written to {path.relative_to(common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
