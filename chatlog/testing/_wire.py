"""The fake platforms' HTTP wire: reading a request, writing a reply (or bytes or a reset that are
not one), and the threading server on 127.0.0.1 that hands each request to `FakePlatforms`."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import struct
import sys
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from chatlog.testing.faults import Fault
from chatlog.testing.inbox_web import answer_inbox, is_inbox_route
from chatlog.testing.rules import Answer, Request

if TYPE_CHECKING:
    from chatlog.testing.server import FakePlatforms

GARBAGE = b"\x00\xffTHIS IS NOT HTTP\xfe\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """What the handler writes: an HTTP answer, or bytes/a close that is not one."""

    kind: Literal["answer", "garbage", "reset"]
    status: int = 0
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(status: int, obj: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """A JSON answer."""
    content_type = ("Content-Type", "application/json; charset=utf-8")
    return Reply("answer", status, json.dumps(obj, ensure_ascii=False).encode(), (content_type, *headers))


def answer_reply(answer: Answer) -> Reply:
    """What a platform's `Answer` looks like on the wire (JSON, or its text as the platform sends it)."""
    if answer.text is None:
        return json_reply(answer.status, answer.body, answer.headers)
    typed = any(name.lower() == "content-type" for name, _ in answer.headers)
    content_type = (("Content-Type", "text/plain; charset=utf-8"),) if answer.text and not typed else ()
    return Reply("answer", answer.status, answer.text.encode(), (*content_type, *answer.headers))


def json_object(body: bytes) -> dict[str, Any] | None:
    """`body` as a JSON object; None when it is not one."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


NO_ANSWER = Reply("reset")
NOT_FOUND = json_reply(404, {"error": "not found"})
def fault_reply(fault: Fault) -> Reply:
    """What an injected `fault` writes (a hang is the server's to play out)."""
    if fault.kind in ("garbage", "reset"):
        return Reply(fault.kind)
    if fault.kind == "empty":
        return Reply("answer", 200)
    return Reply("answer", fault.status_code, fault.body, fault.headers)


def shutdown_quietly(connection: socket.socket) -> None:
    """Shut `connection` down both ways (an idle keep-alive connection would keep serving)."""
    # The client or the handler may have closed it already.
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class Server(ThreadingHTTPServer):
    """A threading HTTP server that knows its FakePlatforms and stays quiet about vanished clients."""

    daemon_threads = True

    allow_reuse_address = True

    def __init__(self, fake: FakePlatforms, port: int) -> None:
        """Listen on 127.0.0.1:`port` (0: a free one) for `fake`."""
        self.fake = fake
        super().__init__(("127.0.0.1", port), Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can take seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and sockets closed by stop() are expected here; anything else is a bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """Reads one request, asks FakePlatforms what to do, writes it."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log line; tests read ``received`` instead."""

    def do_GET(self) -> None:
        """Serve the inbox, or answer a platform path like the platform would."""
        self._serve()

    def do_POST(self) -> None:
        """Answer a platform request."""
        self._serve()

    do_PUT = do_POST
    do_DELETE = do_POST

    def _serve(self) -> None:
        request = self._read_request()
        if is_inbox_route(request.method, request.path):
            answer_inbox(self, request.path, request.query, self.server.fake)
        else:
            self._write(self.server.fake._respond(request))

    def _read_request(self) -> Request:
        url = urlsplit(self.path)
        body = self._read_body()
        return Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            payload=json_object(body),
        )

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunks()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunks(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _write(self, reply: Reply) -> None:
        if reply.kind == "garbage":
            self.wfile.write(GARBAGE)
            self.close_connection = True
        elif reply.kind == "reset":
            # Linger 0 makes the close a TCP reset instead of an orderly goodbye.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        else:
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
