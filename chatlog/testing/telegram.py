"""Fake Telegram Bot API: ``POST /bot<ID>:<TOKEN>/sendMessage`` (reference 6.3).

Each fake bot is a member of one supergroup (``-100…``, in its URL); the same group's id from before it
became a supergroup (``-…`` without ``100``) answers ``migrate_to_chat_id``, any other chat "chat not
found". The text is parsed as Telegram parses HTML (the tags it supports, properly nested; ``&``,
``<``, ``>`` only as entities; only ``&lt; &gt; &amp; &quot;`` and numeric entities) and must be 1-4,096
UTF-16 code units *after* parsing. More than 20 messages a minute in a chat get HTTP 429 with
``parameters.retry_after``. Answers are Telegram's: ``{"ok": true, "result": Message}`` with the
message's entities, or ``{"ok": false, "error_code", "description"[, "parameters"]}``.

`notified` says who a message would notify: ``@username`` mentions Telegram detects in the text (not
inside ``pre``/``code``/links) and text mentions (``<a href="tg://user?id=…">``); `live_markup` lists
what else would be live (links, a text Telegram would refuse to parse).
"""

from __future__ import annotations

import hashlib
import html
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatlog.testing.rules import Answer, BotSettings, JSONObject, RateState, Request, rules_of_module

PATH = re.compile(r"/bot([^/]*)/([A-Za-z]+)")
TEXT_CHARS = 4_096
PER_MINUTE = 20
TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span",
                  "tg-spoiler", "tg-emoji", "blockquote"})
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_KINDS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
          "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough"}
_MARKUP = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)"
                     r"((?:\s+[A-Za-z-]+(?:=(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*>"
                     r"|&(#\d{1,7}|#x[0-9A-Fa-f]{1,6}|[A-Za-z]+);|[<>&]")
_HREF = re.compile(r"""href=(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_USERNAME = re.compile(r"@?[A-Za-z][A-Za-z0-9_]{4,31}")
_AUTO_MENTION = re.compile(r"(?<![\w@/])@([A-Za-z][A-Za-z0-9_]{4,31})\b")


def bot_id(token: str) -> str:
    """The numeric bot id (the part before ``:``) that belongs to `token` on the fake."""
    return str(1_000_000_000 + int(hashlib.sha256(token.encode()).hexdigest()[:8], 16) % 1_000_000_000)


def chat_of(token: str) -> int:
    """The id of the supergroup the fake bot is a member of."""
    return -(10**12 + int(bot_id(token)))


def old_chat_of(token: str) -> int:
    """The same group's id from before it was upgraded to a supergroup (answers migrate_to_chat_id)."""
    return -int(bot_id(token))


def token_of(path: str, query: Mapping[str, str]) -> str | None:
    """The secret half of a ``/bot<ID>:<TOKEN>/<method>`` path ("" without one), or None for other paths."""
    found = PATH.fullmatch(path.rstrip("/"))
    return found.group(1).partition(":")[2] if found else None


def new_token() -> str:
    """A secret shaped like the part of a Telegram bot token after the ``:`` (35 characters)."""
    return secrets.token_urlsafe(27)[:35]


def url_of(base_url: str, bot: BotSettings) -> str:
    """The destination string chatlog accepts: the ``sendMessage`` URL with the bot's group as chat_id."""
    return f"{base_url}/bot{bot_id(bot.token)}:{bot.token}/sendMessage?chat_id={chat_of(bot.token)}"


def check_settings(bot: BotSettings) -> None:
    """Reject settings a Telegram bot cannot have."""
    if bot.secret is not None or bot.keyword is not None:
        raise ValueError("Telegram bots have no secret or keyword: add_bot('telegram')")


def _error(code: int, description: str, **parameters: Any) -> Answer:
    body: JSONObject = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Answer(body, status=code)


UNAUTHORIZED = _error(401, "Unauthorized")
NOT_FOUND = _error(404, "Not Found")


def judge(request: Request, bot: BotSettings | None, state: RateState, now: float) -> Answer:
    """Telegram's answer to one Bot API request."""
    found = PATH.fullmatch(request.path.rstrip("/"))
    if found is not None and ":" not in found.group(1):
        return NOT_FOUND
    if bot is None or (found is not None and found.group(1).partition(":")[0] != bot_id(bot.token)):
        return UNAUTHORIZED
    if found is not None and found.group(2) != "sendMessage":
        return NOT_FOUND
    params = {**request.query, **(request.payload or {})}
    if found is None:  # judged without a URL (the demo, the registry's checks): the bot's own chat
        params.setdefault("chat_id", chat_of(bot.token))
    problem = _chat_problem(params.get("chat_id"), bot)
    if problem is not None:
        return problem
    if bot.rate_limit and state.count_since(now - 60.0) >= PER_MINUTE:
        wait = max(1, int([at for at in state.sent if at > now - 60.0][-PER_MINUTE] + 60.0 - now + 0.999))
        return _error(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
    parsed = parse(params.get("text"), params.get("parse_mode"))
    if isinstance(parsed, str):
        return _error(400, f"Bad Request: {parsed}")
    state.sent.append(now)
    result = {"message_id": len(state.sent), "date": int(now), "text": parsed.text,
              "chat": {"id": chat_of(bot.token), "type": "supergroup"}, "entities": parsed.entities}
    return Answer({"ok": True, "result": result}, accepted=True)


def _chat_problem(chat: object, bot: BotSettings) -> Answer | None:
    if chat is None or chat == "":
        return _error(400, "Bad Request: chat_id is empty")
    if str(chat) == str(old_chat_of(bot.token)):
        return _error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                      migrate_to_chat_id=chat_of(bot.token))
    if str(chat) != str(chat_of(bot.token)):
        return _error(400, "Bad Request: chat not found")
    return None


@dataclass(slots=True)
class Parsed:
    """A message's text as Telegram shows it, with its entities (offsets in UTF-16 code units)."""

    text: str = ""
    entities: list[JSONObject] = field(default_factory=list)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def parse(text: object, parse_mode: object) -> Parsed | str:
    """`text` as Telegram parses it, or the reason it refuses it (after ``Bad Request: ``)."""
    if not isinstance(text, str) or not text.strip():
        return "message text is empty"
    if parse_mode in (None, ""):
        parsed = Parsed(text)
    elif parse_mode == "HTML":
        html_parsed = _parse_html(text)
        if isinstance(html_parsed, str):
            return f"can't parse entities: {html_parsed}"
        parsed = html_parsed
    else:
        return "unsupported parse_mode"  # the fake speaks HTML only (MarkdownV2 is not chatlog's)
    if not parsed.text.strip():
        return "message text is empty"
    if _units(parsed.text) > TEXT_CHARS:
        return "message is too long"
    parsed.entities += _auto_mentions(parsed)
    return parsed


def _parse_html(text: str) -> Parsed | str:
    parsed, position = Parsed(), 0
    stack: list[tuple[str, int, str]] = []
    for match in _MARKUP.finditer(text):
        parsed.text += text[position : match.start()]
        position = match.end()
        closing, tag, attributes, entity = match.groups()
        offset = len(text[: match.start()].encode())
        if tag is not None:
            problem = _tag(parsed, stack, bool(closing), tag.lower(), attributes or "", offset)
            if problem:
                return problem
        elif entity is not None:
            char = _entity(entity)
            if char is None:
                return f"Unsupported HTML entity \"&{entity};\" at byte offset {offset}"
            parsed.text += char
        else:
            what = "start tag" if match.group() == "<" else "character"
            return f"Unexpected {what} \"{match.group()}\" at byte offset {offset}"
    parsed.text += text[position:]
    if stack:
        return f"Can't find end tag corresponding to start tag \"{stack[-1][0]}\""
    return parsed


def _tag(parsed: Parsed, stack: list[tuple[str, int, str]], closing: bool, tag: str, attributes: str,
         offset: int) -> str:
    if tag not in TAGS:
        return f"Unsupported start tag \"{tag}\" at byte offset {offset}"
    if not closing:
        href = _HREF.search(attributes)
        link = next((group for group in href.groups() if group is not None), "") if href else ""
        if tag == "a" and not link:
            return f"Tag \"a\" must have an href at byte offset {offset}"
        stack.append((tag, _units(parsed.text), html.unescape(link)))
        return ""
    if not stack or stack[-1][0] != tag:
        return f"Unmatched end tag at byte offset {offset}, expected \"</{stack[-1][0] if stack else ''}>\""
    _, start, link = stack.pop()
    kind = _KINDS.get(tag, "spoiler" if "spoiler" in tag else tag)
    entity: JSONObject = {"type": kind, "offset": start, "length": _units(parsed.text) - start}
    if tag == "a":
        user = re.fullmatch(r"tg://user\?id=(\d+)", link)
        entity = {**entity, "type": "text_mention", "user": {"id": int(user.group(1))}} if user else {
            **entity, "type": "text_link", "url": link}
    parsed.entities.append(entity)
    return ""


def _entity(name: str) -> str | None:
    if name.startswith("#"):
        number = int(name[2:], 16) if name[1:2] in ("x", "X") else int(name[1:])
        return chr(number) if 0 < number < 0x110000 and not 0xD800 <= number < 0xE000 else None
    return _NAMED.get(name)


def _auto_mentions(parsed: Parsed) -> list[JSONObject]:
    """The ``@username`` mentions Telegram detects: not inside code, pre or links."""
    covered = [(e["offset"], e["offset"] + e["length"]) for e in parsed.entities
               if e["type"] in ("code", "pre", "text_link", "text_mention")]
    found = []
    for match in _AUTO_MENTION.finditer(parsed.text):
        start = _units(parsed.text[: match.start()])
        if not any(low <= start < high for low, high in covered):
            found.append({"type": "mention", "offset": start, "length": _units(match.group())})
    return found


def notified(payload: JSONObject) -> tuple[str, ...]:
    """Who `payload` would notify: the username of each mention, the user id of each text mention."""
    parsed = parse(payload.get("text"), payload.get("parse_mode"))
    if isinstance(parsed, str):
        return ()
    found = []
    for entity in parsed.entities:
        if entity["type"] == "text_mention":
            found.append(str(entity["user"]["id"]))
        elif entity["type"] == "mention":
            found.append(entity_text(parsed.text, entity).removeprefix("@"))
    return tuple(dict.fromkeys(found))


def mentionable(mention: str) -> bool:
    """True for a configured mention Telegram can notify: a user id or a username (no ``@all``)."""
    return mention.isascii() and (mention.isdigit() or _USERNAME.fullmatch(mention) is not None)


def live_markup(payload: JSONObject) -> list[str]:
    """A text Telegram would refuse to parse, and any link (chatlog emits none)."""
    parsed = parse(payload.get("text"), payload.get("parse_mode"))
    if isinstance(parsed, str):
        return [parsed]
    return [f"a {e['type']} entity" for e in parsed.entities if e["type"] in ("text_link", "custom_emoji")]


def entity_text(text: str, entity: JSONObject) -> str:
    """The text an entity covers (offsets and lengths are UTF-16 code units)."""
    units = text.encode("utf-16-le", "surrogatepass")
    start, end = entity["offset"] * 2, (entity["offset"] + entity["length"]) * 2
    return units[start:end].decode("utf-16-le", "surrogatepass")


def text_of(payload: JSONObject) -> str:
    """The message's text as sent (HTML, entities and all); `shown_text` is what a reader sees."""
    text = payload.get("text")
    return text if isinstance(text, str) else ""


def shown_text(payload: JSONObject) -> str:
    """What a reader sees: the text after HTML parsing (the raw text when Telegram would refuse it)."""
    parsed = parse(payload.get("text"), payload.get("parse_mode"))
    return parsed.text if isinstance(parsed, Parsed) else text_of(payload)


RULES = rules_of_module(__name__, ("telegram",))
