"""``chatlog serve``: the same URLs after a restart, and a busy port explained in one line."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from chatlog.testing import PLATFORMS, FakePlatforms
from chatlog.testing.serve import STATE_FILE, add_receivers

SERVE = [sys.executable, "-m", "chatlog", "serve", "--port", "0"]


def banner(*options: str) -> list[str]:
    """Start ``chatlog serve``, read its banner up to the example export line, stop it with Ctrl-C."""
    server = subprocess.Popen([*SERVE, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline()]
        while "export CHATLOG_URL" not in lines[-1] and len(lines) < 40 and lines[-1]:
            lines.append(server.stdout.readline())
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
    return lines


def urls(lines: list[str]) -> dict[str, str]:
    """platform → destination URL, with the port (new on each start with --port 0) taken out."""
    port = lines[0].split("127.0.0.1:")[1].split("/")[0]
    found = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and line.startswith("  "):
            found[parts[0]] = parts[1].replace(port, "PORT")
    return found


def test_state_dir_keeps_every_url_across_a_restart(tmp_path: Path) -> None:
    first = urls(banner("--state", str(tmp_path)))
    second = urls(banner("--state", str(tmp_path)))

    assert first == second
    assert set(first) == {*PLATFORMS, "feishu-app"}
    assert (tmp_path / STATE_FILE).stat().st_mode & 0o077 == 0  # it holds an app secret


def test_a_seed_gives_the_same_tokens_on_every_start_and_another_seed_others() -> None:
    def tokens(seed: str) -> dict[str, object]:
        with FakePlatforms() as fake:
            used, notes = add_receivers(fake, {}, seed)
        assert notes == []
        return used

    assert tokens("team-a") == tokens("team-a")
    assert tokens("team-a")["dingtalk"] != tokens("team-b")["dingtalk"]


def test_default_start_prints_urls_that_a_restart_keeps() -> None:
    assert urls(banner()) == urls(banner())


def test_a_busy_port_is_one_line_naming_the_port_and_the_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "chatlog", "serve", "--port", str(port)],
                                capture_output=True, text=True, timeout=30)

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"port {port}" in result.stderr and "--port" in result.stderr


def test_a_broken_state_file_is_named_with_the_way_out(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json", encoding="utf-8")

    result = subprocess.run([*SERVE, "--state", str(tmp_path)], capture_output=True, text=True, timeout=30)

    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert STATE_FILE in result.stderr and "delete it" in result.stderr
