"""WeCom (企业微信) group bots: endpoint, the markdown message with its text fallback, the answers.

No ``sign``: WeCom bots have no signing, the webhook key itself is the secret, so this module has no
``sign`` function (the one name of the four that it lacks).

Escaping: WeCom markdown (v1) has links, ``<font color>`` and ``<@userid>`` mentions but no code
blocks. User text goes through `_text.inert` (full-width ``＜＞``, ``ˋ`` for backticks, ``］`` before
``(``/``[``/``:``); tracebacks are quoted lines of inline code. The markdown content is kept within
`LIMITS.text_bytes` (the platform takes 4,096 bytes); when even the smallest markdown would not fit,
the digest goes as a ``text`` message (content ≤ 2,048 bytes) with ``mentioned_list``.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from chatlog.digest import Digest, GroupSummary
from chatlog.platforms._base import (
    Destination,
    Limits,
    Option,
    Outcome,
    Payload,
    Target,
    answer_code,
    check_token,
    classify_http,
    is_official,
    json_body,
    outcome_of,
    post_json,
    retry_after,
    target_origin,
    trimmed,
    unexpected_answer,
)
from chatlog.platforms._text import (
    Budget,
    answer_message,
    dropped_line,
    fit,
    fit_text,
    footer_line,
    group_lines,
    group_view,
    header_line,
    inert,
    is_mobile,
    mention_ids,
    more_line,
    no_tags,
    plain_summary,
    summary_line,
    truncate_utf8,
    utf8_len,
    with_default_keyword,
    with_keyword,
)

_PATH = "/cgi-bin/webhook/send"
_ORIGIN = "https://qyapi.weixin.qq.com"
LIMITS = Limits(body_bytes=5_000, per_minute=18, text_bytes=4_000)
"""Markdown content ≤ 4,096 bytes (we keep 4,000); 20 messages a minute per bot, failures included."""
_TEXT_CONTENT_BYTES = 2_000
"""``text`` content: the platform takes 2,048 bytes."""

_RETRY = {
    45009: (60.0, "WeCom says we send too fast (45009: 20 messages a minute per bot)"),
    45033: (5.0, "WeCom says there are too many concurrent calls (45033)"),
    -1: (5.0, "WeCom is busy (-1)"),
}
_PERMANENT = {
    93000: "WeCom says the webhook key is invalid or the bot was removed: copy the bot's webhook URL again",
    45002: "WeCom says the message is too long (a chatlog bug)",
    44004: "WeCom says the message is empty (a chatlog bug)",
    40008: "WeCom says the message type is invalid (a chatlog bug)",
}


def render(digest: Digest, limits: Limits = LIMITS) -> Payload:
    """The ``markdown`` message for `digest` (content within `limits.text_bytes`), or a ``text`` message
    when even the smallest markdown would not fit."""
    content_bytes = limits.text_bytes or 4_000

    def content_fits(payload: Payload) -> bool:
        return utf8_len(payload["markdown"]["content"]) <= content_bytes

    message = fit(lambda budget: _markdown(digest, budget), limits.body_bytes, content_fits)
    return message if message is not None else _fallback(digest, limits)


def _markdown(digest: Digest, budget: Budget) -> Payload:
    shown = digest.groups[: budget.groups]
    colour = _colour(digest.level)
    intro = [summary_line(digest, inert), _font("warning", dropped_line(digest.dropped))]
    quoted_intro = "\n".join(f"> {line}" for line in intro if line)
    blocks = [f"## {_font(colour, header_line(digest, inert))}", quoted_intro]
    blocks += [_group(digest, group, budget, colour) for group in shown]
    footer = with_keyword(footer_line(digest, inert), digest.context.keyword)
    blocks += [more_line(digest.groups[len(shown) :]), _font("comment", footer)]
    blocks.append(" ".join(f"<@{mention}>" for mention in _userids(digest.mentions)))
    content = "\n\n".join(block for block in blocks if block)
    return {"msgtype": "markdown", "markdown": {"content": content}}


def _userids(mentions: tuple[str, ...]) -> list[str]:
    """The mentions markdown can notify: ``<@all>`` and phone numbers there notify nobody."""
    return [mention for mention in mention_ids(mentions) if mention != "all" and not is_mobile(mention)]


def mention_message(digest: Digest, limits: Limits = LIMITS) -> Payload | None:
    """The ``text`` message whose ``mentioned_list``/``mentioned_mobile_list`` notify ``@all`` and phone
    numbers, which WeCom markdown cannot: sent after the markdown, only when the digest mentions them."""
    wanted = tuple(m for m in mention_ids(digest.mentions) if m == "all" or is_mobile(m))
    if not wanted:
        return None
    return _text_message(header_line(digest, inert), digest.context.keyword, wanted, limits)


def _group(digest: Digest, group: GroupSummary, budget: Budget, colour: str) -> str:
    view = group_view(group, digest, budget, inert)
    lines = group_lines(view, lambda text: f"**{_font(colour, text)}**")
    lines += [f"> `{line}`" for line in view.traceback]
    return "\n".join(lines)


def _font(colour: str, text: str) -> str:
    return f'<font color="{colour}">{text}</font>' if text else ""


def _colour(level: int) -> str:
    if level >= logging.WARNING:
        return "warning"
    return "info" if level >= logging.INFO else "comment"


def _fallback(digest: Digest, limits: Limits) -> Payload:
    """A ``text`` message with the digest's summary and the mentions as ``mentioned_list``."""
    return _text_message(plain_summary(digest, inert), digest.context.keyword, mention_ids(digest.mentions),
                         limits)


def _text_message(text: str, keyword: str | None, mentions: tuple[str, ...], limits: Limits) -> Payload:
    """A ``text`` message whose content (keyword included) stays within `_TEXT_CONTENT_BYTES`."""
    people = [mention for mention in mentions if mention != "all"]
    listed = [m for m in people if not is_mobile(m)] + (["@all"] if "all" in mentions else [])
    mobiles = [m for m in people if is_mobile(m)]

    def make(cut: str) -> Payload:
        body: dict[str, Any] = {"content": with_keyword(cut, keyword, "\n")}
        if listed:
            body["mentioned_list"] = listed
        if mobiles:
            body["mentioned_mobile_list"] = mobiles
        return {"msgtype": "text", "text": body}

    room = _TEXT_CONTENT_BYTES - (utf8_len(keyword) + 1 if keyword else 0)
    return fit_text(make, truncate_utf8(text, max(room, 0)), limits.body_bytes)


def classify(response: httpx.Response) -> Outcome:
    """What WeCom's answer means: ok when ``errcode`` is 0. Judged by the code, never by ``errmsg``.

    HTTP 200 means nothing here: WeCom reports key, size and rate problems in the body.
    """
    decided = classify_http(response)
    if decided is not None:
        return decided
    body = json_body(response)
    code = answer_code(body.get("errcode")) if body else None
    if body is None or code is None or (code == 0 and not response.is_success):
        return unexpected_answer(response, "WeCom")
    answer = trimmed(response)
    if code == 0:
        return Outcome("ok", answer=answer)
    if code in _RETRY:
        default, reason = _RETRY[code]
        return Outcome("retry", retry_after(response, default), reason, answer)
    if code == 40058:
        reason = (f"WeCom says a parameter is invalid (40058: {answer_message(body.get('errmsg'))}): usually "
                  "content that is too long (a chatlog bug), else a malformed key")
    else:
        reason = _PERMANENT.get(code, f"WeCom answered errcode {code}: {answer_message(body.get('errmsg'))}")
    rejected = code in (40058, 45002, 44004)  # this message's content, not the bot
    return Outcome("rejected" if rejected else "permanent", 0.0, reason, answer)


class WeCom(Destination):
    """A WeCom group bot, addressed by its webhook key (which is also its only secret)."""

    names = ("wecom",)
    hosts = ("qyapi.weixin.qq.com",)
    paths = (_PATH,)
    example = "wecom://KEY"
    options = (Option("key", "the bot's webhook key, e.g. key=693a91f6-…", secret=True),)
    forms = (("WeCom group bot", ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K", "wecom://K")),)
    escape = staticmethod(inert)

    def __init__(self, key: str, *, keyword: str | None = None, origin: str | None = None,
                 path: str = _PATH) -> None:
        """`origin` (``scheme://host[:port]``) replaces WeCom's own host, e.g. a local inbox; `path` its
        send path (a relay's own path)."""
        check_token(key, "webhook key", self.example)
        self.platform = "wecom"
        self.key = key
        self.keyword = keyword or None
        self.origin = origin or _ORIGIN
        self.endpoint = f"{self.origin}{path}"
        self.limits = LIMITS

    @classmethod
    def from_target(cls, target: Target) -> WeCom:
        """``wecom://KEY`` or ``http(s)://host[:port]/cgi-bin/webhook/send?key=KEY``."""
        if target.secret:
            raise ValueError("WeCom bots have no signing secret: the key is the secret"
                             f"; e.g. {cls.example}")
        origin = target_origin(target, cls.example)
        url = target.url
        key = target.query.pop("key", "")
        if url.scheme in ("http", "https"):
            if url.path.rstrip("/") != _PATH and not target.relay:
                raise ValueError(f"a WeCom webhook URL looks like {_ORIGIN}{_PATH}?key=KEY"
                                 f"; e.g. {cls.example}")
        else:
            key = url.netloc or key
        return cls(key, keyword=target.keyword, origin=origin, path=url.path if target.relay else _PATH)

    def render(self, digest: Digest) -> Payload:
        """The markdown for `digest` (see `render`), with this destination's keyword when it has none."""
        return render(with_default_keyword(digest, self.keyword), self.limits)

    def render_all(self, digest: Digest) -> tuple[Payload, ...]:
        """The markdown, then the `mention_message` when ``all`` or a phone number is due (a digest that
        went as text already carries its mentions)."""
        digest = with_default_keyword(digest, self.keyword)
        first = render(digest, self.limits)
        extra = mention_message(digest, self.limits) if first["msgtype"] == "markdown" else None
        return (first,) if extra is None else (first, extra)

    def render_text(self, text: str) -> Payload:
        """A ``text`` message (content ≤ 2,048 bytes), the keyword appended when configured and missing."""
        return _text_message(no_tags(text), self.keyword, (), self.limits)

    def send(self, client: httpx.Client, payload: Payload) -> Outcome:
        """POST and classify (nothing to sign). Never raises."""
        try:
            answer = post_json(client, self.endpoint, dict(payload), params={"key": self.key})
            return outcome_of(answer, classify, self.secrets)
        except Exception as exc:
            return Outcome("retry", reason=f"chatlog failed while sending to WeCom ({type(exc).__name__})")

    def masked(self) -> str:
        """``wecom://***``; the endpoint with ``key=***`` for a host of your own."""
        if is_official(self.origin, self.hosts):
            return "wecom://***"
        return f"{self.endpoint}?key=***"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The webhook key."""
        return (self.key,)
