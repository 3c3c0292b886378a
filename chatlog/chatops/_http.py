"""What every callback route shares: the request and answer as plain values, refusals, the replay guard.

The hosting forms (ASGI, WSGI, ``http.server``) turn their request into a `Request` and write the
`Response` back; everything between is pure code that never sees a framework.
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 1024 * 1024
DEFAULT_WINDOW_S = 300.0
"""How far a callback's timestamp may be from our clock where the platform names no window."""
MAX_NONCES = 10_000

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request: header names in lower case, the body as the raw bytes received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to write: status, body, content type."""

    status: int
    body: bytes = b""
    content_type: str = JSON


def json_response(value: object, status: int = 200) -> Response:
    """A compact UTF-8 JSON answer."""
    return Response(status, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


class Refused(Exception):
    """A request we will not act on: `status` and a short public `reason` (never a secret or traceback)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> Response:
        """The answer the caller gets: the status and the reason as JSON."""
        return json_response({"error": self.reason}, self.status)


NOT_FOUND = Refused(404, "not found")
BAD_SIGNATURE = Refused(401, "signature does not match")
TOO_LARGE = Refused(413, f"body over {MAX_BODY_BYTES} bytes")


def json_object(body: bytes | str, what: str = "body") -> dict[str, Any]:
    """`body` decoded as a JSON object; `Refused` 400 otherwise."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Refused(400, f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise Refused(400, f"{what} is not a JSON object")
    return value


def xml_element(body: bytes, what: str = "body") -> ET.Element:
    """`body` parsed as XML without any DTD (no entities at all, so none can be external or expand)."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise Refused(400, f"{what} has a DOCTYPE, which callbacks never carry")
    try:
        return ET.fromstring(body)
    except (ET.ParseError, ValueError):
        raise Refused(400, f"{what} is not valid XML") from None


def text_of(value: object) -> str:
    """A JSON value as text when it is a string, else ""."""
    return value if isinstance(value, str) else ""


def dig(value: object, *keys: str) -> object:
    """``value[k1][k2]…`` or None when a step is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def timestamp_s(text: str, *, millis: bool = False) -> float:
    """A header's Unix time in seconds; `Refused` 401 when it is not a number."""
    if not text.isdigit() or len(text) > 16:
        raise Refused(401, "timestamp missing or not a number")
    return int(text) / 1000.0 if millis else float(int(text))


class ReplayGuard:
    """Refuses stale timestamps and nonces seen before; memory bounded to `max_entries` nonces.

    A nonce is remembered only after its request's signature was valid, so nobody without the key can
    push real nonces out. It is kept as long as its timestamp could pass the window.
    """

    def __init__(self, clock: Callable[[], float], max_entries: int = MAX_NONCES) -> None:
        """`clock` returns Unix seconds."""
        self._clock = clock
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def check_time(self, at_s: float, window_s: float = DEFAULT_WINDOW_S) -> None:
        """`Refused` 401 when `at_s` is more than `window_s` from now (either way)."""
        if abs(self._clock() - at_s) > window_s:
            raise Refused(401, "timestamp outside the allowed window")

    def remember(self, nonce: str, window_s: float = DEFAULT_WINDOW_S) -> None:
        """Record `nonce`; `Refused` 409 when it was seen within its window (a replay)."""
        if not self.first(nonce, window_s):
            raise Refused(409, "replayed request")

    def first(self, nonce: str, window_s: float = DEFAULT_WINDOW_S) -> bool:
        """Record `nonce`; False when it was seen within its window (a replay or a platform's retry)."""
        now = self._clock()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now:
                self._seen.popitem(last=False)
            if nonce in self._seen:
                return False
            while len(self._seen) >= self._max:
                self._seen.popitem(last=False)
            self._seen[nonce] = now + 2 * window_s
            return True
