"""Instructions the dispatcher spends filing one record of a known template, counted by callgrind.

The storm in ``benchmarks/grouping.py`` measures background CPU, which a shared 2-core machine makes
noisy; instruction counts are repeatable. A child process captures 16,000 error records over 1,000
templates (as the handler's ``emit`` would), files 2,000 of them (every template is then known; 800
of them past ``max_groups``, counted in "other", as in the storm), then files K more through
``Filing.file`` in batches of 256, as the dispatcher does. Run under ``valgrind --tool=callgrind`` with
K = 2,000 and K = 12,000, the main thread's instructions per record are ``(I(12k) - I(2k)) / 10,000``.

Not part of ``make bench`` (about 3 minutes): ``python benchmarks/callgrind_filing.py [--baseline DIR]``.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import _common as common

RECORDS, TEMPLATES, WARM, BATCH = 16_000, 1_000, 2_000, 256
COUNTS = (2_000, 12_000)


def child(kind: str, extra: int) -> None:
    """Capture the records, file WARM + `extra` of them, and leave without tearing anything down."""
    from grouping import _word

    from chatlog import ChatHandler
    from chatlog.capture import capture
    from chatlog.entry import format_message

    names = [_word(k) for k in range(TEMPLATES)]
    items = []
    for i in range(RECORDS):
        name = names[i % TEMPLATES]
        msg, args = ((f"job {name} failed for order %s", (i,)) if kind == "%-args"
                     else (f"job {name} failed for order {100_000 + i}", None))
        record = logging.LogRecord("bench.filing", logging.ERROR, "/app/x.py", 1, msg, args, None)
        items.append(capture(record, format_message(record), key=(record.msg, record.levelno, record.name,
                                                                  not record.args)))
    handler = ChatHandler("http://127.0.0.1:9/robot/send?access_token=filing", level=logging.INFO)
    dispatcher = handler._dispatcher  # private: the benchmark drives the dispatcher's filing itself
    filing = dispatcher._filing
    time.sleep(0.3)  # the dispatcher thread settles; it has nothing to file
    buffer, left = deque(items), WARM + extra
    del items
    with dispatcher._lock:
        if "buffer" in inspect.signature(filing.file).parameters:  # file(buffer, n, now): in batches
            while left:
                left -= filing.file(buffer, min(left, BATCH), time.monotonic())
        else:  # before the batches: file(item, now)
            for _ in range(left):
                filing.file(buffer.popleft(), time.monotonic())
    os._exit(0)


def instructions(tree: Path, kind: str, extra: int, workdir: Path) -> int:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{common.ROOT / 'benchmarks'}"}
    out = workdir / f"{kind.strip('%-')}-{extra}-{abs(hash(tree))}"  # no % in a callgrind file name
    return common.callgrind_instructions([__file__, "--child", kind, str(extra)], out, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="also count the chatlog package under this directory "
                        "(e.g. an export of main: git archive main chatlog | tar -x -C DIR)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)")
        return 1
    trees = {"this tree": common.ROOT, **({"baseline": args.baseline} if args.baseline else {})}
    rows = []
    with tempfile.TemporaryDirectory(prefix="chatlog-callgrind-") as tmp:
        for kind in ("pre-formatted", "%-args"):
            for name, tree in trees.items():
                low, high = (instructions(tree, kind, extra, Path(tmp)) for extra in COUNTS)
                rows.append([kind, name, (high - low) / (COUNTS[1] - COUNTS[0])])
                print(f"{kind:13} {name:9} {rows[-1][2]:10,.0f} instructions per record filed", flush=True)
    print("\n" + common.table(["records", "code", "instructions per record filed"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
