"""Fake Slack incoming webhook: ``POST /services/T…/B…/SECRET`` (reference 6.1).

Answers like Slack, in plain text: ``ok`` with HTTP 200, or an error word with its status
(``invalid_payload``, ``no_text``, ``too_many_attachments``, ``invalid_blocks``, ``msg_blocks_too_long``
400; ``invalid_token`` 403; ``no_service`` 404). Checks the Block Kit limits (≤ 50 blocks, ``section``
text ≤ 3,000, ``header`` ≤ 150, context ≤ 10 elements, about 12,000 characters of block text in all).
Rate: about one message a second with short bursts: more than 3 in a second or 60 in a minute gets
HTTP 429 ``rate_limited`` with ``Retry-After``.

`notified` says who a message would notify and `links` what it would link: only ``mrkdwn`` text parses
``<!channel>``, ``<!here>``, ``<!everyone>``, ``<@U…>``, ``<!subteam^S…>`` and ``<http…>``; a bare
``@channel`` pings only with ``link_names``. `live_markup` lists any other ``<…>`` and open code blocks.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

from chatlog.testing.rules import Answer, BotSettings, JSONObject, RateState, Request, rules_of_module

PATH = re.compile(r"/services/([^/]+)/([^/]+)/([^/]+)")
MAX_BLOCKS = 50
TEXT_LIMITS = {"section": 3_000, "context": 3_000, "header": 150}
BLOCKS_CHARS = 12_000
BLOCK_TYPES = frozenset({"section", "divider", "context", "header", "image", "actions", "rich_text"})
PER_SECOND = 3
PER_MINUTE = 60
_SPECIAL = re.compile(r"<([^<>|]+)(?:\|[^<>]*)?>")
_PING = re.compile(r"!channel|!here|!everyone|@[UW][A-Z0-9]+|!subteam\^[A-Z0-9]+")
_BARE = re.compile(r"(?<![\w@])@(channel|here|everyone)\b")


def ids_of(token: str) -> tuple[str, str]:
    """The workspace (T…) and webhook (B…) ids that belong to `token` on the fake."""
    digest = hashlib.sha256(token.encode()).hexdigest().upper()
    return f"T{digest[:10]}", f"B{digest[10:20]}"


def token_of(path: str, query: Mapping[str, str]) -> str | None:
    """The webhook secret of a ``/services/T/B/SECRET`` path, or None for any other path."""
    found = PATH.fullmatch(path.rstrip("/"))
    return found.group(3) if found else None


def new_token() -> str:
    """A secret shaped like Slack's (24 letters and digits)."""
    return secrets.token_hex(12)


def url_of(base_url: str, bot: BotSettings) -> str:
    """The destination string chatlog accepts: the webhook URL itself."""
    team, webhook = ids_of(bot.token)
    return f"{base_url}/services/{team}/{webhook}/{bot.token}"


def check_settings(bot: BotSettings) -> None:
    """Reject settings a Slack webhook cannot have."""
    if bot.secret is not None or bot.keyword is not None:
        raise ValueError("Slack webhooks have no secret or keyword: add_bot('slack')")


def _word(status: int, word: str, *headers: tuple[str, str]) -> Answer:
    return Answer({}, status, (("Content-Type", "text/html"), *headers), text=word)


def judge(request: Request, bot: BotSettings | None, state: RateState, now: float) -> Answer:
    """Slack's answer to one incoming-webhook request."""
    if bot is None:
        return _word(404, "no_service")
    found = PATH.fullmatch(request.path.rstrip("/"))
    if found is not None and found.groups()[:2] != ids_of(bot.token):
        return _word(403, "invalid_token")
    if bot.rate_limit:
        limited = _rate_limited(state, now)
        if limited is not None:
            return limited
    problem = problem_of(request.payload)
    if problem is not None:
        return _word(400, problem)
    state.sent.append(now)
    return Answer({}, 200, (("Content-Type", "text/html"),), accepted=True, text="ok")


def _rate_limited(state: RateState, now: float) -> Answer | None:
    in_second = [at for at in state.sent if at > now - 1.0]
    if len(in_second) >= PER_SECOND:
        return _word(429, "rate_limited", ("Retry-After", "1"))
    if state.count_since(now - 60.0) >= PER_MINUTE:
        in_minute = [at for at in state.sent if at > now - 60.0]
        wait = in_minute[-PER_MINUTE] + 60.0 - now
        return _word(429, "rate_limited", ("Retry-After", str(max(1, math.ceil(wait)))))
    return None


def problem_of(payload: JSONObject | None) -> str | None:
    """Slack's error word for a body, or None when Slack would post it."""
    if payload is None:
        return "invalid_payload"
    text, blocks, attachments = payload.get("text"), payload.get("blocks"), payload.get("attachments")
    if text is not None and not isinstance(text, str):
        return "invalid_payload"
    if attachments is not None and (not isinstance(attachments, list) or len(attachments) > 100):
        return "too_many_attachments"
    inner = [item.get("blocks") for item in attachments or [] if isinstance(item, dict)]
    if any(not isinstance(found, list) or not found for found in inner if found is not None):
        return "invalid_blocks"
    if blocks is None and not any(inner):
        return None if text or attachments else "no_text"
    if blocks is not None and (not isinstance(blocks, list) or not blocks or len(blocks) > MAX_BLOCKS):
        return "invalid_blocks"
    total = 0
    for block in _blocks(payload):
        counted = _block_chars(block)
        if counted is None:
            return "invalid_blocks"
        total += counted
    return "msg_blocks_too_long" if total > BLOCKS_CHARS else None


def _block_chars(block: object) -> int | None:
    """The characters of text in one block, or None when the block is invalid."""
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        return None
    kind = block["type"]
    objects: list[Any] = [block["text"]] if "text" in block else []
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 0 < len(elements) <= 10:
            return None
        objects = elements
    if kind in ("section", "header") and not objects:
        return None
    count = 0
    for item in objects:
        if not _valid_text(item, TEXT_LIMITS.get(kind, 3_000), plain_only=kind == "header"):
            return None
        count += len(item["text"])
    return count


def _valid_text(item: object, limit: int, *, plain_only: bool) -> bool:
    if not isinstance(item, dict) or item.get("type") not in ("plain_text", "mrkdwn"):
        return False
    if plain_only and item["type"] != "plain_text":
        return False
    text = item.get("text")
    return isinstance(text, str) and 0 < len(text) <= limit


def _blocks(payload: JSONObject) -> list[Any]:
    """The message's blocks, then those of its attachments (which show a coloured bar)."""
    inner = [item.get("blocks") or [] for item in payload.get("attachments") or [] if isinstance(item, dict)]
    return [*(payload.get("blocks") or []), *(block for found in inner for block in found)]


def _mrkdwn_texts(payload: JSONObject) -> Iterator[str]:
    """Every text Slack parses as mrkdwn: ``text`` and the mrkdwn text objects of the blocks."""
    if isinstance(payload.get("text"), str):
        yield payload["text"]
    for block in _blocks(payload):
        if not isinstance(block, dict):
            continue
        objects = [block.get("text"), *(block.get("elements") or []), *(block.get("fields") or [])]
        for item in objects:
            if isinstance(item, dict) and item.get("type") == "mrkdwn" and isinstance(item.get("text"), str):
                yield item["text"]


def notified(payload: JSONObject) -> tuple[str, ...]:
    """Who `payload` would notify: ``all`` (``<!channel>``, ``<!everyone>``), ``here``, user ids
    (``<@U…>``) and user-group ids (``<!subteam^S…>``)."""
    found: list[str] = []
    for text in _mrkdwn_texts(payload):
        found += [m.group(1) for m in _SPECIAL.finditer(text) if _PING.fullmatch(m.group(1))]
        if payload.get("link_names") in (True, 1, "1", "true"):
            found += [f"!{m.group(1)}" for m in _BARE.finditer(text)]
    named = {"!channel": "all", "!everyone": "all", "!here": "here"}
    return tuple(dict.fromkeys(named.get(m) or m.removeprefix("@").removeprefix("!subteam^") for m in found))


def mentionable(mention: str) -> bool:
    """True for a configured mention Slack can notify: ``all``/``@all``, ``here``, a user or group id."""
    return mention in ("all", "@all", "here") or re.fullmatch(r"[UWS][A-Z0-9]{2,}", mention) is not None


def live_markup(payload: JSONObject) -> list[str]:
    """Any ``<…>`` markup that is not a mention (links, channel links, dates) and open code blocks."""
    problems = []
    for text in _mrkdwn_texts(payload):
        markup = [m.group(1) for m in _SPECIAL.finditer(text) if not _PING.fullmatch(m.group(1))]
        problems += [f"markup <{found[:40]}>" for found in markup]
        if text.count("```") % 2:
            problems.append(f"an unclosed code block in {text[:80]!r}")
    return problems


def links(payload: JSONObject) -> tuple[str, ...]:
    """The links `payload` would show as ``<url|label>`` or ``<url>`` markup."""
    found = [m.group(1) for text in _mrkdwn_texts(payload) for m in _SPECIAL.finditer(text)]
    return tuple(link for link in found if re.match(r"(?:https?|mailto|ftp|slack):", link))


def text_of(payload: JSONObject) -> str:
    """The text of the blocks (or ``text`` without blocks) as sent: ``&amp;`` is what Slack shows as ``&``."""
    texts: list[Any] = []
    for block in _blocks(payload):
        if isinstance(block, dict):
            texts += [block.get("text"), *(block.get("elements") or [])]
    shown = [item["text"] for item in texts if isinstance(item, dict) and isinstance(item.get("text"), str)]
    if not shown and isinstance(payload.get("text"), str):
        shown = [payload["text"]]
    return "\n".join(shown)


def shown_text(payload: JSONObject) -> str:
    """What a reader sees: `text_of` with Slack's three entities decoded."""
    return text_of(payload).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


RULES = rules_of_module(__name__, ("slack",))
