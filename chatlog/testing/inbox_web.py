"""The inbox's HTTP side: the page and its static files, the JSON API, and a server-sent event stream.

    GET /                         the page (inbox_static/index.html; it loads the two files below)
    GET /inbox/*.js, inbox.css    bundled with the package: the page works without any network
    GET /api/messages[?since=N]   chatlog.testing.inbox.snapshot as JSON
    GET /api/events[?since=N]     text/event-stream: one "inbox" event (a snapshot of what is new)
                                  whenever requests arrive; reconnects resume from Last-Event-ID

Everything user-controlled reaches the browser as JSON and is put into the page with ``textContent``;
the Content-Security-Policy allows only these files' scripts, so markup in a log line cannot run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import TYPE_CHECKING, Any

from chatlog.testing.inbox import snapshot

if TYPE_CHECKING:
    from chatlog.testing.server import FakePlatforms

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/inbox/markdown.js": ("markdown.js", "text/javascript; charset=utf-8"),
          "/inbox/platforms.js": ("platforms.js", "text/javascript; charset=utf-8"),
          "/inbox/inbox.js": ("inbox.js", "text/javascript; charset=utf-8"),
          "/inbox/inbox.css": ("inbox.css", "text/css; charset=utf-8")}
API_PATHS = frozenset({"/api/messages", "/api/events"})
SECURITY_HEADERS = (
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
)
EVENT_POLL_S = 0.1
HEARTBEAT_S = 2.0
STREAM_S = 60.0
"""A stream ends after a minute and the browser reconnects: no handler thread lives forever."""
RETRY_MS = 500


def is_inbox_route(method: str, path: str) -> bool:
    """True for the inbox's own routes (never a platform's path)."""
    return method == "GET" and (path in STATIC or path in API_PATHS)


def answer_inbox(
    handler: BaseHTTPRequestHandler, path: str, query: dict[str, str], fake: FakePlatforms
) -> None:
    """Write the answer for one inbox route (see the module docstring)."""
    if path in STATIC:
        name, content_type = STATIC[path]
        _write(handler, 200, static_file(name), content_type)
    elif path == "/api/messages":
        body = json.dumps(snapshot(fake, _since(query.get("since"))), ensure_ascii=False).encode()
        _write(handler, 200, body, "application/json; charset=utf-8")
    else:
        since = _since(handler.headers.get("Last-Event-ID") or query.get("since"))
        _stream(handler, fake, since)


@functools.cache
def static_file(name: str) -> bytes:
    """One file of ``inbox_static/``, read from the installed package."""
    return (resources.files("chatlog.testing") / "inbox_static" / name).read_bytes()


def _since(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _write(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    for name, value in SECURITY_HEADERS:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _stream(handler: BaseHTTPRequestHandler, fake: FakePlatforms, since: int) -> None:
    handler.close_connection = True  # the stream has no length: the connection ends with it
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
    for name, value in SECURITY_HEADERS:
        handler.send_header(name, value)
    handler.end_headers()
    with contextlib.suppress(OSError):  # the browser went away or the server stopped: both end the stream
        _events(handler, fake, since)


def _events(handler: BaseHTTPRequestHandler, fake: FakePlatforms, since: int) -> None:
    handler.wfile.write(f"retry: {RETRY_MS}\n\n".encode())
    started = last_write = time.monotonic()
    while time.monotonic() - started < STREAM_S:
        if len(fake.all_received()) > since:
            update = snapshot(fake, since)
            since = update["last"]
            handler.wfile.write(_event(since, update))
            last_write = time.monotonic()
        elif time.monotonic() - last_write >= HEARTBEAT_S:
            handler.wfile.write(b": still here\n\n")  # finds a closed connection, ends the thread
            last_write = time.monotonic()
        handler.wfile.flush()
        time.sleep(EVENT_POLL_S)


def _event(seq: int, data: dict[str, Any]) -> bytes:
    return f"id: {seq}\nevent: inbox\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
