"""Fake DingTalk custom robot: ``POST /robot/send?access_token=T[&timestamp=ms&sign=..]`` (reference 4)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from chatlog.testing import rules
from chatlog.testing.rules import Answer, BotSettings, JSONObject, RateState, Request, dig, dig_str

SEND_PATH = "/robot/send"
MSG_TYPES = frozenset({"text", "link", "markdown", "actionCard", "feedCard"})
MAX_BODY_BYTES = 20_000
SIGN_WINDOW_MS = 3_600_000
PER_MINUTE = 20
BLOCK_S = 600.0
# Keys whose values are not message text: the message type, mentions, links and layout switches.
NOT_TEXT_KEYS = frozenset(
    {"msgtype", "at", "messageUrl", "picUrl", "singleURL", "actionURL", "messageURL", "picURL"}
    | {"btnOrientation", "hideAvatar", "msgUuid"}
)
RATE_MESSAGES = {"410100": "发送速度太快而限流", "130101": "send too fast, exceed 20 times per minute"}

OK: JSONObject = {"errcode": 0, "errmsg": "ok"}


def _error(code: int, msg: str) -> Answer:
    return Answer({"errcode": code, "errmsg": msg})


UNKNOWN_TOKEN = _error(300001, "token is not exist")
INVALID_TIMESTAMP = _error(310000, "invalid timestamp")
SIGN_NOT_MATCH = _error(310000, "sign not match")
KEYWORD_MISSING = _error(310000, "keywords not in content")
NOT_JSON = _error(40035, "缺少参数 json")
UNSUPPORTED_TYPE = _error(400105, "不支持的消息类型")
TOO_LARGE = _error(460101, "description: body 大小不合法;solution:请保持大小在 20000bytes 以内;")


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature before URL-quoting: HMAC-SHA256 keyed by the secret over "ts\\nsecret", base64."""
    return rules.hmac_sha256_b64(secret, f"{timestamp_ms}\n{secret}")


def token_of(path: str, query: Mapping[str, str]) -> str | None:
    """The ``access_token`` of a send request ("" when absent), or None for any other path."""
    return query.get("access_token", "") if path == SEND_PATH else None


def new_token() -> str:
    """A token shaped like DingTalk's (64 hex digits)."""
    return secrets.token_hex(32)


def url_of(base_url: str, bot: BotSettings) -> str:
    """The destination string chatlog accepts: secret and keyword ride along as query options."""
    secret, keyword = rules.option("secret", bot.secret), rules.option("keyword", bot.keyword)
    token = rules.option("access_token", bot.token)
    return rules.with_options(f"{base_url}{SEND_PATH}", token, secret, keyword)


def check_settings(bot: BotSettings) -> None:
    """Reject settings DingTalk cannot have."""
    rate_code = bot.options.get("rate_code")
    if rate_code is not None and str(rate_code) not in RATE_MESSAGES:
        raise ValueError(f"DingTalk rate_code must be one of {sorted(RATE_MESSAGES)}, e.g. rate_code=130101")


def judge(request: Request, bot: BotSettings | None, state: RateState, now: float) -> Answer:
    """DingTalk's answer to one request; a throttled robot refuses everything until its block ends."""
    if bot is None:
        return UNKNOWN_TOKEN
    if bot.rate_limit and now < state.blocked_until:
        return _rate_limited(bot)
    problem = _security_problem(request, bot, now) or _content_problem(request, bot)
    if problem is not None:
        return problem
    if bot.rate_limit and state.count_since(now - 60.0) >= PER_MINUTE:
        state.blocked_until = now + BLOCK_S
        return _rate_limited(bot)
    state.sent.append(now)
    return Answer(OK, accepted=True)


def _rate_limited(bot: BotSettings) -> Answer:
    code = str(bot.options.get("rate_code") or "410100")
    return _error(int(code), RATE_MESSAGES[code])


def _security_problem(request: Request, bot: BotSettings, now: float) -> Answer | None:
    if bot.secret is None:
        return None
    try:
        timestamp_ms = int(request.query.get("timestamp", ""))
    except ValueError:
        return INVALID_TIMESTAMP
    if abs(now * 1000 - timestamp_ms) > SIGN_WINDOW_MS:
        return INVALID_TIMESTAMP
    # The query was decoded once, as DingTalk does: an unquoted "+" became a space and fails here.
    if not rules.same_secret(sign(bot.secret, timestamp_ms), request.query.get("sign")):
        return SIGN_NOT_MATCH
    return None


def _content_problem(request: Request, bot: BotSettings) -> Answer | None:
    payload = request.payload
    if len(request.body) > MAX_BODY_BYTES:
        return TOO_LARGE
    if payload is None:
        return NOT_JSON
    if payload.get("msgtype") not in MSG_TYPES:
        return UNSUPPORTED_TYPE
    if rules.lacks_keyword(bot, payload, NOT_TEXT_KEYS):
        return KEYWORD_MISSING
    return None


def text_of(payload: JSONObject) -> str:
    """The human-readable text of a DingTalk message; feedCard gives its link titles, one a line."""
    msg_type = payload.get("msgtype")
    if msg_type == "text":
        return dig_str(payload, "text", "content")
    if msg_type in ("markdown", "actionCard", "link"):
        section = payload.get(str(msg_type))
        return "\n".join(part for part in (dig_str(section, "title"), dig_str(section, "text")) if part)
    if msg_type == "feedCard":
        links = dig(payload, "feedCard", "links")
        return "\n".join(dig_str(link, "title") for link in links) if isinstance(links, list) else ""
    return ""


def _body(payload: JSONObject) -> str:
    kind = str(payload.get("msgtype"))
    return dig_str(payload, kind, "text") if kind == "markdown" else dig_str(payload, kind, "content")


def _at(payload: JSONObject) -> tuple[list[str], bool]:
    people = rules.dig_strings(payload, "at", "atMobiles") + rules.dig_strings(payload, "at", "atUserIds")
    return people, dig(payload, "at", "isAtAll") is True


def notified(payload: JSONObject) -> tuple[str, ...]:
    """Who a message notifies: ``isAtAll``, and each ``atMobiles``/``atUserIds`` entry whose ``@id`` is in
    the text (DingTalk shows and notifies a mention only then)."""
    people, everyone = _at(payload)
    body = _body(payload)
    return (("all",) if everyone else ()) + tuple(p for p in people if f"@{p}" in body)


def live_markup(payload: JSONObject) -> list[str]:
    """Links, buttons, tags, and any ``@`` that is not exactly one configured mention."""
    problems = rules.live_key_problems(payload)
    body = _body(payload)
    for person in _at(payload)[0]:
        if body.count(f"@{person}") != 1:
            problems.append(f"@{person} appears {body.count(f'@{person}')} times")
        body = body.replace(f"@{person}", "")
    if "@" in body:
        problems.append("an @ that is not a configured mention")
    problems += rules.markdown_problems(body)
    if payload.get("msgtype") == "markdown":
        problems += rules.markdown_problems(dig_str(payload, "markdown", "title"))
    return problems


RULES = rules.rules_of_module(__name__, ("dingtalk",), options={"rate_code": None},
                       demo={"secret": "SECdemo0123456789abcdef", "keyword": "alert"})
