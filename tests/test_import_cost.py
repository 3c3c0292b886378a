"""`import chatlog` plus one handler stays cheap for the importing thread (a cron script pays it each run).

What it costs is what it imports: checked here deterministically, as the modules a fresh interpreter
holds afterwards that it did not hold after ``import logging``. Timing is measured, against the 20 ms
target and the stdlib's QueueHandler, in benchmarks/reconfigure.py (tests never assert timings).
"""

from __future__ import annotations

import json
import subprocess
import sys

from chatlog.destinations import platform_classes

STDLIB_ALLOWED = frozenset({
    "__future__",  # `from __future__ import annotations`
    "importlib", "importlib._bootstrap", "importlib._bootstrap_external",  # a platform's module by name
    "math",
    "urllib", "urllib.parse", "ipaddress",  # parsing the destination string (urllib.parse imports ipaddress)
})
"""Every module besides chatlog's own that ``import chatlog`` and a ``ChatHandler`` of a group bot
(``dingtalk://…``, or an https URL, which imports every platform module) may import after
``import logging``. Not here, each for a reason: ``httpx``, ``ssl``, ``json``, ``hashlib``
and ``datetime`` (a request, a payload, a signature: chatlog's own thread imports them when it first
needs them), ``sqlite3`` and ``pathlib`` (the ChatOps store, only with ``chatops=``), ``dataclasses``
(with ``inspect``, ``ast`` and ``dis``: chatlog's value classes are ``chatlog._record`` ones),
``typing`` (annotations only, under ``TYPE_CHECKING``), ``pkgutil`` (only for a zipped package),
``random`` (the retry jitter, on chatlog's thread)."""
SCRIPT = """
import sys
import logging
after_logging = set(sys.modules)
import chatlog
handler = chatlog.ChatHandler(sys.argv[1], group_wait=60)
imported = sorted(set(sys.modules) - after_logging)
import json  # only now: it is not one of the modules chatlog may import
print(json.dumps(imported))
handler.close()
"""


def _imported(url: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, url], capture_output=True, text=True, timeout=60,
                          check=True)
    result: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _check_stdlib(imported: list[str]) -> None:
    outside = sorted(name for name in imported if name.partition(".")[0] != "chatlog")
    assert "httpx" not in imported, "import chatlog + ChatHandler() imported httpx"
    assert set(outside) <= STDLIB_ALLOWED, (
        f"import chatlog + ChatHandler() imported {sorted(set(outside) - STDLIB_ALLOWED)}: import it where "
        "it is used (on chatlog's thread), or add it to STDLIB_ALLOWED saying why"
    )


def test_import_and_a_short_form_handler_import_only_the_allowed_stdlib_modules_and_one_platform() -> None:
    imported = _imported("dingtalk://TOKEN?secret=SEC123")
    _check_stdlib(imported)
    platforms = [name for name in imported if name.startswith("chatlog.platforms.") and "._" not in name]
    assert platforms == ["chatlog.platforms.dingtalk"]


def test_an_https_url_imports_every_platform_and_still_only_the_allowed_stdlib_modules() -> None:
    imported = _imported("https://oapi.dingtalk.com/robot/send?access_token=TOKEN&secret=SEC123")
    _check_stdlib(imported)
    platforms = {name for name in imported if name.startswith("chatlog.platforms.") and "._" not in name}
    assert platforms == {cls.__module__ for cls in platform_classes()}


def test_every_scheme_is_claimed_by_one_platform_module() -> None:
    # A dingtalk:// handler imports only chatlog/platforms/dingtalk.py: that finds the same class as
    # importing them all only while no two platforms claim one name.
    names = [name for cls in platform_classes() for name in cls.names]
    assert len(names) == len(set(names)), names
