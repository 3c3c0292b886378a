"""Fake Discord webhook: ``POST /api/webhooks/ID/TOKEN[?wait=true]`` (reference 6.2).

Checks what Discord checks: the webhook id and token, the body (content or embeds), the limits on
content (2,000 characters), embeds (≤ 10; title 256, description 4,096, footer 2,048, ≤ 25 fields of
256/1,024, author 256; ≤ 6,000 characters across all embeds) and ``allowed_mentions``. Characters are
counted as Discord's API counts them (code points). Rate limits: a bucket of 5 requests per 2 s per
webhook, announced in ``X-RateLimit-*`` headers on every answer, and 30 messages a minute per channel;
over either, HTTP 429 with ``{"message", "retry_after", "global"}`` and ``Retry-After``.

`notified` says who a message would notify: only ``content`` pings, and only what ``allowed_mentions``
allows (everything, when the field is missing); `live_markup` what log text could have made live.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

from chatlog.testing import rules
from chatlog.testing.rules import Answer, BotSettings, JSONObject, RateState, Request, dig, dig_str

PATH = re.compile(r"/api(?:/v\d+)?/webhooks/(\d+)/([^/]+)")
CONTENT_CHARS = 2_000
EMBED_LIMITS = {"title": 256, "description": 4_096}
EMBEDS_CHARS = 6_000
MAX_EMBEDS = 10
BUCKET_LIMIT = 5
BUCKET_S = 2.0
CHANNEL_PER_MINUTE = 30
_MENTION = re.compile(r"@(everyone|here)|<@!?(\d+)>|<@&(\d+)>")


def webhook_id(token: str) -> str:
    """The webhook id (a snowflake) that belongs to `token` on the fake."""
    return str(10**17 + int(hashlib.sha256(token.encode()).hexdigest()[:15], 16) % (9 * 10**17))


def token_of(path: str, query: Mapping[str, str]) -> str | None:
    """The webhook token of an execute-webhook path, or None for any other path."""
    found = PATH.fullmatch(path.rstrip("/"))
    return found.group(2) if found else None


def new_token() -> str:
    """A token shaped like Discord's (68 URL-safe characters)."""
    return secrets.token_urlsafe(51)[:68]


def url_of(base_url: str, bot: BotSettings) -> str:
    """The destination string chatlog accepts: the webhook URL itself."""
    return f"{base_url}/api/webhooks/{webhook_id(bot.token)}/{bot.token}"


def check_settings(bot: BotSettings) -> None:
    """Reject settings a Discord webhook cannot have."""
    if bot.secret is not None or bot.keyword is not None:
        raise ValueError("Discord webhooks have no secret or keyword: add_bot('discord')")


def _error(status: int, code: int, message: str, **more: Any) -> Answer:
    return Answer({"message": message, "code": code, **more}, status=status)


UNKNOWN_WEBHOOK = _error(404, 10015, "Unknown Webhook")
EMPTY = _error(400, 50006, "Cannot send an empty message")
NOT_JSON = _error(400, 50109, "The request body contains invalid JSON.")


def judge(request: Request, bot: BotSettings | None, state: RateState, now: float) -> Answer:
    """Discord's answer to one execute-webhook request."""
    found = PATH.fullmatch(request.path.rstrip("/"))
    if bot is None or (found is not None and found.group(1) != webhook_id(bot.token)):
        return UNKNOWN_WEBHOOK
    if bot.rate_limit:
        limited = _rate_limited(state, now)
        if limited is not None:
            return limited
    payload = request.payload
    if payload is None:
        return NOT_JSON
    problems = problems_of(payload)
    if problems:
        return _error(400, 50035, "Invalid Form Body", errors=problems)
    if not payload.get("content") and not payload.get("embeds"):
        return EMPTY
    state.sent.append(now)
    headers = _bucket_headers(state, now)
    if request.query.get("wait", "").lower() == "true":
        return Answer(_message(payload, bot), 200, headers, accepted=True)
    return Answer({}, 204, headers, accepted=True, text="")


def _rate_limited(state: RateState, now: float) -> Answer | None:
    in_bucket = [at for at in state.sent if at > now - BUCKET_S]
    if len(in_bucket) >= BUCKET_LIMIT:
        wait = in_bucket[-BUCKET_LIMIT] + BUCKET_S - now
        return _too_many(wait, "user", _bucket_headers(state, now))
    if state.count_since(now - 60.0) >= CHANNEL_PER_MINUTE:
        in_minute = [at for at in state.sent if at > now - 60.0]
        return _too_many(in_minute[-CHANNEL_PER_MINUTE] + 60.0 - now, "shared", ())
    return None


def _too_many(wait: float, scope: str, headers: tuple[tuple[str, str], ...]) -> Answer:
    body = {"message": "You are being rate limited.", "retry_after": round(wait, 3), "global": False}
    more = (("Retry-After", str(math.ceil(wait))), ("X-RateLimit-Scope", scope))
    return Answer(body, 429, (*headers, *more))


def _bucket_headers(state: RateState, now: float) -> tuple[tuple[str, str], ...]:
    in_bucket = [at for at in state.sent if at > now - BUCKET_S]
    reset_after = (in_bucket[0] + BUCKET_S - now) if in_bucket else BUCKET_S
    return (
        ("X-RateLimit-Limit", str(BUCKET_LIMIT)),
        ("X-RateLimit-Remaining", str(max(0, BUCKET_LIMIT - len(in_bucket)))),
        ("X-RateLimit-Reset", f"{now + reset_after:.3f}"),
        ("X-RateLimit-Reset-After", f"{reset_after:.3f}"),
        ("X-RateLimit-Bucket", "fake-webhook-bucket"),
    )


def problems_of(payload: JSONObject) -> dict[str, str]:
    """Discord's 50035 complaints about a body, by JSON path ({} when the body is valid)."""
    problems: dict[str, str] = {}
    content = payload.get("content")
    if content is not None and (not isinstance(content, str) or len(content) > CONTENT_CHARS):
        problems["content"] = f"Must be {CONTENT_CHARS} or fewer in length."
    embeds = payload.get("embeds", [])
    if not isinstance(embeds, list) or len(embeds) > MAX_EMBEDS:
        problems["embeds"] = f"Must be {MAX_EMBEDS} or fewer in length."
        return problems
    total = 0
    for index, embed in enumerate(embeds):
        total += _embed_problems(embed, f"embeds.{index}", problems)
    if total > EMBEDS_CHARS:
        problems["embeds"] = f"Embed size exceeds maximum size of {EMBEDS_CHARS}"
    _mention_problems(payload.get("allowed_mentions"), problems)
    return problems


def _embed_problems(embed: object, where: str, problems: dict[str, str]) -> int:
    """Records the problems of one embed; returns the characters it counts toward the 6,000."""
    if not isinstance(embed, dict):
        problems[where] = "Must be an object."
        return 0
    texts = {key: embed.get(key) for key in EMBED_LIMITS}
    texts["footer.text"] = dig(embed, "footer", "text")
    texts["author.name"] = dig(embed, "author", "name")
    limits = {**EMBED_LIMITS, "footer.text": 2_048, "author.name": 256}
    fields = embed.get("fields") or []
    if not isinstance(fields, list) or len(fields) > 25 or not all(isinstance(f, dict) for f in fields):
        problems[f"{where}.fields"] = "Must be 25 or fewer objects."
        fields = []
    for index, field in enumerate(fields):
        texts[f"fields.{index}.name"], texts[f"fields.{index}.value"] = field.get("name"), field.get("value")
        limits[f"fields.{index}.name"], limits[f"fields.{index}.value"] = 256, 1_024
    count = 0
    for key, value in texts.items():
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > limits[key]:
            problems[f"{where}.{key}"] = f"Must be {limits[key]} or fewer in length."
        else:
            count += len(value)
    colour = embed.get("color")
    if colour is not None and (not isinstance(colour, int) or isinstance(colour, bool)
                               or not 0 <= colour <= 0xFFFFFF):
        problems[f"{where}.color"] = "Int value should be less than or equal to 16777215."
    return count


def _mention_problems(allowed: object, problems: dict[str, str]) -> None:
    if allowed is None:
        return
    if not isinstance(allowed, dict):
        problems["allowed_mentions"] = "Must be an object."
        return
    parse, users = allowed.get("parse", []), allowed.get("users", [])
    if not isinstance(parse, list) or not set(parse) <= {"everyone", "users", "roles"}:
        problems["allowed_mentions.parse"] = "Value must be one of ('everyone', 'users', 'roles')."
    elif "users" in parse and users:
        problems["allowed_mentions"] = "parse:[\"users\"] and users: [ids] are mutually exclusive."
    if not isinstance(users, list) or len(users) > 100:
        problems["allowed_mentions.users"] = "Must be 100 or fewer in length."


def notified(payload: JSONObject) -> tuple[str, ...]:
    """Who `payload` would notify: ``all`` (``@everyone``), ``here``, user ids and ``&``role ids.

    Only ``content`` pings; ``allowed_mentions`` limits it (absent: everything in content pings).
    """
    content = payload.get("content")
    if not isinstance(content, str):
        return ()
    allowed = payload.get("allowed_mentions")
    parse = set(allowed.get("parse", [])) if isinstance(allowed, dict) else {"everyone", "users", "roles"}
    users = set(allowed.get("users", [])) if isinstance(allowed, dict) else set()
    roles = set(allowed.get("roles", [])) if isinstance(allowed, dict) else set()
    found: list[str] = []
    for match in _MENTION.finditer(content):
        everyone, user, role = match.groups()
        if everyone and "everyone" in parse:
            found.append("all" if everyone == "everyone" else "here")
        elif user and ("users" in parse or user in users):
            found.append(user)
        elif role and ("roles" in parse or role in roles):
            found.append(f"&{role}")
    return tuple(dict.fromkeys(found))


def mentionable(mention: str) -> bool:
    """True for a configured mention Discord can notify: ``all``/``@all``, ``here``, or a user id."""
    return mention in ("all", "@all", "here") or (mention.isascii() and mention.isdigit())


def live_markup(payload: JSONObject) -> list[str]:
    """Links, tags and open code blocks in the embeds; anything in ``content`` beyond mentions."""
    texts = [dig_str(embed, key) for embed in payload.get("embeds") or [] for key in ("title", "description")]
    texts += [dig_str(embed, "footer", "text") for embed in payload.get("embeds") or []]
    problems = [f"an unclosed code block in {text[:80]!r}" for text in texts if text.count("```") % 2]
    for text in texts:
        problems += rules.markdown_problems(text)
    content = _MENTION.sub("", dig_str(payload, "content"))
    problems += rules.markdown_problems(content)
    return problems


def _message(payload: JSONObject, bot: BotSettings) -> JSONObject:
    """The message object Discord returns for ``?wait=true``, with the mentions it notified."""
    pings = notified(payload)
    return {
        "id": str(10**18 + secrets.randbelow(10**17)),
        "type": 0,
        "channel_id": str(int(webhook_id(bot.token)) + 1),
        "webhook_id": webhook_id(bot.token),
        "content": payload.get("content") or "",
        "embeds": payload.get("embeds") or [],
        "mention_everyone": "all" in pings or "here" in pings,
        "mentions": [{"id": ping} for ping in pings if ping.isdigit()],
        "mention_roles": [ping[1:] for ping in pings if ping.startswith("&")],
    }


def text_of(payload: JSONObject) -> str:
    """The human-readable text of a Discord message: content, then each embed's title, text, footer."""
    parts = [dig_str(payload, "content")]
    for embed in payload.get("embeds") or []:
        if isinstance(embed, dict):
            parts += [dig_str(embed, key) for key in ("title", "description")]
            parts.append(dig_str(embed, "footer", "text"))
    return "\n".join(part for part in parts if part)


RULES = rules.rules_of_module(__name__, ("discord",))
