"""Run the benchmarks (``make bench``), each in its own process so its RSS is its own.

Each prints its table and writes ``benchmarks/results/<name>.json``; this script then prints every
target with its verdict and writes ``benchmarks/results/summary.json``. Extra arguments (e.g.
``--quick``) are passed to every benchmark. The exit status is 0 even when a target is missed: the
benchmarks report, CI does not time anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import _common as common

BENCHMARKS = ("emit", "storm", "idle", "incident", "grouping", "reconfigure", "fleet")


def main(argv: list[str]) -> int:
    info = common.machine()
    print(f"chatlog benchmarks on {common.machine_line(info)}, {info['platform']}\n", flush=True)
    summary: dict[str, Any] = {"machine": info, "arguments": argv, "benchmarks": {}}
    failed = []
    for name in BENCHMARKS:
        began = time.monotonic()
        print(f"## {name}\n", flush=True)
        script = common.ROOT / "benchmarks" / f"{name}.py"
        done = subprocess.run([sys.executable, str(script), *argv], check=False)
        seconds = time.monotonic() - began
        print(f"({name}: {seconds:.0f} s)\n", flush=True)
        result_path = common.RESULTS / f"{name}.json"
        if done.returncode != 0 or not result_path.exists():
            failed.append(name)
            summary["benchmarks"][name] = {"error": f"exit status {done.returncode}", "seconds": seconds}
            continue
        result = json.loads(result_path.read_text())
        summary["benchmarks"][name] = {"seconds": seconds, "targets": result.get("targets", [])}
    rows = [[name, t["target"], t["measured"], t["limit"], common.verdict(t["pass"])]
            for name, bench in summary["benchmarks"].items() for t in bench.get("targets", [])]
    print("## targets\n")
    print(common.table(["benchmark", "target", "measured", "limit", "verdict"], rows))
    met = sum(1 for row in rows if row[-1] == "PASS")
    print(f"\n{met} of {len(rows)} targets met"
          + (f"; benchmarks that failed to run: {', '.join(failed)}" if failed else ""))
    path = common.write_json("summary", summary)
    print(f"(written to {path.relative_to(common.ROOT)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
