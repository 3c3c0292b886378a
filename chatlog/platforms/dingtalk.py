"""DingTalk group bots (custom robots): endpoint, signing, the markdown message, the answers.

Signing: ``timestamp`` (Unix milliseconds) and ``sign`` go into the URL query beside ``access_token``,
computed afresh for every request (a signature is good for one hour); secrets start with ``SEC``.

Escaping: DingTalk markdown has links, images and headings but no code blocks, and ``@<mobile>`` or
``@<userId>`` in the text is what makes a mention show. User text goes through `_text.inert`
(full-width ``＜＞``, ``ˋ`` for backticks, ``］`` before ``(``/``[``/``:``) and every ``@`` becomes the
full-width ``＠``, so only the mentions chatlog appends from the configuration can match. Tracebacks
are quoted lines (``> ``), their indentation kept with no-break spaces.
"""

from __future__ import annotations

from chatlog import links
from chatlog._lazy import lazy_pattern
from chatlog.digest import Digest, GroupSummary
from chatlog.platforms import _groups, _text
from chatlog.platforms._answers import code_of, coded_answer, json_body, retry_after, trimmed
from chatlog.platforms._base import Limits, Option, Outcome, Payload
from chatlog.platforms._http import post_json
from chatlog.platforms._webhook import Webhook

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import Any, httpx

_PATH = "/robot/send"
_ORIGIN = "https://oapi.dingtalk.com"
LIMITS = Limits(body_bytes=19_000, per_minute=18)
"""20,000-byte request body (we keep 19,000), 20 messages a minute per robot (then blocked 10 minutes)."""

_SECURITY = 310000
_RATE_LIMITED = frozenset({410100, 410101, 130101})
_INDENT = lazy_pattern(r"^ +")
_NO_TOKEN = "DingTalk says the access token does not exist: copy the robot's webhook URL again"
_PERMANENT = {
    300001: _NO_TOKEN,
    300005: _NO_TOKEN,
    400101: _NO_TOKEN,
    400102: "DingTalk says the robot is disabled: turn it on in the group's robot settings",
    400106: "DingTalk says the robot does not exist (it was removed): add it again, use its new webhook URL",
    400013: "DingTalk says the group was dissolved: the robot can no longer post there",
    40035: "DingTalk says a parameter is missing (access_token or the body): check the destination URL",
    400105: "DingTalk says the message type is not supported (a chatlog bug)",
    460101: "DingTalk says the message is too large (a chatlog bug)",
    101002: "DingTalk says the message is too large (a chatlog bug)",
}


def sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(key=secret, message=f"{timestamp_ms}\\n{secret}")), `timestamp_ms` in Unix ms.

    This is the value of the ``sign`` query parameter; it is URL-quoted (``+`` → ``%2B``) when the query
    is built, once, by `post_json`. The arrangement is the mirror image of Feishu's.
    """
    # Imported here, not at module level: chatlog's thread pays for it, not `import chatlog`.
    import base64
    import hashlib
    import hmac

    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def _escape(text: str) -> str:
    """Cleaned user text made inert for DingTalk markdown and text: no tag, link, image or mention."""
    return _text.inert(text).replace("@", "＠")


def render(digest: Digest, limits: Limits = LIMITS, keyword: str | None = None) -> Payload:
    """The ``markdown`` message for `digest`, within `limits.body_bytes`; mentions only from
    ``digest.mentions``; `keyword` (the robot's keyword check) ends the footer."""
    message = _groups.fit(lambda budget: _markdown(digest, budget, keyword), limits.body_bytes)
    return message if message is not None else _fallback(digest, limits, keyword)


def _markdown(digest: Digest, budget: _groups.Budget, keyword: str | None) -> Payload:
    shown = digest.groups[: budget.groups]
    header = _good(digest) + _text.header_line(digest, _escape)
    dropped = _text.bold(_text.dropped_line(digest.dropped))
    blocks = [f"#### {header}", _text.summary_line(digest, _escape), dropped,
              links.markdown_links(links.message_links(digest), _escape)]
    blocks += [_group(digest, group, budget) for group in shown]
    footer = _text.with_keyword(_text.footer_line(digest, _escape), keyword)
    blocks += [_text.more_line(digest.groups[len(shown) :]), footer, _mention_text(digest.mentions)]
    text = "\n\n".join(block for block in blocks if block)
    return {"msgtype": "markdown", "markdown": {"title": header, "text": text}, **_at(digest.mentions)}


def _group(digest: Digest, group: GroupSummary, budget: _groups.Budget) -> str:
    view = _groups.group_view(group, digest, budget, _escape)
    # Two trailing spaces make a line break: some DingTalk clients join single newlines.
    found = links.markdown_links(links.group_links(digest, group), _escape)
    lines = [*_groups.group_lines(view, _text.bold), found]
    text = "  \n".join(line for line in lines if line)
    if view.traceback:
        # No-break spaces keep the indentation: four plain spaces would open a code block in the quote.
        quoted = (f"> {_INDENT.sub(lambda m: chr(0xA0) * len(m.group()), line)}" for line in view.traceback)
        text += "\n\n" + "  \n".join(quoted)
    return text


def _good(digest: Digest) -> str:
    """DingTalk markdown has no colours: an all-clear's header starts with a check mark."""
    return "✅ " if digest.all_clear else ""


def _mention_text(mentions: tuple[str, ...]) -> str:
    return " ".join(f"@{mention}" for mention in _text.mention_ids(mentions) if mention != "all")


def _at(mentions: tuple[str, ...]) -> dict[str, Any]:
    ids = _text.mention_ids(mentions)
    if not ids:
        return {}
    people = [mention for mention in ids if mention != "all"]
    return {"at": {"atMobiles": [m for m in people if _text.is_mobile(m)],
                   "atUserIds": [m for m in people if not _text.is_mobile(m)],
                   "isAtAll": "all" in ids}}


def _fallback(digest: Digest, limits: Limits, keyword: str | None) -> Payload:
    """A ``text`` message with the digest's summary: for digests whose smallest markdown would not fit."""
    mention_text = _mention_text(digest.mentions)

    def make(text: str) -> Payload:
        body = "\n".join(part for part in (text, mention_text) if part)
        content = _text.with_keyword(body, keyword, "\n")
        return {"msgtype": "text", "text": {"content": content}, **_at(digest.mentions)}

    return _text.fit_text(make, _text.plain_summary(digest, _escape), limits.body_bytes)


def classify(response: httpx.Response) -> Outcome:
    """What DingTalk's answer means: ok when ``errcode`` is 0 (or ``"0"``).

    HTTP 200 means nothing here: DingTalk reports signature, keyword, IP, size and rate problems in the
    body. A rate-limited robot is blocked for 10 minutes, so that retry waits 600 s.
    """
    read = coded_answer(response, "DingTalk", ("errcode",))
    if isinstance(read, Outcome):
        return read
    body, code = read
    message, answer = _text.answer_message(body.get("errmsg")), trimmed(response)
    if code == 0:
        return Outcome("ok", answer=answer)
    if code in _RATE_LIMITED:
        return Outcome("retry", 600.0, f"DingTalk says we send too fast ({code}): the robot is blocked for "
                       "10 minutes; chatlog waits and keeps batching", answer)
    if code == -1:
        return Outcome("retry", retry_after(response, 5.0), "DingTalk is busy (-1)", answer)
    rejected = code in (460101, 101002) or 430100 <= code < 430200  # this message's content, not the bot
    return Outcome("rejected" if rejected else "permanent", 0.0, _permanent_reason(code, message), answer)


def _permanent_reason(code: int, message: str) -> str:
    if code == _SECURITY:
        return _security_reason(message)
    if code in _PERMANENT:
        return _PERMANENT[code]
    if 430100 <= code < 430200:
        return f"DingTalk rejected the content ({code}: {message or 'no message'})"
    if 400100 <= code < 400200:
        return f"DingTalk says the token or robot is not usable ({code}: {message}): check the webhook URL"
    return f"DingTalk answered errcode {code}: {message or 'no message'}"


def _security_reason(message: str) -> str:
    lower = message.lower()
    if "keyword" in lower:
        return "DingTalk says the keyword is missing: set keyword= to one of the robot's keywords"
    if "whitelist" in lower or lower.startswith("ip "):
        return (f"DingTalk says this machine's IP address is not allowed ({message}): add it to the "
                "robot's IP allow-list in its security settings")
    if "sign" in lower:
        return ("DingTalk says the signature does not match: check secret= (copy it from the robot's "
                "security settings; it starts with SEC) and this machine's clock")
    if "timestamp" in lower:
        return ("DingTalk says the timestamp is invalid: check this machine's clock (it must be within an "
                "hour), and set secret= if the robot uses signing")
    return (f"DingTalk's security check failed ({message or 'no message'}): check the robot's security "
            "settings (keyword, signing, IP allow-list)")


class DingTalk(Webhook):
    """A DingTalk group robot (custom robot), addressed by its access token."""

    names = ("dingtalk",)
    token_name = "access token"
    example = "dingtalk://ACCESS_TOKEN?secret=SEC..."
    options = (Option("access_token", "the robot's access token, e.g. access_token=1a2b…", secret=True),)
    forms = (("DingTalk group bot", ("https://oapi.dingtalk.com/robot/send?access_token=T", "dingtalk://T")),)
    title = "DingTalk"
    escape = staticmethod(_escape)

    def check_secret(self, secret: str | None) -> None:
        """DingTalk's signing secrets start with ``SEC``."""
        if secret is not None and not secret.startswith("SEC"):
            raise ValueError("DingTalk signing secrets start with SEC; copy it from the robot's security "
                             f"settings; e.g. {self.example}")

    def render_text(self, text: str) -> Payload:
        """A ``text`` message, the keyword appended when it is configured and missing."""

        def make(cut: str) -> Payload:
            return {"msgtype": "text", "text": {"content": _text.with_keyword(cut, self.keyword, "\n")}}

        return _text.fit_text(make, _text.clean(text), self.limits.body_bytes)

    def post(self, client: httpx.Client, payload: Payload) -> httpx.Response | Outcome:
        """POST with ``access_token`` (and ``timestamp`` and ``sign``, computed now) in the query."""
        params = {"access_token": self.token}
        if self.secret is not None:
            timestamp_ms = int(self.clock() * 1000)
            params.update(timestamp=str(timestamp_ms), sign=sign(self.secret, timestamp_ms))
        return post_json(client, self.endpoint, dict(payload), params=params)

    def signature_rejected(self, answer: httpx.Response | Outcome) -> bool:
        """True for 310000 saying "sign not match" or "invalid timestamp"."""
        if code_of(answer, "errcode") != _SECURITY or isinstance(answer, Outcome):
            return False
        message = _text.answer_message((json_body(answer) or {}).get("errmsg")).lower()
        return "sign" in message or "timestamp" in message

    def rejected_twice(self, response: httpx.Response) -> Outcome:
        """The signature refused after a fresh one: the secret or the clock."""
        message = _text.answer_message((json_body(response) or {}).get("errmsg"))
        reason = (f"DingTalk rejected the signature twice ({message}): check secret= (it starts with SEC) "
                  "and that this machine's clock is right (within an hour)")
        return Outcome("permanent", 0.0, reason, trimmed(response))
