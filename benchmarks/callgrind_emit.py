"""Instructions per log call on the application thread, counted by ``valgrind --tool=callgrind``.

Wall time on a shared 2-core machine is noisy; instruction counts are repeatable. Each candidate runs
``emit.py --one KEY:MODE:N`` under callgrind with ``--separate-threads=yes`` twice, with two record
counts; the main thread's instructions per record are ``(I(N2) - I(N1)) / (N2 - N1)``, which cancels
interpreter start-up, imports and warm-up. Background threads (QueueListener, chatlog's dispatcher)
are counted separately and left out: the target is the application thread's cost.

Not part of ``make bench`` (about 3 minutes): run ``python benchmarks/callgrind_emit.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common as common

RUNS = {
    "error": (("null", "floor", "queue", "chat"), 2_000, 12_000),
    "exception": (("null", "floor", "queue", "chat"), 200, 1_200),
}


def main_thread_instructions(key: str, mode: str, records: int, workdir: Path) -> int:
    emit = common.ROOT / "benchmarks" / "emit.py"
    return common.callgrind_instructions([str(emit), "--one", f"{key}:{mode}:{records}"],
                                         workdir / f"{key}-{mode}-{records}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)")
        return 1
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="chatlog-callgrind-") as tmp:
        for mode, (keys, small, large) in RUNS.items():
            for key in keys:
                low = main_thread_instructions(key, mode, small, Path(tmp))
                high = main_thread_instructions(key, mode, large, Path(tmp))
                rows.append({"mode": mode, "key": key, "per_record": (high - low) / (large - small)})
                print(f"{mode:9} {key:6} {rows[-1]['per_record']:12,.0f} instructions/record", flush=True)
    for row in rows:
        reference = next(r for r in rows if r["mode"] == row["mode"] and r["key"] == "queue")
        row["ratio"] = row["per_record"] / reference["per_record"]
    chat = {r["mode"]: r for r in rows if r["key"] == "chat"}
    targets = [
        {"target": "logger.error() instructions: ChatHandler / QueueHandler",
         "measured": chat["error"]["ratio"], "limit": "≤ 0.70", "pass": chat["error"]["ratio"] <= 0.70},
        {"target": "logger.exception() instructions: ChatHandler / QueueHandler",
         "measured": chat["exception"]["ratio"], "limit": "≤ 0.35 (wall-time target)",
         "pass": chat["exception"]["ratio"] <= 0.35},
    ]
    result = {"benchmark": "callgrind_emit", "machine": common.machine(), "rows": rows, "targets": targets}
    print()
    print(common.table(["mode", "candidate", "instructions/record (app thread)", "×Queue"],
                       [[r["mode"], r["key"], r["per_record"], r["ratio"]] for r in rows]))
    print()
    print(common.targets_table(targets))
    path = common.write_json("callgrind_emit", result)
    print(f"(written to {path.relative_to(common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
