"""What the web inbox shows, as JSON: every request the fake platforms answered, who it was for, who it
would notify, and — for a refused one — the platform's answer with chatlog's own explanation of it.

``GET /api/messages`` (and each server-sent event of ``GET /api/events``) is :func:`snapshot`:

    {"last": 7,                       # seq of the newest message; ask ?since=7 for what comes after
     "receivers": [{"key": "feishu/TOKEN", "kind": "bot", "platform": "feishu", "url": ..., ...},
                   {"key": "feishu-app/cli_…", "kind": "app", "recipients": ["ou_a", ...], ...},
                   {"key": "dingtalk/NOPE", "kind": "unknown", ...}],      # tokens no bot has
     "messages": [{"seq": 1, "receiver": "feishu/TOKEN", "accepted": true, "payload": {...},
                   "notifies": ["all"], "explanation": "", ...}, ...]}     # oldest first

The page (``inbox_static/``) renders ``payload`` as the chat client would; this module only decides
facts that need chatlog's knowledge (answers, mentions), so they are testable with plain values.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from chatlog.platforms._base import Destination
from chatlog.testing.apps import FakeApp
from chatlog.testing.bots import FakeBot, Received
from chatlog.testing.feishu_app import MESSAGES_PATH, TOKEN_PATH
from chatlog.testing.rules import PlatformRules, dig, dig_str

if TYPE_CHECKING:
    from chatlog.testing.server import FakePlatforms

BODY_PREVIEW_CHARS = 2000
MAX_MESSAGES = 1000
"""At most this many (the newest) in one snapshot, so a page opened on a long-running serve stays quick."""
REDACTED = "***"
_CONSEQUENCES = {
    "retry": "chatlog keeps the records and sends them again later",
    "rejected": "chatlog counts this message's records as dropped and goes on with the next message",
    "permanent": "chatlog stops sending to this destination until its configuration is fixed",
}
_NO_ANSWER = ("no HTTP answer: the connection was closed or reset (an injected fault); "
              "chatlog keeps the records and sends them again later")

Receiver = FakeBot | FakeApp


def snapshot(fake: FakePlatforms, since: int = 0) -> dict[str, Any]:
    """The inbox as JSON: all receivers, and the messages after seq `since` (oldest first)."""
    received = fake.all_received()
    known: dict[tuple[str, str], Receiver] = {(bot.platform, bot.token): bot for bot in fake.bots}
    known.update({(app.platform, app.app_id): app for app in fake.apps})
    first = max(since, len(received) - MAX_MESSAGES)  # a long-running serve: the newest only
    messages = [message_entry(seq, item, known.get((item.platform, item.token)))
                for seq, item in enumerate(received[first:], start=first + 1)]
    return {"last": len(received), "receivers": receivers(known.values(), received), "messages": messages}


def receivers(known: Iterable[Receiver], received: Sequence[Received]) -> list[dict[str, Any]]:
    """Every bot and app, then each token that was addressed but belongs to no one."""
    listed = [_receiver_entry(receiver) for receiver in known]
    keys = {entry["key"] for entry in listed}
    for item in received:
        key = receiver_key(item.platform, item.token)
        if key not in keys:
            keys.add(key)
            listed.append({"key": key, "kind": "unknown", "platform": item.platform, "token": item.token,
                           "title": f"{item.platform} · unknown token", "url": "", "security": [],
                           "recipients": []})
    return listed


def receiver_key(platform: str, token: str) -> str:
    """The key that ties messages to their receiver: ``platform/token`` (``platform/app_id`` for apps)."""
    return f"{platform}/{token}"


def _receiver_entry(receiver: Receiver) -> dict[str, Any]:
    if isinstance(receiver, FakeApp):
        recipients = [rid for ids in receiver.settings.recipients.values() for rid in ids]
        first_type = next(iter(receiver.settings.recipients), "open_id")
        return {"key": receiver_key(receiver.platform, receiver.app_id), "kind": "app",
                "platform": receiver.platform, "token": receiver.app_id,
                "title": f"{receiver.platform} · {receiver.app_id}", "url": receiver.url(first_type),
                "security": ["app secret"], "recipients": recipients}
    security = (["signature"] if receiver.secret else []) + (
        [f"keyword “{receiver.keyword}”"] if receiver.keyword else [])
    return {"key": receiver_key(receiver.platform, receiver.token), "kind": "bot",
            "platform": receiver.platform, "token": receiver.token, "title": f"{receiver.platform} group bot",
            "url": receiver.url, "security": security, "recipients": []}


def message_entry(seq: int, item: Received, receiver: Receiver | None) -> dict[str, Any]:
    """One request as the page shows it; the app secret of a token request is replaced by ``***``."""
    payload = item.payload
    kind = "token" if item.path == TOKEN_PATH else "message"
    if kind == "token" and payload is not None and "app_secret" in payload:
        payload = {**payload, "app_secret": REDACTED}
    content = _app_content(payload) if item.path == MESSAGES_PATH else None
    shown = content if content is not None else payload
    return {
        "seq": seq,
        "at": item.at,
        "receiver": receiver_key(item.platform, item.token),
        "known": receiver is not None,
        "platform": item.platform,
        "kind": kind,
        "recipient": dig_str(payload, "receive_id") if item.path == MESSAGES_PATH else "",
        "recipient_type": item.query.get("receive_id_type", "") if item.path == MESSAGES_PATH else "",
        "accepted": item.accepted,
        "status": item.status,
        "answer": item.answer,
        "explanation": "" if item.accepted else explanation(item.platform, item.status, item.answer),
        "notifies": notified(item.platform, payload) if kind == "message" else [],
        "text": receiver.text_of(item.payload) if receiver is not None and item.payload is not None else "",
        "payload": payload,
        "content": content,
        "body": "" if shown is not None else item.body.decode("utf-8", "replace")[:BODY_PREVIEW_CHARS],
    }


def _app_content(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """The app send API carries its message as a JSON string in ``content``: decoded, or None."""
    raw = dig(payload, "content")
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def explanation(platform: str, status: int, answer: dict[str, Any] | None) -> str:
    """chatlog's reading of a refusal: the reason its platform module gives, and what chatlog then does.

    The platform module is found through the destination registry, so a new platform explains its own
    answers. "" when no module knows `platform` or the answer means success.
    """
    if status == 0:
        return _NO_ANSWER
    classify = _classifier(platform)
    if classify is None:
        return ""
    import httpx  # only the inbox needs it here; `import chatlog.testing` stays cheap

    body = json.dumps(answer).encode() if answer is not None else b""
    response = httpx.Response(status, content=body, headers={"content-type": "application/json"},
                              request=httpx.Request("POST", "http://127.0.0.1/"))
    outcome = classify(response)
    if outcome.kind == "ok":
        return ""
    consequence = _CONSEQUENCES.get(outcome.kind, "")
    if outcome.kind == "permanent" and _one_recipient(platform, response):
        consequence = "chatlog skips this recipient from now on; the other recipients still get alerts"
    wait = f" (after {outcome.retry_after:g} s at the earliest)" if outcome.retry_after else ""
    return f"{outcome.reason.rstrip('.')}. {consequence}{wait}." if consequence else outcome.reason


def _classifier(platform: str) -> Any:
    cls = _destination_class(platform)
    return getattr(sys.modules[cls.__module__], "classify", None) if cls is not None else None


def _one_recipient(platform: str, response: Any) -> bool:
    """True when an app bot's answer concerns one recipient only (``verdict(...).scope``)."""
    cls = _destination_class(platform)
    verdict = getattr(sys.modules[cls.__module__], "verdict", None) if cls is not None else None
    return verdict is not None and verdict(response, "the recipient", "").scope == "recipient"


def _destination_class(platform: str) -> type[Destination] | None:
    from chatlog.destinations import platform_classes

    return next((cls for cls in platform_classes() if platform in cls.names), None)


def notified(platform: str, payload: dict[str, Any] | None) -> list[str]:
    """Who the message would notify (user ids, mobiles, ``all`` for everyone in the chat), as the
    platform's fake decides it (``PlatformRules.notified``, or the module's own ``notified`` for app bots):
    DingTalk notifies a listed mobile only when ``@it`` is in the text, WeCom markdown never ``<@all>``…"""
    module = _fake_module(platform)
    rules = getattr(module, "RULES", None)
    decide = rules.notified if isinstance(rules, PlatformRules) else getattr(module, "notified", None)
    if payload is None or decide is None:
        return []
    return list(dict.fromkeys(decide(payload)))


def _fake_module(platform: str) -> ModuleType | None:
    """The fake of `platform` (``chatlog.testing.<name>``), found through the destination registry."""
    cls = _destination_class(platform)
    if cls is None:
        return None
    try:
        return importlib.import_module(f"chatlog.testing.{cls.names[0].replace('-', '_')}")
    except ImportError:
        return None
