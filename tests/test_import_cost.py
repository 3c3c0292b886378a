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
    "__future__",  # `from __future__ import annotations`
    "importlib", "importlib._bootstrap", "importlib._bootstrap_external",  # a platform's module by name
    "math",
    "urllib", "urllib.parse", "ipaddress",  # parsing the destination string (urllib.parse imports ipaddress)
})
"""The standard-library modules that `import chatlog` and a ``ChatHandler`` of a group bot
(``dingtalk://…``, or an https URL, which imports every platform module) may add to
`import logging`'s. Not here, each for a reason: ``httpx``, ``ssl``, ``json``, ``hashlib``,
``secrets`` and ``datetime`` (a request, a payload, a signature: chatlog's own thread imports them
when it first needs them), ``sqlite3`` and ``pathlib`` (the ChatOps store, only with ``chatops=``),
``dataclasses`` (with ``inspect``, ``ast`` and ``dis``: chatlog's value classes are
``chatlog._record`` ones), ``typing`` (annotations only, under ``TYPE_CHECKING``), ``pkgutil`` (only
for a zipped package), ``random`` (the retry jitter comes from ``os.urandom``)."""
CHATLOG = """
import sys
sys.path[:] = PATH
import logging
before = set(sys.modules)
import chatlog
handler = chatlog.ChatHandler(URL, group_wait=60)
added = sorted(name for name in set(sys.modules) - before if name.split(".")[0] != "chatlog")
platforms = sorted(name for name in sys.modules if name.startswith("chatlog.platforms.") and "._" not in name)
import json  # only now: it is not one of the modules chatlog may import
print(json.dumps({"added": added, "httpx": "httpx" in sys.modules, "platforms": platforms}))
handler.close()
"""


def _run(url: str, pycache: Path) -> dict[str, list[str]]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    # -S: no site module, so what the interpreter loads before `import logging` is the same everywhere.
    script = CHATLOG.replace("PATH", repr(sys.path), 1).replace("URL", repr(url), 1)
    done = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _check_stdlib(result: dict[str, list[str]]) -> None:
    assert not result["httpx"], "import chatlog + ChatHandler() imported httpx"
    unexpected = sorted(set(result["added"]) - STDLIB_ALLOWED)
    assert not unexpected, (
        f"import chatlog + ChatHandler() now also imports {unexpected}: import it where it is used "
        "(on chatlog's thread), or add it to STDLIB_ALLOWED saying why"
    )


def test_import_and_a_short_form_handler_import_little_one_platform_and_no_httpx(tmp_path: Path) -> None:
    result = _run("dingtalk://TOKEN?secret=SEC123", tmp_path)
    _check_stdlib(result)
    assert result["platforms"] == ["chatlog.platforms.dingtalk"]


def test_an_https_url_imports_every_platform_and_only_the_allowed_stdlib_modules(tmp_path: Path) -> None:
    result = _run("https://oapi.dingtalk.com/robot/send?access_token=TOKEN&secret=SEC123", tmp_path)
    _check_stdlib(result)
    assert set(result["platforms"]) == {cls.__module__ for cls in platform_classes()}


def test_every_scheme_is_claimed_by_one_platform_module() -> None:
    # A dingtalk:// handler imports only chatlog/platforms/dingtalk.py: that finds the same class as
    # importing them all only while no two platforms claim one name.
    names = [name for cls in platform_classes() for name in cls.names]
    assert len(names) == len(set(names)), names
