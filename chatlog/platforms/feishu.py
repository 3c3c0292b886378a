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

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from chatlog.digest import Digest, GroupSummary
from chatlog.platforms._base import (
    Destination,
    Limits,
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
    BUDGETS,
    Budget,
    answer_message,
    bold,
    dropped_line,
    fit_text,
    footer_line,
    group_lines,
    group_view,
    header_line,
    inert,
    mention_ids,
    more_line,
    no_tags,
    payload_bytes,
    plain_summary,
    summary_line,
    with_default_keyword,
    with_keyword,
)

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
    mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def render(digest: Digest, limits: Limits = LIMITS) -> Payload:
    """The interactive card (card JSON 1.0) for `digest`, within `limits.body_bytes`."""
    found = card(digest, lambda shown: payload_bytes(_interactive(shown)) <= limits.body_bytes)
    return _interactive(found) if found is not None else _fallback(digest, limits)


def card(digest: Digest, fits: Callable[[Payload], bool]) -> Payload | None:
    """The card object (JSON 1.0: ``config``, ``header``, ``elements``) for `digest`: the fullest one that
    `fits` accepts, or None when even the smallest is refused.

    Group bots send it as ``{"msg_type": "interactive", "card": card}``, app bots as a JSON string in
    ``content``, so each caller's `fits` measures its own request body.
    """
    for budget in BUDGETS:
        shown = _card(digest, budget)
        if fits(shown):
            return shown
    return None


def _interactive(card_object: Payload) -> Payload:
    return {"msg_type": "interactive", "card": card_object}


def _card(digest: Digest, budget: Budget) -> Payload:
    shown = digest.groups[: budget.groups]
    intro = [summary_line(digest, inert), bold(dropped_line(digest.dropped)), _mentions(digest.mentions)]
    elements: list[dict[str, Any]] = [_markdown("\n".join(line for line in intro if line)), {"tag": "hr"}]
    elements += [_markdown(_group(digest, group, budget)) for group in shown]
    more = more_line(digest.groups[len(shown) :])
    if more:
        elements.append(_markdown(more))
    footer = with_keyword(footer_line(digest, inert), digest.context.keyword)
    elements += [{"tag": "hr"}, {"tag": "note", "elements": [{"tag": "plain_text", "content": footer}]}]
    header = {"title": {"tag": "plain_text", "content": header_line(digest, inert)},
              "template": _template(digest.level)}
    return {"config": {"wide_screen_mode": True}, "header": header, "elements": [e for e in elements if e]}


def _group(digest: Digest, group: GroupSummary, budget: Budget) -> str:
    view = group_view(group, digest, budget, inert)
    text = "\n".join(group_lines(view, bold))
    if view.traceback:
        text += "\n```\n" + "\n".join(view.traceback) + "\n```"
    return text


def _markdown(content: str) -> dict[str, Any]:
    return {"tag": "markdown", "content": content} if content else {}


def _mentions(mentions: tuple[str, ...]) -> str:
    return " ".join(f"<at id={mention}></at>" for mention in mention_ids(mentions))


def _template(level: int) -> str:
    return next((colour for floor, colour in _TEMPLATES if level >= floor), "grey")


def _fallback(digest: Digest, limits: Limits) -> Payload:
    """A text message with the digest's summary: for digests whose smallest card would not fit."""
    at = "".join(f'<at user_id="{m}">{"所有人" if m == "all" else ""}</at>'
                 for m in mention_ids(digest.mentions))

    def make(text: str) -> Payload:
        body = "\n".join(part for part in (text, at) if part)
        return _text_payload(with_keyword(body, digest.context.keyword, "\n"))

    return fit_text(make, plain_summary(digest, inert), limits.body_bytes)


def _text_payload(text: str) -> Payload:
    return {"msg_type": "text", "content": {"text": text}}


def classify(response: httpx.Response) -> Outcome:
    """What Feishu's answer means: ok when ``code`` is 0 (or, without ``code``, ``StatusCode`` is 0).

    HTTP 200 means nothing here: Feishu reports signature, keyword, size and rate problems in the body.
    """
    decided = classify_http(response)
    if decided is not None:
        return decided
    body = json_body(response)
    # "code" wins: error bodies may carry StatusCode 0 beside a non-zero code.
    code_key, message_key = ("code", "msg") if body and "code" in body else ("StatusCode", "StatusMessage")
    code = answer_code(body.get(code_key)) if body else None
    if body is None or code is None or (code == 0 and not response.is_success):
        return unexpected_answer(response, "Feishu")
    message, answer = answer_message(body.get(message_key)), trimmed(response)
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


def _signature_rejected(answer: httpx.Response | Outcome) -> bool:
    if isinstance(answer, Outcome):
        return False
    body = json_body(answer)
    return body is not None and answer_code(body.get("code")) == _SIGNATURE_REJECTED


class Feishu(Destination):
    """A Feishu or Lark group bot (custom bot), addressed by its webhook token."""

    names = ("feishu", "lark")
    hosts = ("open.feishu.cn", "open.larksuite.com")
    paths = (_PATH,)
    example = "feishu://TOKEN?secret=SIGNING_SECRET"
    forms = (("Feishu group bot", ("https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN", "feishu://TOKEN")),
             ("Lark group bot", ("https://open.larksuite.com/open-apis/bot/v2/hook/TOKEN", "lark://TOKEN")))
    escape = staticmethod(inert)

    def __init__(
        self,
        token: str,
        *,
        secret: str | None = None,
        keyword: str | None = None,
        platform: str = "feishu",
        origin: str | None = None,
        path: str = _PATH,
    ) -> None:
        """`origin` (``scheme://host[:port]``) replaces the platform's own host, e.g. a local inbox; `path`
        the hook path before the token (a relay's own path)."""
        check_token(token, "webhook token", self.example)
        if platform not in _ORIGINS:
            raise ValueError(f"platform must be 'feishu' or 'lark', not {platform!r}"
                             f"; e.g. {self.example}")
        self.platform = platform
        self.token = token
        self.secret = secret or None
        self.keyword = keyword or None
        self.origin = origin or _ORIGINS[platform]
        self.path = path
        self.endpoint = f"{self.origin}{path}{token}"
        self.limits = LIMITS
        self.clock: Callable[[], float] = time.time

    @classmethod
    def from_target(cls, target: Target) -> Feishu:
        """``feishu://TOKEN``, ``lark://TOKEN``, or ``http(s)://host[:port]/open-apis/bot/v2/hook/TOKEN``."""
        origin = target_origin(target, cls.example)
        url = target.url
        path = _PATH
        if url.scheme in ("http", "https"):
            if not url.path.startswith(_PATH) and not target.relay:
                raise ValueError(f"a Feishu webhook URL looks like https://open.feishu.cn{_PATH}TOKEN"
                                 f"; e.g. {cls.example}")
            if target.relay:  # the token is the last part of a relay's path: /relay/feishu/TOKEN
                head, _, token = url.path.rstrip("/").rpartition("/")
                path = f"{head}/"
            else:
                token = url.path[len(_PATH) :].strip("/")
        else:
            token = url.netloc
        return cls(token, secret=target.secret, keyword=target.keyword, platform=target.platform,
                   origin=origin, path=path)

    def render(self, digest: Digest) -> Payload:
        """The card for `digest` (see `render`), with this destination's keyword when the digest has none."""
        return render(with_default_keyword(digest, self.keyword), self.limits)

    def render_text(self, text: str) -> Payload:
        """A ``text`` message, the keyword appended when it is configured and missing."""
        def make(cut: str) -> Payload:
            return _text_payload(with_keyword(cut, self.keyword, "\n"))

        return fit_text(make, no_tags(text), self.limits.body_bytes)

    def send(self, client: httpx.Client, payload: Payload) -> Outcome:
        """Sign, POST, classify; after a signature rejection, sign once more and resend. Never raises."""
        try:
            answer = self._post(client, payload)
            if self.secret is not None and _signature_rejected(answer):
                answer = self._post(client, payload)  # a stale timestamp or a clock step: one fresh try
                if _signature_rejected(answer):
                    return outcome_of(answer, _clock_or_secret, self.secrets)
            return outcome_of(answer, classify, self.secrets)
        except Exception as exc:
            return Outcome("retry", reason=f"chatlog failed while sending to Feishu ({type(exc).__name__})")

    def _post(self, client: httpx.Client, payload: Payload) -> httpx.Response | Outcome:
        body = dict(payload)
        if self.secret is not None:
            timestamp = int(self.clock())
            body["timestamp"] = str(timestamp)
            body["sign"] = sign(self.secret, timestamp)
        return post_json(client, self.endpoint, body)

    def masked(self) -> str:
        """``feishu://***`` (or ``lark://***``); the endpoint with ``***`` for a host of your own."""
        if is_official(self.origin, self.hosts):
            return f"{self.platform}://***"
        return f"{self.origin}{self.path}***"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The webhook token and the signing secret."""
        return tuple(value for value in (self.token, self.secret) if value)


def _clock_or_secret(response: httpx.Response) -> Outcome:
    reason = ("Feishu rejected the signature twice (19021): check secret= (the bot's signing secret) "
              "and that this machine's clock is right (within an hour)")
    return Outcome("permanent", 0.0, reason, trimmed(response))
