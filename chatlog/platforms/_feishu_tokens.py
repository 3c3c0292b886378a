"""The process's Feishu / Lark ``tenant_access_token``s: one per app and host, fetched once and shared by
every destination of that app, refreshed a little before they expire, fork-safe."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from chatlog.platforms._answers import answer_code, classify_http, json_body, retry_after, trimmed
from chatlog.platforms._answers import unexpected_answer as unexpected
from chatlog.platforms._base import Outcome
from chatlog.platforms._text import answer_message

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import httpx

_TOKEN_MARGIN_S = 300.0

TokenKey = tuple[str, str, str]
Fetched = tuple[str, float]
"""A token and its lifetime in seconds, as the token endpoint gave them."""


class _Cached:
    __slots__ = ("expires_at", "lock", "refresh_at", "token")

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.token = ""
        self.refresh_at = 0.0
        self.expires_at = 0.0


class TenantTokens:
    """The process's tenant_access_tokens, one per (host, app): fetched once and shared by every
    destination that uses the app, refreshed before they expire.

    `clock` (seconds, monotonic by default) may be replaced in tests. A fetch holds that app's lock,
    so destinations that need a token at the same moment wait for one fetch instead of making several.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """An empty cache reading `clock`."""
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: dict[TokenKey, _Cached] = {}

    def get(self, key: TokenKey, fetch: Callable[[], Fetched | Outcome]) -> str | Outcome:
        """The app's token; `fetch` is called when there is none or it is about to expire. When a refresh
        fails while the old token is still valid, the old one is returned."""
        cached = self._entry(key)
        with cached.lock:
            now = self.clock()
            if cached.token and now < cached.refresh_at:
                return cached.token
            fetched = fetch()
            if isinstance(fetched, Outcome):
                return cached.token if cached.token and now < cached.expires_at else fetched
            cached.token, lifetime_s = fetched
            cached.expires_at = now + lifetime_s
            cached.refresh_at = cached.expires_at - min(_TOKEN_MARGIN_S, lifetime_s / 10)
            return cached.token

    def invalidate(self, key: TokenKey, token: str) -> None:
        """Forget `token` after the API refused it (unless another destination already replaced it)."""
        cached = self._entry(key)
        with cached.lock:
            if cached.token == token:
                cached.token = ""

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            self._cached.clear()

    def _entry(self, key: TokenKey) -> _Cached:
        with self._lock:
            return self._cached.setdefault(key, _Cached(threading.Lock()))

    def _after_fork_in_child(self) -> None:
        # A lock held by another thread at fork time would stay locked forever in the child.
        self._lock = threading.Lock()
        for cached in self._cached.values():
            cached.lock = threading.Lock()


TOKENS = TenantTokens()
"""The tokens every `FeishuApp` of this process shares unless it is given its own."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=TOKENS._after_fork_in_child)


def token_key(origin: str, app_id: str, app_secret: str) -> TokenKey:
    """The cache key of an app's token: host, app id and a hash of the secret (a new secret, a new token)."""
    import hashlib  # here: an https URL imports this module, and only an app bot needs it

    return origin, app_id, hashlib.sha256(app_secret.encode()).hexdigest()


def token_of(response: httpx.Response) -> Fetched | Outcome:
    """The token and its lifetime from the token endpoint's answer, or why there is none.

    Any refusal but a rate limit is permanent: the app id or secret is wrong (the code Feishu uses for
    which is not documented reliably, so every non-zero code counts).
    """
    body = json_body(response)
    code = answer_code(body.get("code")) if body else None
    if body is None or code is None:
        decided = classify_http(response)
        return decided if decided is not None else unexpected(response, "Feishu's token endpoint")
    token, lifetime_s = body.get("tenant_access_token"), answer_code(body.get("expire"))
    if code == 0 and isinstance(token, str) and token:
        return token, float(lifetime_s) if lifetime_s and lifetime_s > 0 else 600.0
    if code == 0:
        return unexpected(response, "Feishu's token endpoint")
    answer, message = trimmed(response), answer_message(body.get("msg"))
    if code == 99991400 or response.status_code == 429 or response.status_code >= 500:
        return Outcome("retry", retry_after(response, 1.0),
                       f"Feishu's token endpoint says wait ({code} {message})", answer)
    return Outcome("permanent", 0.0, f"Feishu refused the app credentials ({code} {message}): check the app "
                   "id and app secret (developer console → Credentials & Basic Info)", answer)
