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

from chatlog import links
from chatlog.digest import Digest, GroupSummary
from chatlog.platforms import _groups, _text
from chatlog.platforms._answers import coded_answer, retry_after, trimmed
from chatlog.platforms._base import Limits, Option, Outcome, Payload
from chatlog.platforms._http import post_json
from chatlog.platforms._webhook import Webhook

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import Any, httpx

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


def render(digest: Digest, limits: Limits = LIMITS, keyword: str | None = None) -> Payload:
    """The ``markdown`` message for `digest` (content within `limits.text_bytes`), or a ``text`` message
    when even the smallest markdown would not fit; `keyword` ends the footer."""
    content_bytes = limits.text_bytes or 4_000

    def content_fits(payload: Payload) -> bool:
        return _text.utf8_len(payload["markdown"]["content"]) <= content_bytes

    message = _groups.fit(lambda budget: _markdown(digest, budget, keyword), limits.body_bytes, content_fits)
    return message if message is not None else _fallback(digest, limits, keyword)


def _markdown(digest: Digest, budget: _groups.Budget, keyword: str | None) -> Payload:
    shown = digest.groups[: budget.groups]
    colour = _colour(digest.level)
    intro = [_text.summary_line(digest, _text.inert), _font("warning", _text.dropped_line(digest.dropped)),
             links.markdown_links(links.message_links(digest), _text.inert)]
    quoted_intro = "\n".join(f"> {line}" for line in intro if line)
    head = "info" if digest.all_clear else colour  # WeCom's green: the incident is over
    blocks = [f"## {_font(head, _text.header_line(digest, _text.inert))}", quoted_intro]
    blocks += [_group(digest, group, budget, colour) for group in shown]
    footer = _text.with_keyword(_text.footer_line(digest, _text.inert), keyword)
    blocks += [_text.more_line(digest.groups[len(shown) :]), _font("comment", footer)]
    blocks.append(" ".join(f"<@{mention}>" for mention in _userids(digest.mentions)))
    content = "\n\n".join(block for block in blocks if block)
    return {"msgtype": "markdown", "markdown": {"content": content}}


def _userids(mentions: tuple[str, ...]) -> list[str]:
    """The mentions markdown can notify: ``<@all>`` and phone numbers there notify nobody."""
    ids = _text.mention_ids(mentions)
    return [mention for mention in ids if mention != "all" and not _text.is_mobile(mention)]


def mention_message(digest: Digest, limits: Limits = LIMITS, keyword: str | None = None) -> Payload | None:
    """The ``text`` message whose ``mentioned_list``/``mentioned_mobile_list`` notify ``@all`` and phone
    numbers, which WeCom markdown cannot: sent after the markdown, only when the digest mentions them."""
    wanted = tuple(m for m in _text.mention_ids(digest.mentions) if m == "all" or _text.is_mobile(m))
    if not wanted:
        return None
    return _text_message(_text.header_line(digest, _text.inert), keyword, wanted, limits)


def _group(digest: Digest, group: GroupSummary, budget: _groups.Budget, colour: str) -> str:
    view = _groups.group_view(group, digest, budget, _text.inert)
    lines = _groups.group_lines(view, lambda text: f"**{_font(colour, text)}**")
    lines += [found] if (found := links.markdown_links(links.group_links(digest, group), _text.inert)) else []
    lines += [f"> `{line}`" for line in view.traceback]
    return "\n".join(lines)


def _font(colour: str, text: str) -> str:
    return f'<font color="{colour}">{text}</font>' if text else ""


def _colour(level: int) -> str:
    if level >= logging.WARNING:
        return "warning"
    return "info" if level >= logging.INFO else "comment"


def _fallback(digest: Digest, limits: Limits, keyword: str | None) -> Payload:
    """A ``text`` message with the digest's summary and the mentions as ``mentioned_list``."""
    summary = _text.plain_summary(digest, _text.inert)
    return _text_message(summary, keyword, _text.mention_ids(digest.mentions), limits)


def _text_message(text: str, keyword: str | None, mentions: tuple[str, ...], limits: Limits) -> Payload:
    """A ``text`` message whose content (keyword included) stays within `_TEXT_CONTENT_BYTES`."""
    people = [mention for mention in mentions if mention != "all"]
    listed = [m for m in people if not _text.is_mobile(m)] + (["@all"] if "all" in mentions else [])
    mobiles = [m for m in people if _text.is_mobile(m)]

    def make(cut: str) -> Payload:
        body: dict[str, Any] = {"content": _text.with_keyword(cut, keyword, "\n")}
        if listed:
            body["mentioned_list"] = listed
        if mobiles:
            body["mentioned_mobile_list"] = mobiles
        return {"msgtype": "text", "text": body}

    room = _TEXT_CONTENT_BYTES - (_text.utf8_len(keyword) + 1 if keyword else 0)
    return _text.fit_text(make, _text.truncate_utf8(text, max(room, 0)), limits.body_bytes)


def classify(response: httpx.Response) -> Outcome:
    """What WeCom's answer means: ok when ``errcode`` is 0. Judged by the code, never by ``errmsg``.

    HTTP 200 means nothing here: WeCom reports key, size and rate problems in the body.
    """
    read = coded_answer(response, "WeCom", ("errcode",))
    if isinstance(read, Outcome):
        return read
    body, code = read
    answer = trimmed(response)
    if code == 0:
        return Outcome("ok", answer=answer)
    if code in _RETRY:
        default, reason = _RETRY[code]
        return Outcome("retry", retry_after(response, default), reason, answer)
    if code == 40058:
        said = _text.answer_message(body.get("errmsg"))
        reason = (f"WeCom says a parameter is invalid (40058: {said}): usually "
                  "content that is too long (a chatlog bug), else a malformed key")
    else:
        said = _text.answer_message(body.get("errmsg"))
        reason = _PERMANENT.get(code, f"WeCom answered errcode {code}: {said}")
    rejected = code in (40058, 45002, 44004)  # this message's content, not the bot
    return Outcome("rejected" if rejected else "permanent", 0.0, reason, answer)


class WeCom(Webhook):
    """A WeCom group bot, addressed by its webhook key (which is also its only secret)."""

    names = ("wecom",)
    token_name = "webhook key"
    signs = False
    example = "wecom://KEY"
    options = (Option("key", "the bot's webhook key, e.g. key=693a91f6-…", secret=True),)
    forms = (("WeCom group bot", ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K", "wecom://K")),)
    title = "WeCom"
    escape = staticmethod(_text.inert)

    @property
    def key(self) -> str:
        """The webhook key (this bot's token)."""
        return self.token

    def render_all(self, digest: Digest) -> tuple[Payload, ...]:
        """The markdown, then the `mention_message` when ``all`` or a phone number is due (a digest that
        went as text already carries its mentions)."""
        first = render(digest, self.limits, self.keyword)
        extra = mention_message(digest, self.limits, self.keyword) if first["msgtype"] == "markdown" else None
        return (first,) if extra is None else (first, extra)

    def render_text(self, text: str) -> Payload:
        """A ``text`` message (content ≤ 2,048 bytes), the keyword appended when configured and missing."""
        return _text_message(_text.no_tags(text), self.keyword, (), self.limits)

    def post(self, client: httpx.Client, payload: Payload) -> httpx.Response | Outcome:
        """POST with the key in the query (nothing to sign)."""
        return post_json(client, self.endpoint, dict(payload), params={"key": self.token})
