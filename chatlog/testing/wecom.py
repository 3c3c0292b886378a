"""Fake WeCom group bot: ``POST /cgi-bin/webhook/send?key=K`` (reference 5.1-5.5, 5.7).

WeCom has no signing and no keywords: the key is the credential. Every request to a known key counts
toward the 20-a-minute limit, failed ones too; only the 45009 refusals themselves do not.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Mapping

from chatlog.testing import rules
from chatlog.testing.rules import Answer, BotSettings, JSONObject, RateState, Request, dig, dig_str

SEND_PATH = "/cgi-bin/webhook/send"
MSG_TYPES = frozenset({"text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card"})
# msgtype -> (content limit in UTF-8 bytes, errcode, errmsg) when the content is longer.
CONTENT_LIMITS: dict[str, tuple[int, int, str]] = {
    "text": (2048, 45002, "content size out of limit"),
    "markdown": (4096, 40058, "markdown.content exceed max length 4096"),
    "markdown_v2": (4096, 40058, "markdown_v2.content exceed max length 4096"),
}
PER_MINUTE = 20

OK: JSONObject = {"errcode": 0, "errmsg": "ok"}
_hints = itertools.count(1)


def _error(code: int, msg: str, now: float) -> Answer:
    # WeCom appends a request id, the caller's address and a help link to every error message.
    hint = f"[{int(now)}_{next(_hints)}]"
    more = f"more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
    return Answer({"errcode": code, "errmsg": f"{msg}, hint: {hint}, from ip: 127.0.0.1, {more}"})


def token_of(path: str, query: Mapping[str, str]) -> str | None:
    """The ``key`` of a send request ("" when absent), or None for any other path."""
    return query.get("key", "") if path == SEND_PATH else None


def new_token() -> str:
    """A key shaped like WeCom's (a UUID)."""
    return str(uuid.uuid4())


def url_of(base_url: str, bot: BotSettings) -> str:
    """The destination string chatlog accepts: the webhook URL itself."""
    return rules.with_options(f"{base_url}{SEND_PATH}", rules.option("key", bot.token))


def check_settings(bot: BotSettings) -> None:
    """Reject settings WeCom cannot have: it has no signing, keywords or alternative rate codes."""
    if bot.secret is not None or bot.keyword is not None:
        raise ValueError("WeCom bots have no secret or keyword: add_bot('wecom', token='KEY')")



def judge(request: Request, bot: BotSettings | None, state: RateState, now: float) -> Answer:
    """WeCom's answer to one request; the rate check comes first because failures count too."""
    if bot is None:
        return _error(93000, "invalid webhook url", now)
    if bot.rate_limit:
        if state.count_since(now - 60.0) >= PER_MINUTE:
            return _error(45009, "api freq out of limit", now)
        state.sent.append(now)
    problem = _content_problem(request.payload, now)
    return problem if problem is not None else Answer(OK, accepted=True)


def _content_problem(payload: JSONObject | None, now: float) -> Answer | None:
    if payload is None:
        return _error(40035, "invalid parameter. Warning: wrong json format.", now)
    msg_type = payload.get("msgtype")
    if msg_type not in MSG_TYPES:
        return _error(40008, "invalid message type", now)
    if msg_type in CONTENT_LIMITS:
        max_bytes, code, msg = CONTENT_LIMITS[msg_type]
        content = dig(payload, msg_type, "content")
        if not isinstance(content, str) or not content:
            return _error(44004, "empty content", now)
        if rules.utf8_len(content) > max_bytes:
            return _error(code, msg, now)
    return None


def text_of(payload: JSONObject) -> str:
    """The human-readable text of a WeCom message: text or markdown content; "" for other types."""
    msg_type = payload.get("msgtype")
    if msg_type in ("text", "markdown", "markdown_v2"):
        return dig_str(payload, str(msg_type), "content")
    return ""


_OWN_TAGS = re.compile(r'<font color="(?:warning|comment|info)">|</font>|<@([\w.@+-]+)>')


def notified(payload: JSONObject) -> tuple[str, ...]:
    """Who a message notifies. Markdown: ``<@userid>`` only; ``<@all>`` and phone numbers there notify
    nobody. Text: ``mentioned_list`` (userids, ``@all``) and ``mentioned_mobile_list``."""
    kind = payload.get("msgtype")
    if kind == "markdown":
        found = _OWN_TAGS.findall(dig_str(payload, "markdown", "content"))
        return tuple(m for m in found if m and m != "all" and not (m.isascii() and m.isdigit()))
    if kind != "text":
        return ()
    listed = rules.dig_strings(payload, "text", "mentioned_list")
    mobiles = rules.dig_strings(payload, "text", "mentioned_mobile_list")
    return tuple("all" if m == "@all" else m for m in listed) + tuple(mobiles)


def live_markup(payload: JSONObject) -> list[str]:
    """Links, buttons and tags beyond WeCom's own ``<font color>`` and ``<@userid>``."""
    problems = rules.live_key_problems(payload)
    kind = payload.get("msgtype")
    if kind == "markdown":
        problems += rules.markdown_problems(_OWN_TAGS.sub("", dig_str(payload, "markdown", "content")))
    elif kind == "text":
        problems += rules.markdown_problems(dig_str(payload, "text", "content"))
    return problems


RULES = rules.rules_of_module(__name__, ("wecom",))
