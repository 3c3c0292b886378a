"""A real ``redis-server`` for tests and benchmarks: on a unix socket in a temp directory, nothing on TCP.

    with RedisServer.started() as server:     # RedisUnavailable when redis-server is not installed
        handler = ChatHandler(url, state=server.url)
        server.stop(); server.start()         # "Redis down mid-incident"; a restart has lost every key

Nothing is saved (``--save '' --appendonly no``); the directory is removed when the block ends.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
INSTALL_HINT = "apt-get install -y redis-server (.ci/run installs it in CI)"


class RedisUnavailable(RuntimeError):
    """``redis-server`` is not installed, or did not start."""


class RedisServer:
    """One ``redis-server`` process on a unix socket under `directory`, stopped and started at will."""

    def __init__(self, binary: str, directory: Path) -> None:
        """Nothing runs until `start`."""
        self.binary = binary
        self.directory = directory
        self.socket_path = directory / "redis.sock"
        self.log_path = directory / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"RedisServer({self.url!r}, running={self.running})"

    @classmethod
    @contextlib.contextmanager
    def started(cls) -> Iterator[RedisServer]:
        """A running server in a fresh temp directory; stopped and its directory removed afterwards."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable(f"redis-server is not installed: {INSTALL_HINT}")
        # A short path: a unix socket's path must stay under ~100 bytes, pytest's tmp_path may not.
        server = cls(binary, Path(tempfile.mkdtemp(prefix="chatlog-redis-")))
        try:
            server.start()
            yield server
        finally:
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)

    @property
    def url(self) -> str:
        """``unix:///…/redis.sock``: what ``state=`` takes."""
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self.running and self._process is not None else None

    def start(self) -> None:
        """Start the server and wait (at most `START_TIMEOUT_S`) until it answers PING."""
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
        while time.monotonic() < deadline and self._process.poll() is None:
            with contextlib.suppress(OSError):
                if self.command("PING") == "+PONG":
                    return
            time.sleep(0.01)
        self.stop()
        log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise RedisUnavailable(f"redis-server did not answer PING within {START_TIMEOUT_S:g} s; "
                               f"its log:\n{log}")

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
        """Send one command in the inline protocol; the first line of the reply (``+PONG``, ``:3``)."""
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
