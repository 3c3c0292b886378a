"""DingTalk enterprise (internal) robot callbacks (reference 4.8).

Headers ``timestamp`` (ms) and ``sign`` = base64 HMAC-SHA256(app_secret, "timestamp\\napp_secret"):
the timestamp within DingTalk's 1-hour window, then the signature, before the body is parsed. The
sign depends only on the timestamp, so replays are refused by the message id (``msgId``) after the
check. Replies go to the event's ``sessionWebhook``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chatlog.chatops import _http, crypto
from chatlog.chatops._http import Refused, Request, Response, dig, text_of
from chatlog.chatops.events import Inbound, WebhookReplyTo, command_text

WINDOW_S = 3600.0
_EXAMPLE = 'dingtalk={"app_secret": "…the robot\'s AppSecret…"}'
ACK = _http.json_response({})


@dataclass(frozen=True, slots=True)
class Options:
    """A DingTalk robot's callback settings (robot → Credentials → AppSecret)."""

    app_secret: str

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values never to print."""
        return (self.app_secret,)


def options(given: Mapping[str, object]) -> Options:
    """Checked options for ``dingtalk=``; ValueError naming the problem with an example."""
    unknown = set(given) - {"app_secret"}
    if unknown:
        raise ValueError(f"dingtalk= has unknown option(s) {', '.join(sorted(unknown))}; use {_EXAMPLE}")
    secret = given.get("app_secret")
    if not isinstance(secret, str) or not secret.strip():
        raise ValueError(f"dingtalk= needs 'app_secret' (the robot's AppSecret); use {_EXAMPLE}")
    return Options(secret)


def handle(request: Request, opts: Options, guard: _http.ReplayGuard) -> Response | Inbound | None:
    """The answer to one callback, or the `Inbound` it carries; None for what we ignore."""
    if request.method != "POST":
        raise Refused(405, "POST only")
    timestamp = request.headers.get("timestamp", "")
    guard.check_time(_http.timestamp_s(timestamp, millis=True), WINDOW_S)
    expected = crypto.dingtalk_signature(timestamp, opts.app_secret)
    if not crypto.same(expected, request.headers.get("sign", "")):
        raise _http.BAD_SIGNATURE
    event = _http.json_object(request.body)
    msg_id = text_of(event.get("msgId"))
    if not msg_id:
        raise Refused(400, "msgId missing")
    guard.remember(f"dingtalk:msg:{msg_id}", WINDOW_S)
    webhook = text_of(event.get("sessionWebhook"))
    if event.get("msgtype") != "text" or not webhook:
        return None
    sender = tuple((kind, text_of(event.get(field))) for kind, field in
                   (("staff_id", "senderStaffId"), ("sender_id", "senderId")) if text_of(event.get(field)))
    chat_id = text_of(event.get("conversationId"))
    return Inbound(
        platform="dingtalk", text=command_text(text_of(dig(event, "text", "content"))), sender=sender,
        sender_name=text_of(event.get("senderNick"))[:64], chat_id=chat_id,
        chat_keys=(f"dingtalk:chat_id:{chat_id}",), message_id=msg_id,
        reply_to=WebhookReplyTo(webhook, "dingtalk"), ack=ACK,
    )
