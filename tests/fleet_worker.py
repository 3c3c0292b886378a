"""One process of a test fleet: a ChatHandler driven by commands on stdin, one per line.

    python tests/fleet_worker.py '{"url": ..., "state": ..., "options": {...}}'

It prints ``ready`` once the handler is built, then answers each command with one line:
``log N [LEVEL]`` logs N records of one template (``logged``), ``stats`` prints the handler's
accounting as JSON, ``close`` closes the handler, prints the accounting and exits.
"""

from __future__ import annotations

import json
import logging
import os
import sys


def stats_line(handler: logging.Handler) -> str:
    """The handler's accounting (and this pid) as one JSON line."""
    stats = handler.stats()  # type: ignore[attr-defined]
    return json.dumps({"pid": os.getpid(), "accepted": stats.accepted, "delivered": stats.delivered_records,
                       "dropped": stats.dropped, "pending": stats.pending, "sent": stats.messages_sent})


def main(spec: dict[str, object]) -> int:
    """Serve commands until ``close`` or the end of stdin."""
    from chatlog import ChatHandler

    options = dict(spec.get("options") or {})  # type: ignore[call-overload]
    handler = ChatHandler(str(spec["url"]), state=spec["state"], **options)
    logger = logging.getLogger("fleet.worker")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    print("ready", flush=True)
    logged = 0
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "log":
            level = getattr(logging, words[2]) if len(words) > 2 else logging.ERROR
            for _ in range(int(words[1])):
                logged += 1
                logger.log(level, "payment %s failed: database unreachable", logged)
            print("logged", flush=True)
        elif words[0] == "stats":
            print(stats_line(handler), flush=True)
        elif words[0] == "close":
            handler.close()
            print(stats_line(handler), flush=True)
            return 0
    handler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
