"""The three ways to host a `Receiver`: an ASGI app, a WSGI app, a standard-library HTTP server.

Each reads at most 1 MiB of body (a longer one is answered 413 without being read whole) and hands
the request to `Receiver.handle` as plain values.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from chatlog.chatops._http import MAX_BODY_BYTES, TOO_LARGE, Request, Response
from chatlog.chatops.receiver import Receiver

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ASGIApp:
    """An ASGI 3 application around a `Receiver` (mount it in FastAPI / Starlette, or run it alone)."""

    def __init__(self, receiver: Receiver) -> None:
        """Serve `receiver`; its reply thread runs beside the event loop."""
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request (lifespan events are accepted and ignored)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body, too_large = await _asgi_body(scope, receive)
        response = TOO_LARGE.response() if too_large else self.receiver.handle(_asgi_request(scope, body))
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(b"content-type", response.content_type.encode()),
                                (b"content-length", str(len(response.body)).encode())]})
        await send({"type": "http.response.body", "body": response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _asgi_body(scope: Scope, receive: Receive) -> tuple[bytes, bool]:
    declared = _header(scope, b"content-length")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return b"", True
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _asgi_request(scope: Scope, body: bytes) -> Request:
    path = str(scope.get("path", "/"))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    headers = {bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1") for k, v in scope["headers"]}
    query = dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1"), keep_blank_values=True))
    return Request(str(scope["method"]), path, query, headers, body)


class WSGIApp:
    """A WSGI application around a `Receiver` (mount it in Flask / Django, or run it under any server)."""

    def __init__(self, receiver: Receiver) -> None:
        """Serve `receiver`."""
        self.receiver = receiver

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer one HTTP request."""
        response = self._response(environ)
        start_response(f"{response.status} {_REASONS.get(response.status, 'Status')}",
                       [("Content-Type", response.content_type), ("Content-Length", str(len(response.body)))])
        return [response.body]

    def _response(self, environ: dict[str, Any]) -> Response:
        length = str(environ.get("CONTENT_LENGTH") or "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return TOO_LARGE.response()
        body = environ["wsgi.input"].read(int(length)) if int(length) else b""
        headers = {key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items()
                   if key.startswith("HTTP_")}
        headers["content-type"] = str(environ.get("CONTENT_TYPE", ""))
        path = str(environ.get("PATH_INFO", "/")).encode("latin-1").decode("utf-8", "replace")
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        return self.receiver.handle(Request(str(environ["REQUEST_METHOD"]), path, query, headers, body))


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: HTTPReceiver

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: refusals are reported by the receiver (without secrets); URLs may carry signatures."""

    def do_GET(self) -> None:
        """Answer a GET (WeCom's URL check)."""
        self._serve()

    def do_POST(self) -> None:
        """Answer a callback."""
        self._serve()

    def _serve(self) -> None:
        length = self.headers.get("Content-Length", "0")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or not length.isdigit() \
                or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._write(TOO_LARGE.response())
            return
        body = self.rfile.read(int(length))
        path, _, query = self.path.partition("?")
        headers = {key.lower(): value for key, value in self.headers.items()}
        request = Request(self.command, path, dict(parse_qsl(query, keep_blank_values=True)), headers, body)
        self._write(self.server.receiver.handle(request))

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)


class HTTPReceiver(ThreadingHTTPServer):
    """``chatlog listen``: the receiver on the standard library's threading HTTP server."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, receiver: Receiver, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host`:`port` (0: any free port) at once; `serve_in_thread` or `serve_forever`."""
        self.receiver = receiver
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind without the FQDN lookup, which can take seconds without DNS."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host.decode() if isinstance(host, bytes) else str(host)
        self.server_port = int(port)

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.server_name}:{self.server_port}"

    def serve_in_thread(self) -> threading.Thread:
        """Serve on a daemon thread; `stop()` ends it."""
        thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="chatlog-listen", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop serving, close the socket and the receiver."""
        self.shutdown()
        self.server_close()
        self.receiver.close()
