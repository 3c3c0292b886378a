"""What every fake platform module shares: the request as the fake saw it, the answer, bot settings.

A platform's fake is the module ``chatlog.testing.<name>`` named after the platform
(``chatlog/platforms/<name>.py``); a group bot's fake exposes one ``RULES`` object of type
:class:`PlatformRules`, which the server, ``chatlog serve``/``demo`` and the tests find through the
platform registry (`rules_registry`): adding a platform is adding its two modules, nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from chatlog.chatops._http import Request as HttpRequest
from chatlog.chatops._http import dig as dig  # the fakes read payloads with it too

JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Request(HttpRequest):
    """One HTTP request as the fake server read it (the fields of the callback receivers' request);
    ``payload`` is set only for a JSON object body."""

    payload: JSONObject | None


@dataclass(frozen=True, slots=True)
class Answer:
    """The JSON answer a platform gives; ``accepted`` means the platform took the message.

    ``text`` replaces the JSON body for platforms that answer in plain text (Slack's ``ok``) or with
    no body at all (Discord's 204: ``text=""``).
    """

    body: JSONObject
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    accepted: bool = False
    text: str | None = None


@dataclass(frozen=True, slots=True)
class BotSettings:
    """How one fake bot is configured; the platform rules read it, never change it."""

    platform: str
    token: str
    secret: str | None = None
    keyword: str | None = None
    rate_limit: bool = True
    options: Mapping[str, object] = field(default_factory=dict)
    """The platform's own settings (`PlatformRules.options`), defaults filled in."""


@dataclass(slots=True)
class RateState:
    """Per-bot memory for rate limits: times of counted requests and the end of a block (clock seconds)."""

    sent: deque[float] = field(default_factory=deque)
    blocked_until: float = float("-inf")

    def count_since(self, start: float) -> int:
        """Number of counted requests at or after ``start``; forgets those older than a minute before it."""
        while self.sent and self.sent[0] < start - 60.0:
            self.sent.popleft()
        return sum(1 for at in self.sent if at > start)


@dataclass(frozen=True, slots=True)
class PlatformRules:
    """Everything the server needs to impersonate one platform family (e.g. Feishu and Lark share one).

    ``token_of`` returns the bot token a request addresses, or None when the path is not this platform's;
    ``judge`` gets ``None`` for an unknown token and must return that platform's own answer for it.
    """

    names: tuple[str, ...]
    token_of: Callable[[str, Mapping[str, str]], str | None]
    new_token: Callable[[], str]
    url_of: Callable[[str, BotSettings], str]
    check_settings: Callable[[BotSettings], None]
    judge: Callable[[Request, BotSettings | None, RateState, float], Answer]
    text_of: Callable[[JSONObject], str]
    notified: Callable[[JSONObject], tuple[str, ...]]
    """Who one accepted message notifies, as the platform's clients do it (``all`` for everyone)."""
    live_markup: Callable[[JSONObject], list[str]]
    """What in one message the platform would turn into a link, image, button, tag or broken layout
    beyond the mentions and formatting chatlog emits: [] for an inert message."""
    options: Mapping[str, object] = field(default_factory=dict)
    """The platform's own ``add_bot`` settings with their defaults (e.g. ``rate_code``)."""
    demo: Mapping[str, Any] = field(default_factory=dict)
    """``add_bot`` settings of the bot ``chatlog demo`` and ``serve`` create (signing on, a keyword…)."""


_PARTS = ("token_of", "new_token", "url_of", "check_settings", "judge", "text_of", "notified", "live_markup")


def rules_of_module(module: str, names: tuple[str, ...], *, options: Mapping[str, object] | None = None,
                    demo: Mapping[str, Any] | None = None) -> PlatformRules:
    """A fake module's `PlatformRules`, from its functions of the same names (``token_of``, ``judge``,
    ``text_of``, …): ``RULES = rules_of_module(__name__, ("dingtalk",))`` at the end of the module."""
    found = vars(sys.modules[module])
    missing = [part for part in _PARTS if not callable(found.get(part))]
    if missing:
        raise TypeError(f"the fake {module} lacks {', '.join(missing)}: each fake module defines "
                        f"{', '.join(_PARTS)}")
    parts = {part: found[part] for part in _PARTS}
    return PlatformRules(names=names, **parts, options=dict(options or {}), demo=dict(demo or {}))


def rules_registry() -> tuple[PlatformRules, ...]:
    """The group-bot fakes of every registered platform: ``chatlog.testing.<name>.RULES`` for each
    `chatlog.platforms` class (platforms served by another fake, like app bots, have no ``RULES``)."""
    from chatlog.destinations import platform_classes

    found: list[PlatformRules] = []
    for cls in platform_classes():
        name = f"chatlog.testing.{cls.names[0].replace('-', '_')}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a platform without a fake: the registry test fails, `chatlog send` still works
        rules = getattr(module, "RULES", None)
        if isinstance(rules, PlatformRules) and rules not in found:
            found.append(rules)
    return tuple(found)


LIVE_KEYS = frozenset({"url", "href", "multi_url", "actions", "action", "behaviors", "btns", "singleURL",
                       "messageURL", "picURL", "actionURL"})
"""Keys that make part of a message clickable (links, buttons) on any of the platforms."""
_LINK = re.compile(r"\][(\[:]")


def keys_in(value: object) -> Iterator[str]:
    """Every key inside a JSON value, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_in(item)


def live_key_problems(payload: object) -> list[str]:
    """``"live key K"`` for each key in `payload` that makes part of a message clickable (`LIVE_KEYS`)."""
    return [f"live key {key}" for key in set(keys_in(payload)) & LIVE_KEYS]


def lacks_keyword(bot: BotSettings, payload: object, not_text: frozenset[str]) -> bool:
    """True when `bot` requires a keyword that no text of `payload` holds (values under `not_text`
    keys are not text)."""
    return bot.keyword is not None and not any(bot.keyword in s for s in strings_in(payload, not_text))


def markdown_problems(text: str) -> list[str]:
    """What in (already stripped of the platform's own tags) markdown would be live: a tag, a link, an
    image or a link definition."""
    problems = [f"a tag in {text[:80]!r}"] if "<" in text else []
    if _LINK.search(text):
        problems.append(f"a link in {text[:80]!r}")
    return problems


def hmac_sha256_b64(key: str, message: str) -> str:
    """Base64 of HMAC-SHA256; Feishu and DingTalk differ only in what they use as key and message."""
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()).decode()


def same_secret(expected: str, given: object) -> bool:
    """Constant-time comparison that tolerates a missing or non-string value."""
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


def strings_in(value: object, skip_keys: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every string inside a JSON value, depth first, leaving out values under ``skip_keys``."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip_keys:
                yield from strings_in(item, skip_keys)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item, skip_keys)


def dig_strings(value: object, *keys: str) -> list[str]:
    """Like :func:`dig` but always a list of strings: the strings of a list value, else []."""
    found = dig(value, *keys)
    return [item for item in found if isinstance(item, str)] if isinstance(found, list) else []


def dig_str(value: object, *keys: str) -> str:
    """Like :func:`dig` but always a string: "" when the value is missing or not a string."""
    found = dig(value, *keys)
    return found if isinstance(found, str) else ""


def utf8_len(value: object) -> int:
    """Length in UTF-8 bytes, which is what every platform's size limit counts."""
    return len(value.encode()) if isinstance(value, str) else 0


def option(name: str, value: str | None) -> str:
    """One ``name=value`` piece for a bot URL's query, or "" when the option is not configured."""
    return "" if value is None else f"{name}={quote(value, safe='')}"


def with_options(url: str, *pieces: str) -> str:
    """Append the non-empty query pieces to ``url`` with the right separator."""
    query = "&".join(piece for piece in pieces if piece)
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query}"
