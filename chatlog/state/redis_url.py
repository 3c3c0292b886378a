"""A Redis URL as chatlog takes it (``redis://``, ``rediss://``, ``unix://``), its masked form, and a client.

redis-py is imported only in `connect`: a handler that never names Redis never loads it, and a missing
package is a construction error that says which extra to install.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatlog.state.url import mask_url

if TYPE_CHECKING:
    import redis

SCHEMES = ("redis", "rediss", "unix")
EXAMPLE = "state='redis://:PASSWORD@redis.internal:6379/0', 'rediss://…' (TLS) or 'unix:///run/redis.sock'"
INSTALL = "pip install 'chatlog-alerts[redis]'"
SOCKET_TIMEOUT_S = 0.5
"""Every Redis call waits at most this long (connect and answer): a slow Redis costs a round, not a hang."""


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A checked Redis URL: the text redis-py parses, what may be shown, and the secret to scrub."""

    url: str
    masked: str
    password: str

    def __repr__(self) -> str:
        return f"RedisURL({self.masked!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no line of output may contain."""
        return (self.password,) if self.password else ()


def parse(state: str) -> RedisURL:
    """Check `state`; ValueError (naming the problem, never the password) with an example otherwise."""
    try:
        parts = urllib.parse.urlsplit(state)
        parts.port  # noqa: B018 -- a bad port is rejected here, not at the first connection
    except ValueError as exc:
        raise ValueError(f"state is not a valid Redis URL ({mask_url(state)}): {exc}; "
                         f"e.g. {EXAMPLE}") from None
    password = urllib.parse.unquote(parts.password or "")
    masked = mask_url(state)
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(f"state {masked!r} is not a Redis URL; e.g. {EXAMPLE}")
    if parts.scheme.lower() == "unix":
        if not parts.path:
            raise ValueError(f"state {masked!r} names no socket path; e.g. {EXAMPLE}")
    elif not parts.hostname:
        raise ValueError(f"state {masked!r} names no host; e.g. {EXAMPLE}")
    return RedisURL(state, masked, password)


def connect(url: RedisURL, timeout_s: float = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A redis-py client for `url` with short timeouts and no retries (the dispatcher retries next round).

    ImportError saying what to install when redis-py is missing."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ImportError(f"state={url.masked!r} needs the redis package: {INSTALL}") from None
    options: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
                               "retry": Retry(NoBackoff(), 0), "health_check_interval": 0}
    try:
        client: redis.Redis = redis.Redis.from_url(url.url, **options)
    except ValueError as exc:
        raise ValueError(f"state {url.masked!r}: {scrubbed(str(exc), url)}; e.g. {EXAMPLE}") from None
    return client


def scrubbed(text: str, url: RedisURL) -> str:
    """`text` without `url`'s password (plain or URL-quoted)."""
    for secret in url.secrets:
        text = text.replace(secret, "***").replace(urllib.parse.quote(secret, safe=""), "***")
    return text
