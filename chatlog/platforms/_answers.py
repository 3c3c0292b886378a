"""Reading a platform's answer: its JSON body and result code, waits asked for, what an answer that is
not the platform's means (a proxy's page, a redirect), and outcomes with every secret redacted."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from chatlog._lazy import lazy_pattern
from chatlog.platforms._base import Outcome, redact

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import Any, httpx

_CODE = lazy_pattern(r"-?\d{1,12}")


def json_body(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when the body is empty, not JSON, or not an object."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def retry_after(response: httpx.Response, default: float) -> float:
    """Seconds to wait as the answer says (``Retry-After``, ``x-ogw-ratelimit-reset``), else `default`."""
    for header in ("retry-after", "x-ogw-ratelimit-reset"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, min(float(value), 3600.0))
        except ValueError:
            continue
    return default


def classify_http(response: httpx.Response) -> Outcome | None:
    """The outcome decided by HTTP status alone (429, 5xx), or None when the body must decide."""
    status = response.status_code
    if status == 429:
        return Outcome("retry", retry_after(response, 60.0), "the platform says we send too fast (HTTP 429)",
                       answer=trimmed(response))
    if status >= 500:
        return Outcome("retry", retry_after(response, 0.0), f"the platform answered HTTP {status}",
                       answer=trimmed(response))
    return None


def trimmed(response: httpx.Response, limit: int = 500) -> str:
    """The answer body as text, at most `limit` characters."""
    text = response.content[:limit * 4].decode("utf-8", "replace")
    return text[:limit]


def answer_code(value: object) -> int | None:
    """A platform's result code as an int (``0``, ``"0"``, ``-1``); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _CODE.fullmatch(value.strip()):
        return int(value.strip())
    return None


_LIKELY = {
    403: "a firewall or WAF in between refused it, or the host is not the platform",
    404: "no such path there: check the URL (a proxy or relay in between?)",
    407: "a proxy wants credentials: set proxy= (or HTTPS_PROXY) with them",
    408: "the server or a proxy gave up waiting for the request",
    421: "a proxy or load balancer sent it to the wrong server",
    499: "a load balancer closed the request",
}


def unexpected_answer(response: httpx.Response, platform: str) -> Outcome:
    """The outcome for an answer without the platform's result code: always a retry with backoff.

    Only the platform's own error codes can say the configuration is wrong; a redirect, a proxy's
    or load balancer's page (403 WAF, 404, 407, 408, 421, 499) is not its verdict, and may pass. The
    reason names the status, the host (never the token) and what it likely means.
    """
    status = response.status_code
    host = _host_of(response)
    if 200 <= status < 300:
        reason = f"{platform} gave an unexpected answer (HTTP {status} without a result code)"
    elif 300 <= status < 400:
        location = _origin_of(response.headers.get("location", ""))
        reason = (f"HTTP {status} from {host}: a redirect to {location or 'another address'}, which chatlog "
                  f"does not follow (the token must not travel elsewhere): use the {location or 'new'} URL")
    else:
        likely = _LIKELY.get(status, "not an answer of the platform's")
        reason = f"HTTP {status} from {host} without {platform}'s result code: {likely}"
    return Outcome("retry", retry_after(response, 0.0), reason, answer=trimmed(response))


def _host_of(response: httpx.Response) -> str:
    try:
        url = response.request.url
    except RuntimeError:  # a response built without a request (tests, a transport)
        return "the server"
    return f"{url.host}:{url.port}" if url.port else url.host


def _origin_of(location: str) -> str:
    """``scheme://host[:port]`` of a redirect target: its path and query may hold the token."""
    try:
        parts = urllib.parse.urlsplit(location)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not host:
        return ""
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def outcome_of(
    answer: httpx.Response | Outcome,
    classify: Callable[[httpx.Response], Outcome],
    secrets: tuple[str, ...],
) -> Outcome:
    """The classified `answer` with every secret redacted from its reason and body."""
    outcome = answer if isinstance(answer, Outcome) else classify(answer)
    return Outcome(outcome.kind, outcome.retry_after, redact(outcome.reason, secrets),
                   redact(outcome.answer, secrets))


def coded_answer(response: httpx.Response, platform: str,
                 code_keys: tuple[str, ...]) -> tuple[dict[str, Any], int] | Outcome:
    """The answer's JSON body and result code (the first of `code_keys` it has), or the outcome when
    the HTTP status alone decides (429, 5xx) or the answer has no usable code: then it is not the
    platform's verdict (see `unexpected_answer`). A code 0 with an HTTP error status is not success."""
    decided = classify_http(response)
    if decided is not None:
        return decided
    body = json_body(response)
    key = next((key for key in code_keys if body and key in body), code_keys[-1])
    code = answer_code(body.get(key)) if body else None
    if body is None or code is None or (code == 0 and not response.is_success):
        return unexpected_answer(response, platform)
    return body, code


def code_of(answer: httpx.Response | Outcome, key: str) -> int | None:
    """The result code under `key` in an answer's JSON body; None for no answer, no body or no code."""
    if isinstance(answer, Outcome):
        return None
    body = json_body(answer)
    return answer_code(body.get(key)) if body else None
