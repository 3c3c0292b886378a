"""The POST itself: one total deadline for connect + TLS + send + read, at most 64 KiB of an answer read,
and a message naming the host (never the token) and the fix for each way a connection fails.

Runs on chatlog's courier thread: ``httpx`` is imported here, where the first request is made.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping

from chatlog.platforms._base import Outcome, Payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatlog.platforms._types import Any, httpx

MAX_ANSWER_BYTES = 64 * 1024
"""The most of an answer body read: platforms answer a few hundred bytes; a proxy's page or a broken
server may send gigabytes (and again on every retry)."""

_watch = threading.local()


def watch_sends(on_sent: Callable[[], None]) -> None:
    """Call `on_sent` (on this thread) whenever a request body has been written in full."""
    _watch.on_sent = on_sent


class _Deadline:
    """One total deadline for connect + TLS + send + read. httpcore reads each phase's timeout when the
    phase starts (and announces the start to the ``trace`` extension), so each phase gets what is left."""

    def __init__(self, budget_s: float) -> None:
        self.at = time.monotonic() + budget_s
        self.timeouts: dict[str, Any] = {}

    def left(self) -> float:
        return max(0.001, self.at - time.monotonic())

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(".started"):
            left = self.left()
            if info.get("timeout") is not None:
                info["timeout"] = left
            for phase in ("connect", "write", "read", "pool"):
                if self.timeouts.get(phase) is not None:
                    self.timeouts[phase] = left
        elif event.endswith("send_request_body.complete"):
            on_sent = getattr(_watch, "on_sent", None)
            if on_sent is not None:
                on_sent()


class _AnswerTooSlow(Exception):
    pass


def post_json(
    client: httpx.Client,
    url: str,
    payload: Payload,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response | Outcome:
    """POST `payload` as UTF-8 JSON within the client's timeout *in total*, reading at most
    `MAX_ANSWER_BYTES` of the answer; a network failure, a late or an oversized answer comes back as a
    retry `Outcome` whose reason names the host (never the token) and the likely fix.

    `params` are merged into the URL's own query (httpx >= 0.28 would replace it).
    """
    import httpx

    if params:
        url = _merge_query(url, params)
    # Imported here, not at module level: chatlog's thread pays for it, not `import chatlog`.
    import json

    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    all_headers = {"Content-Type": "application/json; charset=utf-8", "Accept-Encoding": "identity",
                   **(headers or {})}
    budget = client.timeout.read or 10.0
    deadline = _Deadline(budget)
    try:
        request = client.build_request("POST", url, content=body, headers=all_headers,
                                       extensions={"trace": deadline.trace})
        deadline.timeouts = request.extensions["timeout"]
        response = client.send(request, stream=True)
        try:
            content = _read_capped(response, deadline)
        finally:
            response.close()
    except _AnswerTooSlow:
        return Outcome("retry", reason=f"{_host(url)} did not finish its answer within {budget:g} s")
    except httpx.HTTPError as exc:
        return Outcome("retry", reason=transport_failure(exc, url, budget))
    if content is None:
        return Outcome("retry", reason=f"{_host(url)} sent an answer larger than {MAX_ANSWER_BYTES // 1024} "
                       f"KiB (HTTP {response.status_code}); not a platform's answer")
    return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)


def _read_capped(response: httpx.Response, deadline: _Deadline) -> bytes | None:
    """The body, or None past `MAX_ANSWER_BYTES`; `_AnswerTooSlow` past the deadline."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
        if time.monotonic() > deadline.at:
            raise _AnswerTooSlow
    return b"".join(chunks)


def _host(url: str) -> str:
    """``host[:port]`` of `url`: what a message may name (tokens live in the path and query)."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname}:{port}" if port else str(parts.hostname)


def transport_failure(exc: BaseException, url: str, budget_s: float) -> str:
    """Plain words for a request that got no answer: what failed, on which host, and the fix."""
    import socket
    import ssl

    import httpx

    host = _host(url)
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return (f"no answer from {host} within request_timeout={budget_s:g} s ({type(exc).__name__}): the "
                "platform or the network is slow or blocks the connection; check the firewall or proxy=")
    if any(isinstance(c, socket.gaierror) for c in chain):
        return (f"cannot resolve the host name {host} (DNS): check the URL, this machine's DNS, or set "
                "proxy= / HTTPS_PROXY when this network reaches the internet only through a proxy")
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in chain):
        return (f"the TLS certificate of {host} is not trusted: when a proxy or the company network "
                "inspects TLS, pass verify='/path/to/company-ca.pem' (or set SSL_CERT_FILE)")
    if any(isinstance(c, ConnectionRefusedError) for c in chain):
        return (f"connection to {host} refused: nothing listens there; check the URL or base_url, "
                "or proxy= / HTTPS_PROXY")
    return f"network error ({type(exc).__name__}) talking to {host}"


def _merge_query(url: str, params: Mapping[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
