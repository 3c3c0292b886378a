"""Fake Feishu / Lark custom group bot: ``POST /open-apis/bot/v2/hook/{token}`` (reference 2.3, 2.8, 2.10)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from chatlog.testing import rules
from chatlog.testing.rules import Answer, BotSettings, JSONObject, RateState, Request, dig, dig_str

HOOK_PREFIX = "/open-apis/bot/v2/hook/"
MSG_TYPES = frozenset({"text", "post", "image", "share_chat", "interactive"})
BAD_REQUEST_BYTES = 20 * 1024
TOO_LARGE_BYTES = 30 * 1024
SIGN_WINDOW_S = 3600.0
# Keys whose values are not message text: links, signing fields and structural tags.
NOT_TEXT_KEYS = frozenset({"href", "url", "default_url", "sign", "timestamp", "msg_type", "tag", "template"})
SCHEMA2_REMOVED_TAGS = frozenset({"note", "action"})

SUCCESS: JSONObject = {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}
LEGACY_SUCCESS: JSONObject = {"Extra": None, "StatusCode": 0, "StatusMessage": "success"}
RATE_CODES = frozenset({"11232", "9499", "429"})


def _error(code: int, msg: str, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return Answer({"code": code, "msg": msg, "data": {}}, status=status, headers=headers)


UNKNOWN_TOKEN = _error(19001, "param invalid: incoming webhook access token invalid")
BAD_REQUEST = _error(9499, "Bad Request")
TOO_LARGE = _error(19036, "The message exceeds the size limit of 30KB")
NO_MSG_TYPE = _error(19002, "params error, msg_type need")
SIGN_FAILED = _error(19021, "sign match fail or timestamp is not within one hour from current time")
KEYWORD_MISSING = _error(19024, "Key Words Not Found")


def sign(secret: str, timestamp: int) -> str:
    """Feishu's signature: HMAC-SHA256 keyed by "timestamp\\nsecret" over an empty message, base64."""
    return rules.hmac_sha256_b64(f"{timestamp}\n{secret}", "")


def token_of(path: str, query: Mapping[str, str]) -> str | None:
    """The token in a hook path, or None for any other path."""
    if not path.startswith(HOOK_PREFIX):
        return None
    return path[len(HOOK_PREFIX) :]


def new_token() -> str:
    """A token shaped like Feishu's (a UUID)."""
    return str(uuid.uuid4())


def url_of(base_url: str, bot: BotSettings) -> str:
    """The destination string chatlog accepts; Lark is marked with ``platform=lark``."""
    lark = "platform=lark" if bot.platform == "lark" else ""
    url = f"{base_url}{HOOK_PREFIX}{bot.token}"
    secret, keyword = rules.option("secret", bot.secret), rules.option("keyword", bot.keyword)
    return rules.with_options(url, secret, keyword, lark)


def check_settings(bot: BotSettings) -> None:
    """Reject settings Feishu cannot have."""
    rate_code = bot.options.get("rate_code")
    if rate_code is not None and str(rate_code) not in RATE_CODES:
        raise ValueError(f"Feishu rate_code must be one of {sorted(RATE_CODES)}, e.g. rate_code='9499'")


def judge(request: Request, bot: BotSettings | None, state: RateState, now: float) -> Answer:
    """Feishu's answer to one request, in the order of reference 2.10."""
    if bot is None:
        return UNKNOWN_TOKEN
    payload = request.payload
    if len(request.body) > TOO_LARGE_BYTES:
        return TOO_LARGE
    if len(request.body) > BAD_REQUEST_BYTES or payload is None:
        return BAD_REQUEST
    if payload.get("msg_type") not in MSG_TYPES:
        return NO_MSG_TYPE
    card_problem = _card_problem(payload) if payload["msg_type"] == "interactive" else None
    if card_problem is not None:
        return card_problem
    security_problem = _security_problem(payload, bot, now)
    if security_problem is not None:
        return security_problem
    if bot.rate_limit and (state.count_since(now - 1.0) >= 5 or state.count_since(now - 60.0) >= 100):
        rate_code = bot.options.get("rate_code")
        return _rate_limited(None if rate_code is None else str(rate_code))
    state.sent.append(now)
    return Answer(LEGACY_SUCCESS if bot.options.get("legacy_success") else SUCCESS, accepted=True)


def _security_problem(payload: JSONObject, bot: BotSettings, now: float) -> Answer | None:
    if bot.secret is not None and not _signed(payload, bot.secret, now):
        return SIGN_FAILED
    if rules.lacks_keyword(bot, payload, NOT_TEXT_KEYS):
        return KEYWORD_MISSING
    return None


def _signed(payload: JSONObject, secret: str, now: float) -> bool:
    try:
        timestamp = int(str(payload.get("timestamp")))
    except ValueError:
        return False
    fresh = abs(now - timestamp) <= SIGN_WINDOW_S
    return fresh and rules.same_secret(sign(secret, timestamp), payload.get("sign"))


def _card_problem(payload: JSONObject) -> Answer | None:
    card = payload.get("card")
    if not isinstance(card, dict) or not ({"header", "elements", "body"} & card.keys()):
        return BAD_REQUEST
    if card.get("schema") != "2.0":
        return None
    if "elements" in card:
        # JSON 2.0 rejects properties it does not know; top-level elements is the usual 1.0 leftover.
        return _card_error(200621, "parse card json err", "elements")
    removed = next((tag for tag in _tags_in(card) if tag in SCHEMA2_REMOVED_TAGS), None)
    if removed is not None:
        return _card_error(200861, "cards of schema V2 no longer support this capability", removed)
    return None


def _card_error(sub_code: int, reason: str, value: str) -> Answer:
    detail = f"ErrCode: {sub_code}; ErrMsg: {reason}; ErrorValue: {value}; "
    return _error(230099, f"Failed to create card content, ext={detail}")


def _tags_in(value: object) -> list[str]:
    if isinstance(value, list):
        return [tag for item in value for tag in _tags_in(item)]
    if not isinstance(value, dict):
        return []
    own = [value["tag"]] if isinstance(value.get("tag"), str) else []
    return own + [tag for item in value.values() for tag in _tags_in(item)]


def _rate_limited(rate_code: str | None) -> Answer:
    if rate_code == "9499":
        return Answer({"code": 9499, "msg": "too many request"}, status=400)
    if rate_code == "429":
        return _error(
            99991400, "request trigger frequency limit", status=429, headers=(("x-ogw-ratelimit-reset", "2"),)
        )
    return _error(11232, "create message service trigger rate limit")


def text_of(payload: JSONObject) -> str:
    """The human-readable text of a Feishu message: text, post or card; "" for other types."""
    msg_type = payload.get("msg_type")
    if msg_type == "text":
        return dig_str(payload, "content", "text")
    if msg_type == "post":
        return _post_text(dig(payload, "content", "post"))
    if msg_type == "interactive":
        return _card_text(payload.get("card"))
    return ""


def _post_text(post: object) -> str:
    # A post carries the same message once per locale: the first one is the message.
    locale = next(iter(post.values()), None) if isinstance(post, dict) else None
    lines = [dig_str(locale, "title")] if dig_str(locale, "title") else []
    paragraphs = dig(locale, "content")
    for paragraph in paragraphs if isinstance(paragraphs, list) else []:
        nodes = paragraph if isinstance(paragraph, list) else []
        lines.append("".join(dig_str(node, "text") for node in nodes))
    return "\n".join(lines)


def _card_text(card: object) -> str:
    if not isinstance(card, dict):
        return ""
    rest = {key: value for key, value in card.items() if key != "header"}
    return "\n".join(_contents_in(card.get("header")) + _contents_in(rest))


def _contents_in(value: object) -> list[str]:
    if isinstance(value, list):
        return [text for item in value for text in _contents_in(item)]
    if not isinstance(value, dict):
        return []
    found: list[str] = []
    for key, item in value.items():
        found += [item] if key == "content" and isinstance(item, str) else _contents_in(item)
    return found


_CARD_AT = re.compile(r"<at id=([\w.@+-]+)></at>")
_TEXT_AT = re.compile(r'<at user_id="([\w.@+-]+)">(?:所有人)?</at>')
CARD_TAGS = frozenset({"markdown", "hr", "note", "plain_text", "div", "lark_md"})


def _markdowns(payload: JSONObject) -> list[str]:
    """The strings Feishu parses as markup: a text message's text, a card's markdown contents."""
    if payload.get("msg_type") == "text":
        return [dig_str(payload, "content", "text")]
    card = payload.get("card")
    elements = card.get("elements") if isinstance(card, dict) else None
    markdown = [e for e in elements or [] if isinstance(e, dict) and e.get("tag") == "markdown"]
    return [dig_str(element, "content") for element in markdown]


def notified(payload: JSONObject) -> tuple[str, ...]:
    """The ids a message mentions: ``<at user_id="…">`` in text, ``<at id=…></at>`` in card markdown."""
    pattern = _TEXT_AT if payload.get("msg_type") == "text" else _CARD_AT
    return tuple(found for text in _markdowns(payload) for found in pattern.findall(text))


def live_markup(payload: JSONObject) -> list[str]:
    """Links, buttons, unknown card elements, open code blocks, tags other than the mentions."""
    problems = rules.live_key_problems(payload)
    problems += [f"card element {tag}" for tag in set(_tags_in(payload.get("card"))) - CARD_TAGS]
    pattern = _TEXT_AT if payload.get("msg_type") == "text" else _CARD_AT
    for text in _markdowns(payload):
        if text.count("```") % 2:
            problems.append("an unclosed code block")
        problems += rules.markdown_problems(pattern.sub("", text))
    return problems


RULES = rules.rules_of_module(__name__, ("feishu", "lark"),
                       options={"rate_code": None, "legacy_success": False},
                       demo={"secret": "demo-feishu-secret"})
