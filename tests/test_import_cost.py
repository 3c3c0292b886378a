"""`import chatlog` plus one handler stays cheap for the importing thread (a cron script pays it each run).

Checked by what it imports, in a fresh interpreter: which standard-library modules beyond `logging`'s
own, and none of those only chatlog's threads need. The time it takes is measured, not asserted here:
benchmarks/reconfigure.py prints it next to the stdlib's QueueHandler against its 20 ms target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from chatlog.destinations import platform_classes

STDLIB_ALLOWED = frozenset({
    "__future__", "_ast", "_bisect", "_opcode", "_random", "_sha512", "_typing", "ast", "bisect", "copy",
    "dataclasses", "dis", "importlib", "importlib._abc", "importlib._bootstrap",
    "importlib._bootstrap_external", "importlib.machinery", "importlib.util", "inspect", "ipaddress",
    "math", "opcode", "pkgutil", "random", "typing", "typing.io", "typing.re", "urllib", "urllib.parse",
})
"""The standard-library modules that `import chatlog` + ChatHandler() may add to `import logging`'s."""
CHATLOG = """
import sys
sys.path[:] = PATH
import logging
before = set(sys.modules)
import chatlog
handler = chatlog.ChatHandler("dingtalk://TOKEN?secret=SEC123", group_wait=60)
added = sorted(name for name in set(sys.modules) - before if name.split(".")[0] != "chatlog")
deferred = sorted(name for name in ("httpx", "json", "hashlib", "sqlite3", "pathlib", "datetime")
                  if name in sys.modules)
platforms = sorted(name for name in sys.modules if name.startswith("chatlog.platforms.") and "._" not in name)
import json  # only now: it is one of the modules checked above
print(json.dumps({"added": added, "httpx": "httpx" in sys.modules, "platforms": platforms,
                  "deferred": deferred}))
handler.close()
"""


def _run(script: str, pycache: Path) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    # -S: no site module, so what the interpreter loads before `import logging` is the same everywhere.
    script = script.replace("PATH", repr(sys.path), 1)
    done = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_import_and_one_handler_import_little_and_no_httpx(tmp_path: Path) -> None:
    result = _run(CHATLOG, tmp_path)
    assert not result["httpx"], "import chatlog + ChatHandler() imported httpx"
    assert result["platforms"] == ["chatlog.platforms.dingtalk"]
    # What only chatlog's threads use (a request, a payload, a hash, the ChatOps store) waits for them.
    assert result["deferred"] == []
    added = result["added"]
    assert isinstance(added, list)
    unexpected = sorted(set(added) - STDLIB_ALLOWED)
    assert not unexpected, f"import chatlog + ChatHandler() now also imports {unexpected}"


def test_every_scheme_is_claimed_by_one_platform_module() -> None:
    # A dingtalk:// handler imports only chatlog/platforms/dingtalk.py: that finds the same class as
    # importing them all only while no two platforms claim one name.
    names = [name for cls in platform_classes() for name in cls.names]
    assert len(names) == len(set(names)), names
