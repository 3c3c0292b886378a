"""Feishu and Lark group bots (custom bots): endpoint, signing, the interactive card, the answers.

Signing: ``timestamp`` (Unix seconds, as a string) and ``sign`` go into the JSON body beside
``msg_type``, computed afresh for every request (a signature is good for one hour).

Escaping: card markdown understands ``<at>``, ``<font>``, ``<a>``, ``<link>``, links and images, so
user text goes through `_text.inert` (full-width ``＜＞``, ``ˋ`` for backticks, ``］`` before ``(``/``[``/
``:``); entities such as ``&lt;`` are not used because they would show literally inside the code
blocks that hold tracebacks. The header and the footer note are ``plain_text``, which Feishu does not
parse at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chatlog import links
from chatlog.digest import Digest, GroupSummary
from chatlog.platforms import _groups, _text
from chatlog.platforms._answers import code_of, coded_answer, retry_after, trimmed
from chatlog.platforms._base import Limits, Outcome, Payload
from chatlog.platforms._http import post_json
from chatlog.platforms._webhook import Webhook

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import Any, httpx

_PATH = "/open-apis/bot/v2/hook/"
_ORIGINS = {"feishu": "https://open.feishu.cn", "lark": "https://open.larksuite.com"}
LIMITS = Limits(body_bytes=19_000, per_minute=90, per_second=4)
"""20 KB request body (we keep 19,000 bytes), 100 messages a minute and 5 a second per bot."""

_TEMPLATES = ((logging.CRITICAL, "carmine"), (logging.ERROR, "red"), (logging.WARNING, "orange"),
              (logging.INFO, "blue"))
_SIGNATURE_REJECTED = 19021
_REJECTED = frozenset({19036})
"""Codes that refuse one message's content, not the bot."""
_PERMANENT = {
    19001: "Feishu says the webhook token is invalid or the bot was removed from the group: "
           "copy the bot's webhook URL again",
    19002: "Feishu says the message has no valid msg_type (a chatlog bug)",
    19007: "Feishu says the bot is not enabled: turn it on in the group's bot settings",
    19021: "Feishu says the signature does not match or the timestamp is more than an hour off: "
           "check secret= (the bot's signing secret) and this machine's clock",
    19022: "Feishu says this machine's IP address is not on the bot's allow-list: "
           "add it in the bot's security settings",
    19024: "Feishu says the keyword is missing: set keyword= to one of the bot's keywords",
    19036: "Feishu says the message is too large (a chatlog bug)",
}


def sign(secret: str, timestamp: int) -> str:
    """base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", message=b"")); `timestamp` in Unix seconds.

    The key/message arrangement is the mirror image of DingTalk's.
    """
    # Imported here, not at module level: chatlog's thread pays for it, not `import chatlog`.
    import base64
    import hashlib
    import hmac

    mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def render(digest: Digest, limits: Limits = LIMITS, keyword: str | None = None) -> Payload:
    """The interactive card (card JSON 1.0) for `digest`, within `limits.body_bytes`; `keyword` (the bot's
    keyword check) ends the footer."""
    found = card(digest, lambda shown: _text.payload_bytes(_interactive(shown)) <= limits.body_bytes, keyword)
    return _interactive(found) if found is not None else _fallback(digest, limits, keyword)


def card(digest: Digest, fits: Callable[[Payload], bool], keyword: str | None = None) -> Payload | None:
    """The card object (JSON 1.0: ``config``, ``header``, ``elements``) for `digest`: the fullest one that
    `fits` accepts, or None when even the smallest is refused.

    Group bots send it as ``{"msg_type": "interactive", "card": card}``, app bots as a JSON string in
    ``content``, so each caller's `fits` measures its own request body.
    """
    for budget in _groups.BUDGETS:
        shown = _card(digest, budget, keyword)
        if fits(shown):
            return shown
    return None


def _interactive(card_object: Payload) -> Payload:
    return {"msg_type": "interactive", "card": card_object}


def _card(digest: Digest, budget: _groups.Budget, keyword: str | None) -> Payload:
    shown = digest.groups[: budget.groups]
    dropped = _text.bold(_text.dropped_line(digest.dropped))
    intro = [_text.summary_line(digest, _text.inert), dropped, _mentions(digest.mentions)]
    elements: list[dict[str, Any]] = [_markdown("\n".join(line for line in intro if line)),
                                      _link_buttons(links.message_links(digest)), {"tag": "hr"}]
    elements += [part for group in shown for part in (_markdown(_group(digest, group, budget)),
                                                      _link_buttons(links.group_links(digest, group)),
                                                      _buttons(digest, group))]
    more = _text.more_line(digest.groups[len(shown) :])
    if more:
        elements.append(_markdown(more))
    footer = _text.with_keyword(_text.footer_line(digest, _text.inert), keyword)
    elements += [{"tag": "hr"}, {"tag": "note", "elements": [{"tag": "plain_text", "content": footer}]}]
    header = {"title": {"tag": "plain_text", "content": _text.header_line(digest, _text.inert)},
              "template": "green" if digest.all_clear else _template(digest.level)}
    return {"config": {"wide_screen_mode": True}, "header": header, "elements": [e for e in elements if e]}


def _group(digest: Digest, group: GroupSummary, budget: _groups.Budget) -> str:
    view = _groups.group_view(group, digest, budget, _text.inert)
    text = "\n".join(_groups.group_lines(view, _text.bold))
    if view.traceback:
        text += "\n```\n" + "\n".join(view.traceback) + "\n```"
    return text


def _buttons(digest: Digest, group: GroupSummary) -> dict[str, Any]:
    """Mute 1h / Ack under a group, for app bots with a ChatOps receiver (``Digest.actions``); the value
    is the command the receiver runs when the button is pressed, the group, and the card's key (the
    batch: the receiver answers with this card updated in place, `chatlog.chatops.cards`)."""
    if not digest.actions or not group.group_id:
        return {}
    commands = (("Mute 1h", f"mute #{group.group_id} 1h"), ("Ack", f"ack #{group.group_id}"))
    return {"tag": "action", "actions": [
        {"tag": "button", "text": {"tag": "plain_text", "content": label}, "type": "default",
         "value": {"command": command, "group": group.group_id, "card": digest.batch}}
        for label, command in commands]}


def _link_buttons(pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The ``links=`` as buttons that open their URL (labels are plain text: never parsed)."""
    if not pairs:
        return {}
    return {"tag": "action", "actions": [
        {"tag": "button", "text": {"tag": "plain_text", "content": _text.clean(label)}, "type": "default",
         "url": url} for label, url in pairs]}


def _markdown(content: str) -> dict[str, Any]:
    return {"tag": "markdown", "content": content} if content else {}


def _mentions(mentions: tuple[str, ...]) -> str:
    return " ".join(f"<at id={mention}></at>" for mention in _text.mention_ids(mentions))


def _template(level: int) -> str:
    return next((colour for floor, colour in _TEMPLATES if level >= floor), "grey")


def _fallback(digest: Digest, limits: Limits, keyword: str | None) -> Payload:
    """A text message with the digest's summary: for digests whose smallest card would not fit."""
    at = "".join(f'<at user_id="{m}">{"所有人" if m == "all" else ""}</at>'
                 for m in _text.mention_ids(digest.mentions))

    def make(text: str) -> Payload:
        body = "\n".join(part for part in (text, at) if part)
        return _text_payload(_text.with_keyword(body, keyword, "\n"))

    return _text.fit_text(make, _text.plain_summary(digest, _text.inert), limits.body_bytes)


def _text_payload(text: str) -> Payload:
    return {"msg_type": "text", "content": {"text": text}}


def classify(response: httpx.Response) -> Outcome:
    """What Feishu's answer means: ok when ``code`` is 0 (or, without ``code``, ``StatusCode`` is 0).

    HTTP 200 means nothing here: Feishu reports signature, keyword, size and rate problems in the body.
    """
    # "code" wins: error bodies may carry StatusCode 0 beside a non-zero code.
    read = coded_answer(response, "Feishu", ("code", "StatusCode"))
    if isinstance(read, Outcome):
        return read
    body, code = read
    message_key = "msg" if "code" in body else "StatusMessage"
    message, answer = _text.answer_message(body.get(message_key)), trimmed(response)
    if code == 0:
        return Outcome("ok", answer=answer)
    if code == 9499 and "too many request" in message.lower():
        return Outcome("retry", retry_after(response, 5.0), "Feishu says we send too fast (9499)", answer)
    if code == 11232:
        return Outcome("retry", retry_after(response, 10.0), "Feishu is throttling this bot (11232)", answer)
    if code == 9499:
        return Outcome("rejected", 0.0, "Feishu says Bad Request (9499): the message was malformed "
                       "(a chatlog bug)", answer)
    reason = _PERMANENT.get(code, f"Feishu answered code {code}: {message or 'no message'}")
    return Outcome("rejected" if code in _REJECTED else "permanent", 0.0, reason, answer)


class Feishu(Webhook):
    """A Feishu or Lark group bot (custom bot), addressed by its webhook token."""

    names = ("feishu", "lark")
    example = "feishu://TOKEN?secret=SIGNING_SECRET"
    forms = (("Feishu group bot", ("https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN", "feishu://TOKEN")),
             ("Lark group bot", ("https://open.larksuite.com/open-apis/bot/v2/hook/TOKEN", "lark://TOKEN")))
    title = "Feishu"
    escape = staticmethod(_text.inert)

    def render_text(self, text: str) -> Payload:
        """A ``text`` message, the keyword appended when it is configured and missing."""
        def make(cut: str) -> Payload:
            return _text_payload(_text.with_keyword(cut, self.keyword, "\n"))

        return _text.fit_text(make, _text.no_tags(text), self.limits.body_bytes)

    def post(self, client: httpx.Client, payload: Payload) -> httpx.Response | Outcome:
        """POST with ``timestamp`` and ``sign`` in the body, computed now, when a secret is set."""
        body = dict(payload)
        if self.secret is not None:
            timestamp = int(self.clock())
            body["timestamp"] = str(timestamp)
            body["sign"] = sign(self.secret, timestamp)
        return post_json(client, self.endpoint, body)

    def signature_rejected(self, answer: httpx.Response | Outcome) -> bool:
        """True for Feishu's 19021 (signature or timestamp)."""
        return code_of(answer, "code") == _SIGNATURE_REJECTED

    def rejected_twice(self, response: httpx.Response) -> Outcome:
        """19021 after a fresh signature: the secret or the clock."""
        reason = ("Feishu rejected the signature twice (19021): check secret= (the bot's signing secret) "
                  "and that this machine's clock is right (within an hour)")
        return Outcome("permanent", 0.0, reason, trimmed(response))
