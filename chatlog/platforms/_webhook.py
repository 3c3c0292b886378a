"""What the group-bot webhooks share (`Webhook`): the destination strings (short form, the platform's
URL, a relay path), a token and maybe a signing secret and a keyword, one signed POST per payload and
a fresh signature once after a signature rejection, the masked form.

A webhook module declares its class's parts (`origins`, `token_param`, `token_name`, `post`, …) and
the module's ``LIMITS``, ``render`` and ``classify`` become the class's `limits`, `renderer` and
`classify`; the logic here is the same for all of them.
"""

from __future__ import annotations

import sys
import time
import urllib.parse
from abc import abstractmethod
from collections.abc import Callable

from chatlog.digest import Digest
from chatlog.platforms._answers import outcome_of, trimmed
from chatlog.platforms._base import (
    Destination,
    Limits,
    Outcome,
    Payload,
    Target,
    check_token,
    is_official,
    target_origin,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import ClassVar, httpx


class Webhook(Destination):
    """A group bot's webhook: a token, maybe a signing secret and a keyword; one POST per payload,
    signed afresh, and signed once more after a signature rejection (a stale timestamp, a clock step)."""

    title: ClassVar[str] = ""
    """The platform's name in messages (``"DingTalk"``)."""
    origins: ClassVar[tuple[str, ...]] = ()
    """The platform's own ``https://host`` for each of `names`, in the same order."""
    token_param: ClassVar[str | None] = None
    """The query parameter that carries the token (``access_token``), or None when it ends the path."""
    token_name: ClassVar[str] = "webhook token"
    """What the platform calls the token, in errors."""
    signs: ClassVar[bool] = True
    """False for a platform without signing secrets (the token is the only credential)."""

    def __init__(self, token: str, *, secret: str | None = None, keyword: str | None = None,
                 platform: str | None = None, origin: str | None = None, path: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`origin` (``scheme://host[:port]``) replaces the platform's own host, e.g. a local inbox; `path`
        its webhook path (a relay's own path); `clock` (Unix seconds) dates the signatures."""
        platform = platform or self.names[0]
        if platform not in self.names:
            raise ValueError(f"platform must be {' or '.join(map(repr, self.names))}, not {platform!r}"
                             f"; e.g. {self.example}")
        check_token(token, self.token_name, self.example)
        self.check_secret(secret or None)
        self.platform = platform
        self.token = token
        self.secret = secret or None
        self.keyword = keyword or None
        self.origin = origin or self.origins[self.names.index(platform)]
        self.path = path or self.paths[0]
        self.endpoint = f"{self.origin}{self.path}" + ("" if self.token_param else token)
        self.clock = clock

    def __init_subclass__(cls, **kwargs: object) -> None:
        # A webhook module's four names are its class's parts: LIMITS, render, classify (and sign).
        module = sys.modules[cls.__module__]
        for part, name in (("limits", "LIMITS"), ("renderer", "render"), ("classify", "classify")):
            if part not in cls.__dict__ and hasattr(module, name):
                value = getattr(module, name)
                setattr(cls, part, value if part == "limits" else staticmethod(value))
        # Where the platform is and where the token goes: read from its own URL forms (`forms`),
        # https://HOST/PATH?PARAM=TOKEN or https://HOST/PATH/TOKEN, one per name.
        own = [urllib.parse.urlsplit(urls[0]) for _, urls in cls.forms]
        if own and "origins" not in cls.__dict__:
            cls.origins = tuple(f"{url.scheme}://{url.netloc}" for url in own)
            cls.hosts = tuple(url.hostname or "" for url in own)
            cls.token_param = next(iter(urllib.parse.parse_qs(own[0].query)), None)
            cls.paths = (own[0].path if cls.token_param else own[0].path.rpartition("/")[0] + "/",)
        super().__init_subclass__(**kwargs)

    def check_secret(self, secret: str | None) -> None:
        """Raise ValueError (never showing it) for a signing secret the platform cannot have."""
        if secret is not None and not self.signs:
            raise ValueError(f"{self.title} bots have no signing secret: the {self.token_name.split()[-1]} "
                             f"is the secret; e.g. {self.example}")

    @classmethod
    def from_target(cls, target: Target) -> Webhook:
        """The short form (``NAME://TOKEN``), the platform's webhook URL on its host or another
        (`origin`), or a relay's path chosen by ``platform=`` (the token in its query or last)."""
        origin = target_origin(target, cls.example)
        url = target.url
        token = target.query.pop(cls.token_param, "") if cls.token_param else ""
        path = None
        if url.scheme not in ("http", "https"):
            token = url.netloc or token
        elif target.relay:
            path = url.path
            if not cls.token_param:
                head, _, token = url.path.rstrip("/").rpartition("/")
                path = f"{head}/"
        elif cls.token_param and url.path.rstrip("/") == cls.paths[0]:
            pass
        elif not cls.token_param and url.path.startswith(cls.paths[0]):
            token = url.path[len(cls.paths[0]) :].strip("/")
        else:
            raise ValueError(f"a {cls.title} webhook URL looks like {cls.forms[0][1][0]}; e.g. {cls.example}")
        return cls(token, secret=target.secret, keyword=target.keyword, platform=target.platform,
                   origin=origin, path=path)

    @staticmethod
    def renderer(digest: Digest, limits: Limits, keyword: str | None) -> Payload:
        """The module's ``render(digest, limits, keyword)``."""
        raise NotImplementedError

    def render(self, digest: Digest) -> Payload:
        """The message for `digest`, within this bot's limits, with its keyword (the module's ``render``)."""
        return self.renderer(digest, self.limits, self.keyword)

    @staticmethod
    def classify(response: httpx.Response) -> Outcome:
        """What the platform's answer means (the module's ``classify``)."""
        raise NotImplementedError

    @abstractmethod
    def post(self, client: httpx.Client, payload: Payload) -> httpx.Response | Outcome:
        """POST `payload`, signed now when a secret is set (see `post_json`)."""

    def signature_rejected(self, answer: httpx.Response | Outcome) -> bool:
        """True when `answer` refuses the signature or its timestamp (worth one fresh signature)."""
        return False

    def rejected_twice(self, response: httpx.Response) -> Outcome:
        """The outcome when a fresh signature was refused too: the secret or the clock is wrong."""
        return Outcome("permanent", 0.0, f"{self.title} rejected the signature twice: check secret= and "
                       "that this machine's clock is right (within an hour)", trimmed(response))

    def send(self, client: httpx.Client, payload: Payload) -> Outcome:
        """Sign, POST, classify; after a signature rejection, sign once more and resend. Never raises."""
        try:
            answer = self.post(client, payload)
            if self.secret is not None and self.signature_rejected(answer):
                answer = self.post(client, payload)  # a stale timestamp or a clock step: one fresh try
                if self.signature_rejected(answer):
                    return outcome_of(answer, self.rejected_twice, self.secrets)
            return outcome_of(answer, self.classify, self.secrets)
        except Exception as exc:
            reason = f"chatlog failed while sending to {self.title} ({type(exc).__name__})"
            return Outcome("retry", reason=reason)

    def masked(self) -> str:
        """``NAME://***``; the endpoint with the token as ``***`` for a host of your own."""
        if is_official(self.origin, self.hosts):
            return f"{self.platform}://***"
        if self.token_param:
            return f"{self.endpoint}?{self.token_param}=***"
        return f"{self.origin}{self.path}***"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The token (or key) and the signing secret."""
        return tuple(value for value in (self.token, self.secret) if value)
