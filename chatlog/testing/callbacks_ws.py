"""The fake Feishu/Lark long connection: ``POST /callback/ws/endpoint`` and a WebSocket server that pushes
events as protobuf frames and waits for the client's ``{"code": 200}`` (as ``lark_oapi/ws`` expects).

Started on the first ``add_chat(..., transport="ws")``; needs the ``websockets`` package (the
``feishu-ws`` extra). The endpoint takes the app id and secret of a fake app that has a ws chat; the
socket answers ``ping`` control frames with ``pong`` and counts them (`pings`).
"""

from __future__ import annotations

import secrets
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

from chatlog.chatops import frames
from chatlog.testing.rules import Answer, Request, dig_str

ENDPOINT_PATH = "/callback/ws/endpoint"
SERVICE_ID = 7
ACK_TIMEOUT_S = 3.0
"""Feishu drops an event the client has not acknowledged within 3 s."""


class FakeLongConnections:
    """The WebSocket side of the fake server: one connection per app, events pushed on demand."""

    def __init__(self, changed: threading.Condition, known: Callable[[str, str], bool]) -> None:
        """`known(app_id, app_secret)` says whether an app may connect."""
        self._changed = changed
        self._known = known
        self._devices: dict[str, str] = {}
        self._sockets: dict[str, Any] = {}
        self._acks: dict[str, frames.Frame] = {}
        self.pings = 0
        self._server: Any = None
        self._port = 0

    def start(self) -> None:
        """Listen on a free port of 127.0.0.1 (idempotent)."""
        from websockets.sync.server import serve  # the feishu-ws extra

        with self._changed:
            if self._server is not None:
                return
            self._server = serve(self._serve, "127.0.0.1", 0, max_size=frames.MAX_FRAME_BYTES)
            self._port = self._server.socket.getsockname()[1]
        threading.Thread(target=self._server.serve_forever, name="chatlog-fake-ws", daemon=True).start()

    def stop(self) -> None:
        """Close every connection and the listening socket."""
        with self._changed:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()

    def endpoint(self, request: Request) -> Answer:
        """``POST /callback/ws/endpoint``: a connection URL for a known app, else Feishu's refusal."""
        app_id, app_secret = dig_str(request.payload, "AppID"), dig_str(request.payload, "AppSecret")
        if not self._known(app_id, app_secret):
            return Answer({"code": 1000040344, "msg": "app_id or app_secret is invalid"})
        device = secrets.token_hex(8)
        with self._changed:
            self._devices[device] = app_id
        url = f"ws://127.0.0.1:{self._port}/ws?device_id={device}&service_id={SERVICE_ID}"
        config = {"ReconnectCount": -1, "ReconnectInterval": 1, "ReconnectNonce": 0, "PingInterval": 120}
        return Answer({"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": config}}, accepted=True)

    def push(self, app_id: str, event: bytes, timeout_s: float = 5.0) -> tuple[int, bytes]:
        """Send `event` to the app's connection as a data frame; (code, payload) of the client's answer,
        (0, b"") when no client is connected or none answered within 3 s."""
        message_id = secrets.token_hex(8)
        frame = frames.Frame(seq_id=1, log_id=1, service=SERVICE_ID, method=frames.DATA, payload=event,
                             headers=[("type", "event"), ("message_id", message_id), ("sum", "1"),
                                      ("seq", "0"), ("trace_id", secrets.token_hex(8))])
        with self._changed:
            self._changed.wait_for(lambda: app_id in self._sockets, timeout_s)
            socket = self._sockets.get(app_id)
        if socket is None:
            return 0, b""
        socket.send(frames.encode(frame))
        with self._changed:
            self._changed.wait_for(lambda: message_id in self._acks, ACK_TIMEOUT_S)
            answered = self._acks.pop(message_id, None)
        if answered is None:
            return 0, b""
        return 200 if b'"code": 200' in answered.payload or b'"code":200' in answered.payload else 500, \
            answered.payload

    def _serve(self, socket: Any) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(socket.request.path).query)
        with self._changed:
            app_id = self._devices.pop(query.get("device_id", [""])[0], None)
            if app_id is None:
                return
            self._sockets[app_id] = socket
            self._changed.notify_all()
        try:
            for message in socket:
                if isinstance(message, bytes):
                    self._received(socket, frames.decode(message))
        finally:
            with self._changed:
                if self._sockets.get(app_id) is socket:
                    del self._sockets[app_id]

    def _received(self, socket: Any, frame: frames.Frame) -> None:
        if frame.method == frames.CONTROL and frame.header("type") == "ping":
            with self._changed:
                self.pings += 1
            socket.send(frames.encode(frames.Frame(service=SERVICE_ID, method=frames.CONTROL,
                                                   headers=[("type", "pong")])))
            return
        with self._changed:
            self._acks[frame.header("message_id")] = frame
            self._changed.notify_all()
