"""Slack incoming webhooks: endpoint, Block Kit with a ``text`` fallback, mentions, the plain-text answers.

No ``sign``: an incoming webhook URL is its own secret (``/services/T…/B…/SECRET``).

Escaping: in ``mrkdwn`` only ``<…>`` is markup that pings or links (``<!channel>``, ``<@U…>``,
``<http://…|label>``), so user text gets ``&``, ``<`` and ``>`` as ``&amp;``, ``&lt;``, ``&gt;`` (Slack's
own rule) and backticks as ``ˋ`` (no code span or fence ends early); every text object is ``verbatim``
(no automatic parsing of names) and ``link_names`` is never set, so a bare ``@channel`` stays text.
Mentions come only from the configuration: ``all`` → ``<!channel>``, ``here`` → ``<!here>``, ``U…`` /
``W…`` → ``<@id>``, ``S…`` → ``<!subteam^id>``.

Limits, counted in UTF-16 code units of the text as sent (never less than Slack's characters): ≤ 50
blocks, ``section`` text ≤ 3,000, the blocks' text together ≤ 11,000 (Slack refuses about 12,000 with
``msg_blocks_too_long``), the ``text`` fallback ≤ 3,000 (Slack cuts at 40,000; a notification shows far
less). About one message a second per webhook.
"""

from __future__ import annotations

import re
import urllib.parse

from chatlog import links
from chatlog._lazy import lazy_pattern
from chatlog.digest import Digest, GroupSummary
from chatlog.platforms import _groups, _text
from chatlog.platforms._answers import retry_after, trimmed, unexpected_answer
from chatlog.platforms._base import Limits, Outcome, Payload, Target, check_token, target_origin
from chatlog.platforms._http import post_json
from chatlog.platforms._webhook import Webhook

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import Any, Literal, httpx

_ORIGIN = "https://hooks.slack.com"
_PATH = "/services/"
_URL = lazy_pattern(r"/services/([^/]+)/([^/]+)/([^/]+)/?")
LIMITS = Limits(body_bytes=100_000, per_minute=50, per_second=1)
"""About one message a second per webhook (short bursts are tolerated)."""
SECTION_CHARS = 3_000
MAX_BLOCKS = 50
BLOCKS_CHARS = 11_000
TEXT_CHARS = 3_000
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "ˋ"})
_PERMANENT = {
    "invalid_token": "Slack says the webhook's token is invalid: copy the webhook URL again",
    "no_service": "Slack says the webhook does not exist or was disabled: create it again, use its new URL",
    "no_service_id": "Slack says the webhook URL is incomplete: copy the whole URL again",
    "no_team": "Slack says the workspace of the webhook does not exist",
    "team_disabled": "Slack says the webhook's workspace is disabled",
    "channel_not_found": "Slack says the webhook's channel does not exist",
    "channel_is_archived": "Slack says the webhook's channel is archived: unarchive it or use another one",
    "action_prohibited": "Slack says an admin restricted posting to the webhook's channel",
    "posting_to_general_channel_denied": "Slack says only admins may post to the webhook's #general channel",
}
_REJECTED = frozenset({"invalid_payload", "no_text", "too_many_attachments", "invalid_blocks",
                       "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long", "invalid_attachments"})
"""Answers that refuse this message's content (a chatlog bug), not the webhook."""


def _chars(text: str) -> int:
    """Length in UTF-16 code units: at least the character count Slack checks."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def escape(text: str) -> str:
    """Cleaned user text made inert in ``mrkdwn``: ``&``, ``<``, ``>`` as entities, backticks as ``ˋ``."""
    return text.translate(_ESCAPES)


def render(digest: Digest, limits: Limits = LIMITS, keyword: str | None = None) -> Payload:
    """Block Kit sections for `digest` (header, groups, the rest, a context footer) with a ``text``
    fallback, within Slack's limits and `limits.body_bytes`; mentions only from ``digest.mentions``;
    `keyword` ends the footer."""
    message = _groups.fit(lambda budget: _message(digest, budget, keyword), limits.body_bytes, within_limits)
    return message if message is not None else _fallback(digest, limits, keyword)


def _message(digest: Digest, budget: _groups.Budget, keyword: str | None) -> Payload:
    shown = digest.groups[: budget.groups]
    mentions = _mentions(digest.mentions)
    intro = [f"*{_text.header_line(digest, escape)}*", mentions, _text.summary_line(digest, escape),
             _bold(_text.dropped_line(digest.dropped)), _links(links.message_links(digest))]
    blocks = [_section("\n".join(line for line in intro if line)), {"type": "divider"}]
    blocks += [_section(_group(digest, group, budget)) for group in shown]
    more = _text.more_line(digest.groups[len(shown) :])
    if more:
        blocks.append(_section(more))
    footer = _text.with_keyword(_text.footer_line(digest, escape), keyword)
    blocks.append({"type": "context", "elements": [_mrkdwn(footer or "chatlog")]})
    text = _fallback_text(digest, mentions, keyword)
    if digest.all_clear:  # Slack's green bar exists only beside an attachment's blocks
        return {"text": text, "attachments": [{"color": "good", "blocks": blocks}]}
    return {"text": text, "blocks": blocks}


def _group(digest: Digest, group: GroupSummary, budget: _groups.Budget) -> str:
    view = _groups.group_view(group, digest, budget, escape)
    text = "\n".join(_groups.group_lines(view, _bold))
    if view.traceback:
        text += "\n```\n" + "\n".join(view.traceback) + "\n```"
    found = _links(links.group_links(digest, group))
    return f"{text}\n{found}" if found else text


def _links(pairs: tuple[tuple[str, str], ...]) -> str:
    """``<https://…|Logs>``: Slack's link syntax, the label escaped, ``|`` and ``>`` quoted in the URL."""
    return " · ".join(f"<{links.url_for_markup(url)}|{escape(_text.clean(label))}>" for label, url in pairs)


def _bold(text: str) -> str:
    return f"*{text}*" if text else ""


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _mentions(mentions: tuple[str, ...]) -> str:
    """Slack's mention syntax for each configured id that has one (see the module docstring)."""
    rendered = []
    for mention in _text.mention_ids(mentions):
        if mention in ("all", "channel", "everyone"):
            rendered.append("<!channel>")
        elif mention == "here":
            rendered.append("<!here>")
        elif re.fullmatch(r"[UW][A-Z0-9]{2,}", mention):
            rendered.append(f"<@{mention}>")
        elif re.fullmatch(r"S[A-Z0-9]{2,}", mention):
            rendered.append(f"<!subteam^{mention}>")
    return " ".join(dict.fromkeys(rendered))


def _fallback_text(digest: Digest, mentions: str, keyword: str | None) -> str:
    """The notification text: the mentions, the header and the summary line, within `TEXT_CHARS`."""
    prefix = f"{mentions}\n" if mentions else ""
    lines = (_text.header_line(digest, escape), _text.summary_line(digest, escape),
             _text.dropped_line(digest.dropped))
    return prefix + _with_keyword_within("\n".join(line for line in lines if line), keyword,
                                         TEXT_CHARS - _chars(prefix))


def _with_keyword_within(text: str, keyword: str | None, limit: int) -> str:
    """`text` cut to leave room for `keyword` (escaped), then the keyword when `text` lacks it."""
    tail = "" if not keyword or keyword in text else f"\n{escape(_text.clean(keyword))}"
    cut = _text.truncate_utf8(text, limit - _chars(tail))  # UTF-8 bytes are never fewer than UTF-16 units
    if cut != text and cut.endswith(_text.MARKER):  # a cut through "&amp;" would show a broken entity
        cut = re.sub(r"&[a-z]{0,3}$", "", cut[: -len(_text.MARKER)]) + _text.MARKER
    return cut + tail


def within_limits(payload: Payload) -> bool:
    """True when `payload` keeps Slack's limits on blocks, section text and the ``text`` fallback."""
    blocks = blocks_of(payload)
    texts = [element["text"] for block in blocks for element in _text_objects(block)]
    return (len(blocks) <= MAX_BLOCKS and all(_chars(text) <= SECTION_CHARS for text in texts)
            and sum(_chars(text) for text in texts) <= BLOCKS_CHARS
            and _chars(payload.get("text", "")) <= TEXT_CHARS)


def blocks_of(payload: Payload) -> list[dict[str, Any]]:
    """The message's blocks, also those inside its attachments (an all-clear's)."""
    inner = [block for item in payload.get("attachments") or [] for block in item.get("blocks") or []]
    return [*(payload.get("blocks") or []), *inner]


def _text_objects(block: dict[str, Any]) -> list[dict[str, Any]]:
    if "text" in block:
        return [block["text"]]
    return list(block.get("elements", []))


def _fallback(digest: Digest, limits: Limits, keyword: str | None) -> Payload:
    """One section with the digest's summary: for digests whose smallest full message would not fit."""
    mentions = _mentions(digest.mentions)
    summary = "\n".join(part for part in (mentions, _text.plain_summary(digest, escape)) if part)

    def make(text: str) -> Payload:
        section = _with_keyword_within(text or "…", keyword, SECTION_CHARS)
        return {"text": section, "blocks": [_section(section)]}

    return _text.fit_text(make, summary, limits.body_bytes)


def classify(response: httpx.Response) -> Outcome:
    """What Slack's plain-text answer means: ``ok`` (HTTP 200) is ok; 429 waits ``Retry-After``; 5xx is
    retried; configuration errors are permanent, content errors reject this message."""
    status, word, answer = response.status_code, trimmed(response, 100).strip(), trimmed(response)
    if status == 429:
        return Outcome("retry", retry_after(response, 1.0), "Slack says we send too fast (HTTP 429)", answer)
    if status >= 500:
        return Outcome("retry", retry_after(response, 0.0), f"Slack answered HTTP {status} ({word[:40]})",
                       answer)
    if status == 200 and word == "ok":
        return Outcome("ok", answer=answer)
    if word in _PERMANENT:
        return Outcome("permanent", 0.0, _PERMANENT[word], answer)
    if word in _REJECTED:
        return Outcome("rejected", 0.0, f"Slack refused the message ({word}, a chatlog bug)", answer)
    if status == 200 or not re.fullmatch(r"[a-z_]{1,60}", word):
        return unexpected_answer(response, "Slack")
    kind: Literal["rejected", "permanent"] = "rejected" if status == 400 else "permanent"
    return Outcome(kind, 0.0, f"Slack answered HTTP {status}: {word}", answer)


class Slack(Webhook):
    """A Slack incoming webhook, addressed by its ``T…/B…/SECRET`` path (the last part is the secret)."""

    names = ("slack",)
    title = "Slack"
    signs = False
    origins = (_ORIGIN,)
    hosts = ("hooks.slack.com",)
    paths = (_PATH,)
    example = "slack://T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
    forms = (("Slack incoming webhook", ("https://hooks.slack.com/services/T/B/X", "slack://T/B/X")),)
    escape = staticmethod(escape)

    @classmethod
    def credentials(cls, url: urllib.parse.SplitResult) -> tuple[str, ...]:
        """The webhook secret: the last part of ``slack://T/B/SECRET`` or of the webhook URL's path."""
        path = url.path if url.scheme.lower() in ("http", "https") else f"{_PATH}{url.netloc}{url.path}"
        found = _URL.fullmatch(path)
        return (urllib.parse.unquote(found.group(3)),) if found else ()

    @classmethod
    def from_target(cls, target: Target) -> Slack:
        """``slack://T/B/SECRET`` or ``https://hooks.slack.com/services/T/B/SECRET`` (any host)."""
        origin = target_origin(target, cls.example)
        url = target.url
        path = url.path if url.scheme in ("http", "https") else f"{_PATH}{url.netloc}{url.path}"
        found = _URL.fullmatch(path)
        if found is None:
            raise ValueError(f"a Slack webhook URL looks like {_ORIGIN}{_PATH}T…/B…/SECRET"
                             f"; e.g. {cls.example}")
        team, webhook, token = found.groups()
        check_token(team, "workspace id (T…)", cls.example)
        check_token(webhook, "webhook id (B…)", cls.example)
        return cls(token, secret=target.secret, keyword=target.keyword, origin=origin,
                   path=f"{_PATH}{team}/{webhook}/")

    def render_text(self, text: str) -> Payload:
        """A ``text`` message (escaped, ≤ 3,000 characters), the keyword appended when configured."""
        body = _with_keyword_within(escape(_text.clean(text)), self.keyword, TEXT_CHARS)
        return {"text": body or "(empty message)"}

    def post(self, client: httpx.Client, payload: Payload) -> httpx.Response | Outcome:
        """POST the payload (nothing to sign: the URL is the credential)."""
        return post_json(client, self.endpoint, dict(payload))
