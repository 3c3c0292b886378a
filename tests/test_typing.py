"""Users' type checkers see chatlog's types: the built wheel ships ``py.typed`` (PEP 561) and LICENSE.

The wheel is built and installed offline (no index, no build isolation: the dev extra installs the
build backend), into a bare venv of its own, and ``mypy --strict`` checks user files against that venv.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USER_CODE = """\
    import logging

    import chatlog
    import chatlog.loguru

    handler = chatlog.ChatHandler("feishu://TOKEN", service="checkout")
    logging.getLogger().addHandler(handler)
    stats: chatlog.ChatStats = handler.stats()
    delivered: int = stats.delivered_records
    sink: chatlog.loguru.Sink = chatlog.loguru.sink("dingtalk://TOKEN", service="checkout")
    sink.stop()
"""

USER_MISTAKES = """\
    import chatlog
    import chatlog.loguru

    handler = chatlog.ChatHandler("feishu://TOKEN", group_wait="5s")
    reveal_type(handler.stats())
    reveal_type(chatlog.loguru.sink("dingtalk://TOKEN"))
"""


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built wheel, the python of a venv holding only that wheel)."""
    work = tmp_path_factory.mktemp("typing")
    built = _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                 "--no-build-isolation", "-w", work / "dist", ROOT, cwd=work)
    assert built.returncode == 0, built.stderr
    (wheel,) = (work / "dist").glob("chatlog_alerts-*.whl")
    venv = work / "venv"
    assert _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work).returncode == 0
    python = venv / "bin" / "python"
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    installed = _run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                     "--target", site, wheel, cwd=work)
    assert installed.returncode == 0, installed.stderr
    return wheel, python


def _mypy(python: Path, source: str, directory: Path) -> subprocess.CompletedProcess[str]:
    # Run outside the repository so that only the installed wheel can provide ``chatlog``; the cache
    # beside that venv lets the second check reuse the analysis of the installed package.
    user_file = directory / "user_code.py"
    user_file.write_text(textwrap.dedent(source), encoding="utf-8")
    cache = python.parent.parent.parent / "mypy-cache"
    return _run(sys.executable, "-m", "mypy", "--strict", "--cache-dir", cache, "--python-executable", python,
                user_file.name, cwd=directory)


def test_wheel_ships_the_typed_marker_and_the_license(installed: tuple[Path, Path]) -> None:
    names = zipfile.ZipFile(installed[0]).namelist()
    assert "chatlog/py.typed" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_user_code_type_checks_strictly_against_the_installed_package(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    result = _mypy(installed[1], USER_CODE, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_mypy_reports_user_mistakes_in_chatlogs_own_types(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    result = _mypy(installed[1], USER_MISTAKES, tmp_path)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert 'Argument "group_wait" to "ChatHandler" has incompatible type "str"; expected "float"' in out
    assert "ChatStats" in out and "chatlog.loguru.Sink" in out
    assert "py.typed" not in out and "import-untyped" not in out
