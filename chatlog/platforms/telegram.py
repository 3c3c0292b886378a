"""Telegram bots (Bot API ``sendMessage``): endpoint, the HTML message, mentions, the answers.

No ``sign``: the bot token in the URL path is the secret.

HTML parse mode: chatlog's own tags are ``<b>``, ``<i>``, ``<pre>`` (tracebacks) and, for configured
user ids, ``<a href="tg://user?id=…">``; user text has ``&``, ``<`` and ``>`` as entities, so it can add
no tag, link or text mention. Telegram also turns ``@username`` in the text into a mention that
notifies, so outside ``<pre>`` (where Telegram detects nothing) every ``@`` in user text becomes the
full-width ``＠``. Link previews are off.

The limit is 4,096 characters of text *after entity parsing*: tags do not count and ``&lt;`` counts as
one; chatlog measures exactly that, in UTF-16 code units as Telegram does. Groups take about 20
messages a minute (and a chat about one a second): chatlog keeps to 18 a minute and 1 a second.
"""

from __future__ import annotations

import urllib.parse

from chatlog import links
from chatlog._lazy import lazy_pattern
from chatlog.digest import Digest, GroupSummary
from chatlog.platforms import _groups, _text
from chatlog.platforms._answers import answer_code, classify_http, json_body, trimmed, unexpected_answer
from chatlog.platforms._base import Limits, Option, Outcome, Payload, Target, target_origin
from chatlog.platforms._http import post_json
from chatlog.platforms._webhook import Webhook

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import Any, Literal, httpx

_ORIGIN = "https://api.telegram.org"
_URL = lazy_pattern(r"/bot([^/]+)/sendMessage/?")
_TOKEN = lazy_pattern(r"\d{1,20}:[A-Za-z0-9_-]{1,100}")
_CHAT = lazy_pattern(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
_USERNAME = lazy_pattern(r"@?([A-Za-z][A-Za-z0-9_]{4,31})")
_TAG = lazy_pattern(r"<[^<>]*>")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&amp;", "&"))
LIMITS = Limits(body_bytes=100_000, per_minute=18, per_second=1)
"""About 20 messages a minute in a group and one a second in any chat."""
TEXT_CHARS = 4_096
_HTML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_PERMANENT_400 = (
    ("chat not found", "Telegram says the chat does not exist for this bot: check chat_id (a group's is "
     "negative, a supergroup's starts with -100) and that the bot is a member"),
    ("chat_id is empty", "Telegram says chat_id is missing: use telegram://TOKEN@CHAT_ID"),
    ("rights", "Telegram says the bot may not post in this chat: give it the right to send messages"),
    ("thread not found", "Telegram says the message thread does not exist"),
    ("peer_id_invalid", "Telegram says the chat id is invalid: check chat_id"),
    ("bot was blocked", "Telegram says the user blocked the bot"),
)
_REJECTED_400 = ("can't parse entities", "message is too long", "text is empty", "text must be non-empty")


def escape(text: str) -> str:
    """Cleaned user text inert in Telegram HTML outside ``<pre>``: ``&<>`` as entities, ``@`` full-width."""
    return text.translate(_HTML_ESCAPES).replace("@", "＠")


def _escape_pre(text: str) -> str:
    return text.translate(_HTML_ESCAPES)


def visible(html: str) -> str:
    """The text Telegram counts: `html` without tags, its entities decoded."""
    text = _TAG.sub("", html)
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def visible_chars(html: str) -> int:
    """Length of `visible` text in UTF-16 code units, as Telegram measures its 4,096 limit."""
    return _units(visible(html))


def render(digest: Digest, limits: Limits = LIMITS, keyword: str | None = None) -> Payload:
    """The HTML ``sendMessage`` body for `digest` (``chat_id`` goes into the query), within 4,096
    characters after entity parsing and `limits.body_bytes`; mentions only from ``digest.mentions``;
    `keyword` ends the footer."""
    def fits(payload: Payload) -> bool:
        return 0 < visible_chars(payload["text"]) <= TEXT_CHARS

    message = _groups.fit(lambda budget: _body(_html(digest, budget, keyword)), limits.body_bytes, fits)
    return message if message is not None else _fallback(digest, limits, keyword)


def _body(text: str) -> Payload:
    return {"text": text, "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}}


def _html(digest: Digest, budget: _groups.Budget, keyword: str | None) -> str:
    shown = digest.groups[: budget.groups]
    good = "✅ " if digest.all_clear else ""  # Telegram has no colours
    intro = (f"<b>{good}{_text.header_line(digest, escape)}</b>", _text.summary_line(digest, escape),
             _bold(_text.dropped_line(digest.dropped)), _links(links.message_links(digest)))
    blocks = ["\n".join(line for line in intro if line)]
    blocks += [_group(digest, group, budget) for group in shown]
    footer = _text.with_keyword(_text.footer_line(digest, escape), keyword)
    blocks += [_text.more_line(digest.groups[len(shown) :]), f"<i>{footer}</i>" if footer else "",
               _mentions(digest.mentions)]
    return "\n\n".join(block for block in blocks if block)


def _group(digest: Digest, group: GroupSummary, budget: _groups.Budget) -> str:
    view = _groups.group_view(group, digest, budget, escape)
    text = "\n".join(_groups.group_lines(view, _bold))
    if view.traceback:
        # `group_view` escaped the lines for text outside <pre>; inside, Telegram detects no mention, so
        # the "@" of a decorator can stay.
        text += "\n<pre>" + "\n".join(line.replace("＠", "@") for line in view.traceback) + "</pre>"
    found = _links(links.group_links(digest, group))
    return f"{text}\n{found}" if found else text


def _links(pairs: tuple[tuple[str, str], ...]) -> str:
    """``<a href="https://…">Logs</a>``: the URL and the label HTML-escaped (quotes too)."""
    return " · ".join(f'<a href="{links.url_for_markup(url).replace("&", "&amp;")}">'
                      f"{escape(_text.clean(label))}</a>" for label, url in pairs)


def _bold(text: str) -> str:
    return f"<b>{text}</b>" if text else ""


def _mentions(mentions: tuple[str, ...]) -> str:
    """Numeric ids as text mentions, usernames as ``@username``; Telegram has no ``@all``."""
    rendered = []
    for mention in _text.mention_ids(mentions):
        if mention.isascii() and mention.isdigit():
            rendered.append(f'<a href="tg://user?id={mention}">user {mention}</a>')
        elif (found := _USERNAME.fullmatch(mention)) and mention != "all":
            rendered.append(f"@{found.group(1)}")
    return " ".join(rendered)


def _fallback(digest: Digest, limits: Limits, keyword: str | None) -> Payload:
    """The digest's summary as plain escaped text, cut to fit: for digests whose smallest full message
    would not fit."""
    summary = _text.plain_summary(digest, lambda text: text.replace("@", "＠"))
    mentions = _mentions(digest.mentions)
    room = TEXT_CHARS - visible_chars(mentions) - 1
    while True:  # escaping can take five times the room of the text: halve until the body fits
        text = _text_within(summary, keyword, room)
        payload = _body("\n".join(part for part in (text, mentions) if part))
        if room <= 100 or _text.payload_bytes(payload) <= limits.body_bytes:
            return payload
        room //= 2


def _text_within(raw: str, keyword: str | None, limit: int) -> str:
    """`raw` (cleaned, not yet HTML-escaped) cut to leave room for `keyword`, keyword appended, escaped.
    The cut counts UTF-8 bytes, never fewer than the UTF-16 units Telegram counts."""
    tail = "" if not keyword or keyword in raw else f"\n{_text.clean(keyword)}"
    return _escape_pre(_text.truncate_utf8(raw, limit - _units(tail)) + tail)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def classify(response: httpx.Response) -> Outcome:
    """What Telegram's answer means: ``ok: true`` is ok; ``parameters.retry_after`` waits that long;
    ``parameters.migrate_to_chat_id`` names the new chat id; bad tokens and chats are permanent, a
    message Telegram cannot take is rejected."""
    body = json_body(response)
    if body is None or not isinstance(body.get("ok"), bool):
        return classify_http(response) or unexpected_answer(response, "Telegram")
    if body["ok"]:
        return Outcome("ok", answer=trimmed(response)) if response.is_success else unexpected_answer(
            response, "Telegram")
    parameters: dict[str, Any] = body["parameters"] if isinstance(body.get("parameters"), dict) else {}
    code = answer_code(body.get("error_code")) or response.status_code
    description = _text.answer_message(body.get("description"))
    return _refused(response, code, description, parameters)


def _refused(response: httpx.Response, code: int, description: str, parameters: dict[str, Any]) -> Outcome:
    answer = trimmed(response)
    wait = parameters.get("retry_after")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool):
        return Outcome("retry", max(0.0, min(float(wait), 3600.0)),
                       f"Telegram says we send too fast ({code}: {description})", answer)
    moved = answer_code(parameters.get("migrate_to_chat_id"))
    if moved is not None:
        return Outcome("permanent", 0.0, f"Telegram says the group became a supergroup with the new chat id "
                       f"{moved}: use chat_id={moved} (telegram://TOKEN@{moved})", answer)
    if code == 429 or code >= 500:
        return classify_http(response) or Outcome("retry", 5.0, f"Telegram answered {code}: {description}",
                                                  answer)
    if code == 401:
        return Outcome("permanent", 0.0, "Telegram says the bot token is invalid (401): copy it from "
                       "@BotFather again", answer)
    if code == 403:
        return Outcome("permanent", 0.0, f"Telegram says the bot may not post in this chat ({description}): "
                       "add the bot to the group again", answer)
    lower = description.lower()
    for words, reason in _PERMANENT_400:
        if words in lower:
            return Outcome("permanent", 0.0, reason, answer)
    kind: Literal["rejected", "permanent"] = "rejected" if code == 400 else "permanent"
    bug = " (a chatlog bug)" if any(words in lower for words in _REJECTED_400) else ""
    reason = f"Telegram refused the message ({code}: {description or 'no description'}){bug}"
    return Outcome(kind, 0.0, reason, answer)


class Telegram(Webhook):
    """A Telegram chat that a bot posts to: the bot token (the secret) and the chat id."""

    names = ("telegram",)
    title = "Telegram"
    token_name = "bot token"
    signs = False
    origins = (_ORIGIN,)
    hosts = ("api.telegram.org",)
    paths = ("/bot",)
    example = "telegram://123456:BOT_TOKEN@-1001234567890"
    options = (Option("chat_id", "a number (negative for a group) or @channel, e.g. chat_id=-100123"),)
    forms = (("Telegram bot", ("https://api.telegram.org/botTOKEN/sendMessage?chat_id=ID",
                               "telegram://TOKEN@CHAT_ID")),)
    escape = staticmethod(escape)

    def __init__(self, token: str, chat_id: str, *, keyword: str | None = None,
                 origin: str | None = None) -> None:
        """`token` is the whole bot token (``123456:ABC…``), `chat_id` a number (negative for groups) or
        ``@channelusername``; `origin` replaces Telegram's own host, e.g. a local fake."""
        if not _TOKEN.fullmatch(token):
            raise ValueError("a Telegram bot token looks like 123456:ABC-DEF… (from @BotFather)"
                             f"; e.g. {self.example}")
        if not _CHAT.fullmatch(chat_id):
            raise ValueError("chat_id must be a number (negative for a group) or @channelusername"
                             f"; e.g. {self.example}")
        bot_id, _, secret_half = token.partition(":")
        # The secret half is the credential; the bot id before the ":" is public (it is in every message).
        super().__init__(secret_half, keyword=keyword, origin=origin, path=f"/bot{bot_id}:")
        self.endpoint = f"{self.origin}/bot{token}/sendMessage"
        self.chat_id: int | str = int(chat_id) if chat_id[0] != "@" else chat_id

    @classmethod
    def credentials(cls, url: urllib.parse.SplitResult) -> tuple[str, ...]:
        """The bot token and its secret half (after the ``:``), from either destination form."""
        if url.scheme.lower() in ("http", "https"):
            found = _URL.fullmatch(url.path)
            token = urllib.parse.unquote(found.group(1)) if found else ""
        else:
            token = urllib.parse.unquote(url.netloc.partition("@")[0])
        return tuple(part for part in (token, token.partition(":")[2]) if part)

    @classmethod
    def from_target(cls, target: Target) -> Telegram:
        """``telegram://TOKEN@CHAT_ID`` or ``https://api.telegram.org/botTOKEN/sendMessage?chat_id=ID``."""
        if target.secret:
            raise ValueError("Telegram bots have no signing secret: the token is the secret"
                             f"; e.g. {cls.example}")
        origin = target_origin(target, cls.example)
        url = target.url
        chat = target.query.pop("chat_id", "")
        if url.scheme in ("http", "https"):
            found = _URL.fullmatch(url.path)
            if found is None:
                raise ValueError(f"a Telegram URL looks like {_ORIGIN}/botTOKEN/sendMessage?chat_id=ID"
                                 f"; e.g. {cls.example}")
            token = found.group(1)
        else:
            # The token holds a ":" and a channel name starts with "@": split the netloc by hand.
            token, _, chat_in_url = url.netloc.partition("@")
            chat = chat_in_url or chat
        if not chat:
            raise ValueError(f"the destination has no chat id; e.g. {cls.example}")
        return cls(token, chat, keyword=target.keyword, origin=origin)

    def render_text(self, text: str) -> Payload:
        """A plain HTML-escaped message (≤ 4,096 characters), the keyword appended when configured."""
        body = _text_within(_text.clean(text).replace("@", "＠"), self.keyword, TEXT_CHARS)
        return _body(body if body.strip() else "(empty message)")

    def post(self, client: httpx.Client, payload: Payload) -> httpx.Response | Outcome:
        """POST to this chat (``?chat_id=``, as in the URL form): the body is the same for every chat."""
        return post_json(client, self.endpoint, dict(payload), params={"chat_id": str(self.chat_id)})

    def masked(self) -> str:
        """``telegram://***@CHAT_ID``; the endpoint with the token's secret half as ``***`` elsewhere."""
        if self.origin == _ORIGIN:
            return f"telegram://***@{self.chat_id}"
        return f"{super().masked()}/sendMessage?chat_id={self.chat_id}"
