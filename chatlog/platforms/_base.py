"""The contract every platform module fulfils, and the pieces all of them use (the POST, redaction).

A platform module defines one `Destination` subclass (declaring its names, URL forms, `Option`
table, escaping rule and limits) plus ``sign(...)``, ``render(digest, limits, keyword)`` and
``classify(response)``. Subclasses register themselves, so adding a platform is adding a module
under ``chatlog/platforms/`` and its fake under ``chatlog/testing/`` (see docs/DESIGN.md).
Reading answers is `chatlog.platforms._answers`; what group-bot webhooks share, `_webhook`.
"""

from __future__ import annotations

import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Sequence

from chatlog._lazy import lazy_pattern
from chatlog._record import Record
from chatlog.digest import Digest

TYPE_CHECKING = False
if TYPE_CHECKING:  # httpx is imported where the first request is made, on chatlog's own thread
    from chatlog.platforms._types import Any, ClassVar, Literal, httpx

if TYPE_CHECKING:
    Payload = dict[str, Any]
else:
    Payload = dict  # `typing` (for Any) is not imported at run time: `import chatlog` stays cheap
Payloads = tuple[Payload, ...]
"""The request bodies of one digest, in sending order (usually one)."""
_TOKEN = lazy_pattern(r"[^\s/?#@:]+")


class Outcome(Record):
    """What a platform's answer means for the dispatcher."""

    kind: Literal["ok", "retry", "permanent", "rejected"]
    """``retry``: try again later; ``permanent``: this destination cannot work until its configuration
    is fixed; ``rejected``: the platform refused this message's content (too large, flagged) — its
    records are dropped and reported, the destination goes on with the next message."""
    retry_after: float = 0.0
    reason: str = ""
    """Plain words for the user, with the fix where there is one; never a secret."""
    answer: str = ""
    """The platform's answer body, trimmed (what `chatlog send` prints)."""

    @property
    def ok(self) -> bool:
        """True when the platform accepted the message."""
        return self.kind == "ok"


class Limits(Record):
    """A platform's limits as chatlog keeps them (a margin below the documented values)."""

    body_bytes: int
    """Largest JSON request body, in UTF-8 bytes."""
    per_minute: int
    """Messages per minute per bot that chatlog allows itself."""
    per_second: float | None = None
    """Messages per second per bot, where the platform also limits bursts."""
    text_bytes: int | None = None
    """Largest text/markdown content, in UTF-8 bytes, where the platform limits it separately."""


class Option(Record):
    """An option a platform takes by name: in the destination's query (``?app_id=…``), as a handler or
    sink keyword (``app_id=…``), or in dictConfig. The handler validates every option against these
    tables, so a platform's options reach it without the handler naming them."""

    name: str
    help: str
    """What it is, with an example value (shown in errors)."""
    secret: bool = False
    """A credential: never shown in a repr, an error or output (the tests scan for it)."""
    many: bool = False
    """A list of values: a list of strings, or one comma-separated string."""


COMMON_OPTIONS: tuple[Option, ...] = (
    Option("secret", "the signing secret, e.g. secret=SEC…", secret=True),
    Option("keyword", "a word every message must contain, e.g. keyword=alert"),
    Option("base_url", "send to this host instead, e.g. base_url=http://127.0.0.1:8750"),
    Option("platform", "the platform when the URL does not tell, e.g. platform=dingtalk"),
    Option("at", "ids mentioned in every message, e.g. at=13800000000,ou_xxx", many=True),
)
"""Options every destination string may carry; a platform declares its own in `Destination.options`."""


class Target(Record):
    """A parsed destination string, handed to the platform that claims it."""

    url: urllib.parse.SplitResult
    """The string as given, split (scheme ``dingtalk``, ``https``, ``http``, …)."""
    query: dict[str, str]
    """Query parameters not yet consumed. A platform pops its own (``access_token``, ``key``);
    whatever is left is reported as an unknown option."""
    platform: str
    """The platform name chosen (one of the class's `names`)."""
    secret: str | None = None
    keyword: str | None = None
    base_url: str | None = None
    """``scheme://host[:port]`` to send to instead of the platform's own host (local inbox, proxy)."""
    relay: bool = False
    """An http(s) URL whose path is no platform's own, chosen by ``platform=`` (a relay or proxy): the
    platform sends to that URL's path instead of its own."""


class Destination(ABC):
    """A place digests go: knows the endpoint, signing, rendering and the platform's answers."""

    names: ClassVar[tuple[str, ...]] = ()
    """Platform names this class serves (``platform=`` values, short URL schemes)."""
    hosts: ClassVar[tuple[str, ...]] = ()
    """Official hosts recognised in ``https://`` URLs."""
    paths: ClassVar[tuple[str, ...]] = ()
    """Path prefixes that identify the platform on any host (local inbox, proxy)."""
    example: ClassVar[str] = ""
    """One valid destination string, shown in error messages."""
    forms: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = ()
    """The README's rows for this class: what it is (``"DingTalk group bot"``) and its URL forms."""
    options: ClassVar[tuple[Option, ...]] = ()
    """Options this platform takes besides `COMMON_OPTIONS` (``app_id``, ``access_token``, …)."""
    registry: ClassVar[list[type[Destination]]] = []

    limits: Limits
    platform: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.names:
            Destination.registry.append(cls)

    @staticmethod
    def escape(text: str) -> str:
        """The platform's escaping rule: cleaned user text made inert in its markup (no mention, link,
        tag, font or code span), e.g. `chatlog.platforms._text.inert`. Every platform declares one."""
        raise NotImplementedError

    @classmethod
    def option_table(cls) -> tuple[Option, ...]:
        """Every option this platform takes: the common ones, then its own."""
        return COMMON_OPTIONS + cls.options

    @classmethod
    def credentials(cls, url: urllib.parse.SplitResult) -> tuple[str, ...]:
        """The credentials written in a destination string's scheme, host and path (not its query: those
        are the `Option` values marked secret). Read even from a string the platform would refuse, so
        construction errors can mask them.

        By default: the password of ``USER:PASSWORD@…`` or else the whole host part of a short form
        (``dingtalk://TOKEN``), and the path after one of `paths` in an http(s) URL
        (``…/bot/v2/hook/TOKEN``). A platform whose URL puts a credential elsewhere overrides this.
        """
        if url.scheme.lower() not in ("http", "https"):
            userinfo, at, host = url.netloc.rpartition("@")
            found = [urllib.parse.unquote(userinfo.partition(":")[2]) if at else urllib.parse.unquote(host)]
        else:
            found = [url.path[len(prefix):].strip("/") for prefix in cls.paths if url.path.startswith(prefix)]
        return tuple(value for value in found if value)

    @classmethod
    @abstractmethod
    def from_target(cls, target: Target) -> Destination:
        """Build from a parsed destination; raise ValueError naming what is wrong, with `example`."""

    @abstractmethod
    def render(self, digest: Digest) -> Payload:
        """The request body for a digest, within `limits`, keyword included when configured."""

    def render_all(self, digest: Digest) -> Payloads:
        """Every request body for `digest`, in sending order: `render`'s, and any extra message the
        platform needs (WeCom: a text message whose ``mentioned_list`` notifies ``@all`` and phones)."""
        return (self.render(digest),)

    def render_fallback(self, digest: Digest) -> Payloads:
        """Plain text for a digest whose `render_all` failed: a renderer bug must not cost the alert."""
        lines = "; ".join(group.sample.message[:200] for group in digest.groups[:5])
        return self.render_text_all(f"{digest.level_name} · {digest.total:,} records: {lines}")

    def render_text_all(self, text: str) -> Payloads:
        """Every request body for one plain text (``chatlog send``): `render_text`'s, by default."""
        return (self.render_text(text),)

    @abstractmethod
    def render_text(self, text: str) -> Payload:
        """The request body for one plain text (``chatlog send``), keyword included when configured."""

    @abstractmethod
    def send(self, client: httpx.Client, payload: Payload) -> Outcome:
        """Sign (fresh per request), POST, and classify the answer. Never raises."""

    def send_all(self, client: httpx.Client, payloads: Payloads) -> Outcome:
        """Send a digest's payloads in order; the first answer that is not ok decides (a retry sends
        them all again, re-rendered). Never raises."""
        outcome = Outcome("retry", reason="nothing to send")
        for payload in payloads:
            outcome = self.send(client, payload)
            if not outcome.ok:
                break
        return outcome

    @abstractmethod
    def masked(self) -> str:
        """The destination with every secret replaced by ``***``, e.g. ``dingtalk://***``."""

    @property
    @abstractmethod
    def secrets(self) -> tuple[str, ...]:
        """Every secret this destination holds (tokens, keys, signing secrets), for redaction."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.masked()}>"

def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret (and its URL-quoted form) replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
            quoted = urllib.parse.quote_plus(secret)
            if quoted != secret:
                text = text.replace(quoted, "***")
    return text


def check_token(token: str, what: str, example: str) -> None:
    """Raise ValueError naming the problem (never the token) unless `token` looks like a token."""
    if not token:
        raise ValueError(f"the destination has no {what}; e.g. {example}")
    if _TOKEN.fullmatch(token) is None:
        raise ValueError(f"the {what} contains a space, '/', '?', '#', '@' or ':', which a {what} never has"
                         f"; e.g. {example}")


def http_origin(url: str) -> str | None:
    """``scheme://host[:port]`` when `url` is exactly that (http or https, a trailing ``/`` allowed)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return None
    plain = parts.path in ("", "/") and not parts.query and not parts.fragment and "@" not in parts.netloc
    if parts.scheme in ("http", "https") and parts.hostname and port_ok and plain:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def target_origin(target: Target, example: str) -> str | None:
    """Where to send: `base_url` when given, else the URL's own ``scheme://host[:port]`` for an http(s)
    URL, else None (a short form: the platform's own host). ValueError for a malformed origin."""
    if target.base_url:
        origin = http_origin(target.base_url)
        if origin is None:
            raise ValueError("base_url must be http(s)://host[:port] with nothing after it, "
                             f"such as base_url=http://127.0.0.1:8080; e.g. {example}")
        return origin
    if target.url.scheme not in ("http", "https"):
        return None
    origin = http_origin(f"{target.url.scheme}://{target.url.netloc}")
    if origin is None:
        raise ValueError(f"the URL needs a host, and no user or password in it; e.g. {example}")
    return origin


def is_official(origin: str, hosts: Sequence[str]) -> bool:
    """True when `origin` is one of the platform's own hosts over https on the default port."""
    parts = urllib.parse.urlsplit(origin)
    return parts.scheme == "https" and parts.hostname in hosts and parts.port in (None, 443)
