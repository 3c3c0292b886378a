"""A real ``redis-server`` for the fleet-store tests: on a unix socket in a temp directory, nothing on TCP.

The ``redis_server`` fixture starts one per test (it takes a few milliseconds) and yields a
`RedisServer`: its ``url`` (``unix:///…/redis.sock``), ``stop()`` and ``start()`` for "Redis down
mid-incident" (a restarted server has lost its data: nothing is saved), ``command()`` for a raw command.
With ``CI=true`` a missing ``redis-server`` fails the test (``.ci/run`` installs it); elsewhere it skips
with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def in_ci() -> bool:
    """True when the suite runs in CI, where a missing service is a failure, never a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def redis_server_binary() -> str:
    """The ``redis-server`` on PATH; fails (CI) or skips (elsewhere) the test when there is none."""
    found = shutil.which("redis-server")
    if found:
        return found
    reason = "redis-server is not installed (apt-get install -y redis-server; .ci/run does it in CI)"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class RedisServer:
    """One ``redis-server`` process on a unix socket under `directory`, stopped and started at will."""

    def __init__(self, binary: str, directory: Path) -> None:
        """Nothing runs until `start`."""
        self.binary = binary
        self.directory = directory
        self.socket_path = directory / "redis.sock"
        self.log_path = directory / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``unix:///…/redis.sock``: what ``state=`` takes."""
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (no persistence: a restart loses every key) and wait until it answers PING."""
        if self.running:
            return
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        command = [self.binary, "--port", "0", "--unixsocket", str(self.socket_path),
                   "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                   "--dir", str(self.directory), "--logfile", str(self.log_path), "--daemonize", "no"]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            with contextlib.suppress(OSError):
                if self.command("PING") == "+PONG":
                    return
            time.sleep(0.01)
        self.stop()
        log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        pytest.fail(f"redis-server did not answer PING within {START_TIMEOUT_S:g} s; its log:\n{log}",
                    pytrace=False)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a bounded wait): clients see connection errors."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)

    def command(self, *words: str) -> str:
        """Send one command in the inline protocol and return the first reply line (``+PONG``, ``:3``)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.socket_path))
            sock.sendall((" ".join(words) + "\r\n").encode())
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.decode(errors="replace").split("\r\n", 1)[0]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A running `RedisServer` of this test's own; stopped (and its directory removed) afterwards."""
    binary = redis_server_binary()
    # A short path: a unix socket's path must stay under ~100 bytes, pytest's tmp_path may not.
    directory = Path(tempfile.mkdtemp(prefix="chatlog-redis-"))
    server = RedisServer(binary, directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
