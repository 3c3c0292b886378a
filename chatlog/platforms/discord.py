"""Discord webhooks: endpoint, the embeds coloured by severity, mentions, rate-limit buckets, the answers.

No ``sign``: a webhook URL carries its own token, which is the secret.

Limits are counted in UTF-16 code units, which is never less than the characters Discord counts:
``content`` ≤ 2,000, embed title ≤ 256, description ≤ 4,096, footer ≤ 2,048, ≤ 10 embeds and ≤ 6,000
across all embeds of a message.

Mentions: only ``content`` can ping, and it holds only the mentions chatlog renders from the
configuration; log text goes into embeds, which never ping, and every message carries
``allowed_mentions`` naming exactly the configured users (``parse: []`` otherwise), so ``@everyone``,
``@here`` or ``<@id>`` in a log record cannot notify anyone. User text also goes through `_text.inert`
(full-width ``＜＞``, ``ˋ`` for backticks, ``］`` before ``(``/``[``/``:``): no masked link, mention
tag or code fence comes from a log record.

Rate limits: Discord announces each bucket in ``X-RateLimit-*`` headers. When an answer says
``X-RateLimit-Remaining: 0``, the next send waits ``X-RateLimit-Reset-After`` seconds first (on the
courier thread, like a slow answer); a ``429`` is retried after the ``retry_after`` it names.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable

from chatlog import links
from chatlog._lazy import lazy_pattern
from chatlog.digest import Digest, GroupSummary
from chatlog.platforms import _groups, _text
from chatlog.platforms._answers import (
    answer_code,
    classify_http,
    json_body,
    retry_after,
    trimmed,
    unexpected_answer,
)
from chatlog.platforms._base import Limits, Option, Outcome, Payload, Target, target_origin
from chatlog.platforms._http import post_json
from chatlog.platforms._webhook import Webhook

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import Any, Literal, httpx

_ORIGIN = "https://discord.com"
_PATH = "/api/webhooks/"
_URL = lazy_pattern(r"/api(?:/v\d+)?/webhooks/(\d{1,25})/([^/]+)/?")
LIMITS = Limits(body_bytes=60_000, per_minute=25, per_second=2)
"""Per-webhook limits are not published (about 5 per 2 s and 30 a minute per channel are reported):
chatlog keeps to 25 a minute and 2 a second, and obeys the ``X-RateLimit-*`` headers on top."""
CONTENT_CHARS = 2_000
TITLE_CHARS = 256
DESCRIPTION_CHARS = 4_096
FOOTER_CHARS = 2_048
EMBEDS_CHARS = 6_000
MAX_EMBEDS = 10
_MAX_USERS = 50
_LONGEST_INLINE_WAIT_S = 5.0
"""A bucket that refills later than this is reported as a retry instead of waited for on the courier."""

_COLOURS = ((logging.CRITICAL, 0x8B0000), (logging.ERROR, 0xE74C3C), (logging.WARNING, 0xE67E22),
            (logging.INFO, 0x3498DB))
_GREY = 0x95A5A6
_GREEN = 0x2ECC71
"""An all-clear's colour."""
_RETRY_CODES = frozenset({20016, 20028})
"""Slowmode and the channel's send rate limit."""
_REJECTED = {
    50035: "Discord says the message is malformed or over a limit (50035, a chatlog bug)",
    50006: "Discord says the message is empty (50006, a chatlog bug)",
    40005: "Discord says the message is too large (40005, a chatlog bug)",
    50109: "Discord says the body is not valid JSON (50109, a chatlog bug)",
    200000: "Discord's AutoMod blocked the message (200000)",
    240000: "Discord's harmful-links filter blocked the message (240000)",
}
_PERMANENT = {
    10015: "Discord says the webhook does not exist (10015: deleted?): copy the webhook URL again",
    50027: "Discord says the webhook token is invalid (50027): copy the webhook URL again",
    10003: "Discord says the webhook's channel does not exist (10003): create the webhook again",
    40001: "Discord says the request is unauthorized (40001): copy the webhook URL again",
    50001: "Discord says the webhook has no access to its channel (50001)",
    50013: "Discord says the webhook lacks a permission in its channel (50013)",
    220001: "Discord says the webhook posts to a forum channel, which needs a thread: add thread_id=",
}


def _chars(text: str) -> int:
    """Length in UTF-16 code units: at least the character count Discord checks. (Cuts use UTF-8
    bytes, `truncate_utf8`: never fewer than UTF-16 units, so a cut text always fits.)"""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _colour(level: int) -> int:
    return next((colour for floor, colour in _COLOURS if level >= floor), _GREY)


def _head_colour(digest: Digest) -> int:
    return _GREEN if digest.all_clear else _colour(digest.level)


def render(digest: Digest, limits: Limits = LIMITS, keyword: str | None = None) -> Payload:
    """Embeds for `digest` (a header embed, then one per group, coloured by severity) within Discord's
    limits and `limits.body_bytes`; ``content`` only for the configured mentions; `keyword` ends the
    footer."""
    message = _groups.fit(lambda budget: _message(digest, budget, keyword), limits.body_bytes, within_limits)
    return message if message is not None else _fallback(digest, limits, keyword)


def _message(digest: Digest, budget: _groups.Budget, keyword: str | None) -> Payload:
    shown = digest.groups[: min(budget.groups, MAX_EMBEDS - 1)]
    more = _text.more_line(digest.groups[len(shown) :])
    intro = [_text.summary_line(digest, _text.inert), _text.bold(_text.dropped_line(digest.dropped)),
             links.markdown_links(links.message_links(digest), _text.inert), more]
    header = _text.header_line(digest, _text.inert)
    head: dict[str, Any] = {"color": _head_colour(digest)}
    if _chars(header) <= TITLE_CHARS:
        head["title"] = header
    else:  # a header of wide characters: the description holds it whole
        intro.insert(0, _text.bold(header))
    description = "\n".join(line for line in intro if line)
    if description:
        head["description"] = description
    embeds = [head] + [_group(digest, group, budget) for group in shown]
    embeds[-1]["footer"] = {"text": _footer(digest, keyword)}
    return _with_mentions({"embeds": embeds}, digest.mentions)


def _footer(digest: Digest, keyword: str | None) -> str:
    return _text.with_keyword(_text.footer_line(digest, _text.inert), keyword) or "chatlog"


def _group(digest: Digest, group: GroupSummary, budget: _groups.Budget) -> dict[str, Any]:
    view = _groups.group_view(group, digest, budget, _text.inert)
    text = "\n".join(_groups.group_lines(view, _text.bold))
    if view.traceback:
        text += "\n```\n" + "\n".join(view.traceback) + "\n```"
    found = links.markdown_links(links.group_links(digest, group), _text.inert)
    return {"description": f"{text}\n{found}" if found else text, "color": _colour(group.sample.level)}


def _with_mentions(payload: Payload, mentions: tuple[str, ...]) -> Payload:
    """`payload` with ``allowed_mentions`` (always) and ``content`` naming the configured mentions."""
    ids = _text.mention_ids(mentions)
    users = [mention for mention in ids if mention.isascii() and mention.isdigit()][:_MAX_USERS]
    everyone = "all" in ids or "everyone" in ids
    here = "here" in ids and not everyone
    parts = (["@everyone"] if everyone else []) + (["@here"] if here else []) + [f"<@{u}>" for u in users]
    allowed: dict[str, Any] = {"parse": ["everyone"] if everyone or here else [], "users": users}
    if parts:
        payload["content"] = " ".join(parts)
    payload["allowed_mentions"] = allowed
    return payload


def within_limits(payload: Payload) -> bool:
    """True when `payload` keeps every Discord limit on content and embeds."""
    embeds = payload.get("embeds", [])
    if len(embeds) > MAX_EMBEDS or _chars(payload.get("content", "")) > CONTENT_CHARS:
        return False
    total = 0
    for embed in embeds:
        title, description = _chars(embed.get("title", "")), _chars(embed.get("description", ""))
        footer = _chars(embed.get("footer", {}).get("text", ""))
        if title > TITLE_CHARS or description > DESCRIPTION_CHARS or footer > FOOTER_CHARS:
            return False
        total += title + description + footer
    return total <= EMBEDS_CHARS


def _fallback(digest: Digest, limits: Limits, keyword: str | None) -> Payload:
    """One embed with the digest's summary (its header first): for digests whose smallest full message
    would not fit."""
    footer = _text.truncate_utf8(_footer(digest, keyword), 1_000)

    def make(text: str) -> Payload:
        embed = {"description": text or "…", "color": _head_colour(digest), "footer": {"text": footer}}
        return _with_mentions({"embeds": [embed]}, digest.mentions)

    summary = _text.truncate_utf8(_text.plain_summary(digest, _text.inert), 3_000)
    return _text.fit_text(make, summary, limits.body_bytes)


def bucket_wait(response: httpx.Response) -> float:
    """Seconds until this webhook's bucket refills when the answer says none is left, else 0."""
    if response.headers.get("x-ratelimit-remaining", "").strip() != "0":
        return 0.0
    try:
        return max(0.0, min(float(response.headers.get("x-ratelimit-reset-after", "0")), 3600.0))
    except ValueError:
        return 1.0


def _rate_limited_wait(response: httpx.Response, body: dict[str, Any] | None) -> float:
    """The wait a 429 names: ``retry_after`` in the body (seconds, float) or the ``Retry-After`` header.

    One report has the body in milliseconds; the header (whole seconds) is the smaller then, so the
    smaller of the two wins, and a body value without a header over an hour is read as milliseconds.
    """
    header = retry_after(response, -1.0)
    value = (body or {}).get("retry_after")
    seconds = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1.0
    if seconds > 3600.0 and header < 0:
        seconds /= 1000.0
    known = [wait for wait in (seconds, header) if wait >= 0]
    return min(min(known), 3600.0) if known else 5.0


def classify(response: httpx.Response) -> Outcome:
    """What Discord's answer means: 204 (or 200 with the message, for ``?wait=true``) is ok; 429 waits
    ``retry_after``; the JSON ``code`` of an error decides between permanent and rejected."""
    body = json_body(response)
    if response.status_code == 429:
        wait = _rate_limited_wait(response, body)
        scope = response.headers.get("x-ratelimit-scope", "")
        if (body or {}).get("global") is True:
            scope = "global"
        reason = f"Discord says we send too fast (HTTP 429{', ' + scope if scope else ''})"
        return Outcome("retry", wait, reason, trimmed(response))
    if response.status_code in (200, 204):
        return Outcome("ok", answer=trimmed(response))
    decided = classify_http(response)
    if decided is not None:
        return decided
    code = answer_code(body.get("code")) if body else None
    if body is None or code is None:
        if response.status_code == 413:
            return Outcome("rejected", 0.0, _REJECTED[40005], trimmed(response))
        return unexpected_answer(response, "Discord")
    return _coded(response, code, _text.answer_message(body.get("message")))


def _coded(response: httpx.Response, code: int, message: str) -> Outcome:
    answer = trimmed(response)
    if code in _RETRY_CODES:
        reason = f"Discord says the channel is rate limited ({code})"
        return Outcome("retry", retry_after(response, 5.0), reason, answer)
    if code in _REJECTED:
        return Outcome("rejected", 0.0, _REJECTED[code], answer)
    if code in _PERMANENT:
        return Outcome("permanent", 0.0, _PERMANENT[code], answer)
    kind: Literal["rejected", "permanent"] = "rejected" if response.status_code == 400 else "permanent"
    reason = f"Discord answered HTTP {response.status_code}, code {code}: {message or 'no message'}"
    return Outcome(kind, 0.0, reason, answer)


class Discord(Webhook):
    """A Discord channel webhook, addressed by its id and token (the token is the secret)."""

    names = ("discord",)
    title = "Discord"
    signs = False
    origins = (_ORIGIN,)
    hosts = ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com")
    paths = (_PATH,)
    example = "discord://123456789012345678/WEBHOOK_TOKEN"
    options = (Option("thread_id", "post into this thread of the channel, e.g. thread_id=1234567890"),)
    forms = (("Discord webhook", ("https://discord.com/api/webhooks/ID/TOKEN", "discord://ID/TOKEN")),)
    escape = staticmethod(_text.inert)

    def __init__(
        self,
        webhook_id: str,
        token: str,
        *,
        keyword: str | None = None,
        thread_id: str | None = None,
        origin: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`origin` (``scheme://host[:port]``) replaces Discord's own host; `clock` and `sleep` time the
        wait for an empty rate-limit bucket (tests pass their own)."""
        if not (webhook_id.isascii() and webhook_id.isdigit()):
            raise ValueError("a Discord webhook id is a number (the part after /webhooks/)"
                             f"; e.g. {self.example}")
        if thread_id is not None and not (thread_id.isascii() and thread_id.isdigit()):
            raise ValueError(f"thread_id must be the thread's number; e.g. {self.example}?thread_id=123")
        super().__init__(token, keyword=keyword, origin=origin, path=f"{_PATH}{webhook_id}/")
        self.webhook_id = webhook_id
        self.thread_id = thread_id
        self._bucket_clock = clock
        self._sleep = sleep
        self._bucket_refills_at = -1.0

    @classmethod
    def credentials(cls, url: urllib.parse.SplitResult) -> tuple[str, ...]:
        """The webhook token: the path of ``discord://ID/TOKEN``, the last part of the webhook URL."""
        if url.scheme.lower() in ("http", "https"):
            found = _URL.fullmatch(url.path)
            return (found.group(2),) if found else ()
        token = urllib.parse.unquote(url.path.strip("/"))
        return (token,) if token else ()

    @classmethod
    def from_target(cls, target: Target) -> Discord:
        """``discord://ID/TOKEN`` or ``https://discord.com/api/webhooks/ID/TOKEN`` (any host, that path)."""
        origin = target_origin(target, cls.example)
        url = target.url
        if url.scheme in ("http", "https"):
            found = _URL.fullmatch(url.path)
            if found is None:
                raise ValueError(f"a Discord webhook URL looks like {_ORIGIN}{_PATH}ID/TOKEN"
                                 f"; e.g. {cls.example}")
            webhook_id, token = found.groups()
        else:
            webhook_id, token = url.netloc, url.path.strip("/")
        return cls(webhook_id, token, keyword=target.keyword, thread_id=target.query.pop("thread_id", None),
                   origin=origin)

    def render_text(self, text: str) -> Payload:
        """``content`` only (≤ 2,000 characters), mentioning nobody."""
        keyword = _text.no_tags(f"\n{self.keyword}") if self.keyword and self.keyword not in text else ""
        content = _text.truncate_utf8(_text.no_tags(text), CONTENT_CHARS - _chars(keyword)) + keyword
        return {"content": content or "(empty message)", "allowed_mentions": {"parse": []}}

    def post(self, client: httpx.Client, payload: Payload) -> httpx.Response | Outcome:
        """Wait for an empty bucket to refill (a retry beyond 5 s), then POST with ``?wait=true``."""
        wait = self._bucket_refills_at - self._bucket_clock()
        if wait > _LONGEST_INLINE_WAIT_S:
            return Outcome("retry", wait, f"Discord's rate-limit bucket for this webhook is empty for "
                           f"{wait:.1f} s more")
        if wait > 0:
            self._sleep(wait)
        params = {"wait": "true", **({"thread_id": self.thread_id} if self.thread_id else {})}
        answer = post_json(client, self.endpoint, dict(payload), params=params)
        if not isinstance(answer, Outcome):  # an answer came (httpx is imported on the courier thread)
            self._bucket_refills_at = self._bucket_clock() + bucket_wait(answer)
        return answer
