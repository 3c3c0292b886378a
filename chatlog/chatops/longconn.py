"""Feishu/Lark events over the long connection: no public URL, no open port (``chatlog listen --feishu-ws``).

The protocol, as the official SDK (``lark_oapi/ws/client.py``) speaks it: ``POST /callback/ws/endpoint``
with ``{"AppID", "AppSecret"}`` gives a ``wss://`` URL (with ``device_id`` and ``service_id``) and the
client settings; over the WebSocket, frames are protobuf (`chatlog.chatops.frames`); the client pings
every ``PingInterval`` seconds, answers every data frame with ``{"code": 200}`` within 3 s, and
reconnects after ``ReconnectInterval`` seconds (first with a random delay up to ``ReconnectNonce``).

Why a small client on the ``websockets`` library and not the SDK: the SDK runs its own event loop at
import time (``asyncio.get_event_loop()`` at module level, ``loop.run_until_complete`` in ``start()``),
which cannot share a process with an ASGI server's loop, and it brings ``requests`` and a vendored
protobuf runtime. The frame is ten fields; the events are the same schema 2.0 JSON the request URL
gets, handled by the same code (`chatlog.chatops.feishu.inbound_of`).
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx

from chatlog._report import Reporter
from chatlog.chatops import frames
from chatlog.chatops.feishu import App
from chatlog.platforms._answers import json_body
from chatlog.platforms._http import post_json

ENDPOINT_PATH = "/callback/ws/endpoint"
_OK = json.dumps({"code": 200}).encode()


class LongConnection:
    """One app's long connection on a daemon thread; `on_event(platform, event)` gets each event."""

    def __init__(self, platform: str, app: App, on_event: Callable[[str, dict[str, Any]], None],
                 reporter: Reporter) -> None:
        """`platform` is ``feishu`` or ``lark``; nothing connects until `start`."""
        self.platform = platform
        self._app = app
        self._on_event = on_event
        self._reporter = reporter
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ping_s = 120.0
        self._reconnect_s = 120.0
        self._nonce_s = 30.0
        self._parts: dict[str, list[bytes]] = {}
        self.connected = threading.Event()
        """Set while a connection is open (tests and ``chatlog listen`` wait for it)."""

    def start(self) -> None:
        """Connect (and keep reconnecting) on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="chatlog-feishu-ws", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the connection and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self._session()
            except Exception as exc:  # the loop boundary: say why, wait, reconnect
                self._reporter.report("ws", f"{self.platform} long connection: {type(exc).__name__}: "
                                      f"{str(exc)[:200]}; reconnecting in {self._reconnect_s:g} s")
            self.connected.clear()
            delay = random.uniform(0, self._nonce_s) if first else self._reconnect_s
            first = False
            self._stop.wait(delay)

    def _endpoint(self) -> str:
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            answer = post_json(client, self._app.url(ENDPOINT_PATH),
                               {"AppID": self._app.app_id, "AppSecret": self._app.app_secret},
                               headers={"locale": "zh"})
        body = json_body(answer) if isinstance(answer, httpx.Response) else None
        data = (body or {}).get("data")
        if not body or body.get("code") != 0 or not isinstance(data, dict) or not isinstance(
                data.get("URL"), str):
            code = (body or {}).get("code", "no answer")
            raise ConnectionError(f"the endpoint refused the app credentials or is busy (code {code})")
        self._configure(data.get("ClientConfig"))
        return str(data["URL"])

    def _configure(self, config: object) -> None:
        if not isinstance(config, dict):
            return
        for name, attribute in (("PingInterval", "_ping_s"), ("ReconnectInterval", "_reconnect_s"),
                                ("ReconnectNonce", "_nonce_s")):
            value = config.get(name)
            if isinstance(value, (int, float)) and 0 < value <= 3600:
                setattr(self, attribute, float(value))

    def _session(self) -> None:
        from websockets.sync.client import connect  # the optional extra: chatlog[feishu-ws]

        url = self._endpoint()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        service = _int(query.get("service_id", ["0"])[0], 0)
        with connect(url, open_timeout=10, max_size=frames.MAX_FRAME_BYTES) as socket:
            self.connected.set()
            next_ping = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= next_ping:
                    ping = frames.Frame(service=service, method=frames.CONTROL, headers=[("type", "ping")])
                    socket.send(frames.encode(ping))
                    next_ping = time.monotonic() + self._ping_s
                try:
                    message = socket.recv(timeout=0.2)
                except TimeoutError:
                    continue
                if isinstance(message, bytes):
                    self._handle(socket, frames.decode(message))

    def _handle(self, socket: Any, frame: frames.Frame) -> None:
        kind = frame.header("type")
        if frame.method == frames.CONTROL:
            if kind == "pong" and frame.payload:
                self._configure(_json(frame.payload))
            return
        payload = self._combined(frame)
        if payload is None:
            return
        if kind == "event":
            event = _json(payload)
            if isinstance(event, dict):
                self._on_event(self.platform, event)
        frame.payload = _OK
        socket.send(frames.encode(frame))

    def _combined(self, frame: frames.Frame) -> bytes | None:
        """The whole payload of a message split over `sum` frames (None until every part arrived)."""
        total, seq = _int(frame.header("sum"), 1), _int(frame.header("seq"), 0)
        if total <= 1:
            return frame.payload
        parts = self._parts.setdefault(frame.header("message_id"), [b""] * min(total, 64))
        if 0 <= seq < len(parts):
            parts[seq] = frame.payload
        if any(not part for part in parts):
            return None
        del self._parts[frame.header("message_id")]
        return b"".join(parts)


def _json(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _int(text: str, default: int) -> int:
    return int(text) if text.isdigit() else default
