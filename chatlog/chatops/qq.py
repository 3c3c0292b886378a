"""QQ bot webhook callbacks (reference 6.4).

Every request: ``X-Signature-Timestamp`` within 5 minutes, then ``X-Signature-Ed25519`` — the
Ed25519 signature (key derived from the bot secret) of timestamp + raw body — before the body is
parsed; an identical signature twice is a replay. ``op`` 13 (URL validation) is answered with
``{"plain_token", "signature"}`` signed over event_ts + plain_token; dispatches (``op`` 0) with the
``op`` 12 acknowledgement. Replies are passive (with the message's ``msg_id``), the only kind QQ still
allows to groups and users.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from chatlog.chatops import _http, crypto
from chatlog.chatops._http import Refused, Request, Response, dig, text_of
from chatlog.chatops.events import Inbound, QQReplyTo, command_text

TOKEN_ORIGIN = "https://bots.qq.com"
API_ORIGIN = "https://api.sgroup.qq.com"
ACK = _http.json_response({"op": 12, "d": 0})
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_EXAMPLE = 'qq={"app_id": "102012345", "secret": "…the bot\'s AppSecret…"}'


@dataclass(frozen=True, slots=True)
class Options:
    """A QQ bot's settings (q.qq.com → Development → Development settings)."""

    app_id: str
    secret: str
    token_origin: str = TOKEN_ORIGIN
    api_origin: str = API_ORIGIN

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values never to print."""
        return (self.secret,)


def options(given: Mapping[str, object]) -> Options:
    """Checked options for ``qq=``; ValueError naming the problem with an example. ``base_url`` (tests,
    proxies) replaces both the token and the API origin."""
    unknown = set(given) - {"app_id", "secret", "base_url"}
    if unknown:
        raise ValueError(f"qq= has unknown option(s) {', '.join(sorted(unknown))}; use {_EXAMPLE}")
    app_id, secret, base = given.get("app_id"), given.get("secret"), given.get("base_url")
    if not isinstance(app_id, str) or not app_id.isdigit():
        raise ValueError(f"qq= 'app_id' is the bot's AppID (digits); use {_EXAMPLE}")
    if not isinstance(secret, str) or not secret.strip():
        raise ValueError(f"qq= needs 'secret' (the bot's AppSecret); use {_EXAMPLE}")
    if base is None:
        return Options(app_id, secret)
    if not isinstance(base, str) or not base.startswith(("http://", "https://")):
        raise ValueError(f"qq= 'base_url' is like 'http://127.0.0.1:8750'; got {base!r}")
    return Options(app_id, secret, base.rstrip("/"), base.rstrip("/"))


def handle(request: Request, opts: Options, guard: _http.ReplayGuard) -> Response | Inbound | None:
    """The answer to one callback, or the `Inbound` it carries; None for what we ignore."""
    if request.method != "POST":
        raise Refused(405, "POST only")
    timestamp = request.headers.get("x-signature-timestamp", "")
    guard.check_time(_http.timestamp_s(timestamp))
    signature = request.headers.get("x-signature-ed25519", "")
    if not crypto.qq_verify(opts.secret, timestamp.encode() + request.body, signature):
        raise _http.BAD_SIGNATURE
    guard.remember(f"qq:sig:{signature}")
    payload = _http.json_object(request.body)
    if payload.get("op") == 13:
        return _validation(payload, opts)
    if payload.get("op") != 0:
        return ACK
    return _message(payload)


def _validation(payload: Mapping[str, object], opts: Options) -> Response:
    plain_token, event_ts = text_of(dig(payload, "d", "plain_token")), text_of(dig(payload, "d", "event_ts"))
    if not plain_token or not event_ts:
        raise Refused(400, "op 13 without plain_token or event_ts")
    signature = crypto.qq_sign(opts.secret, (event_ts + plain_token).encode())
    return _http.json_response({"plain_token": plain_token, "signature": signature})


def _message(payload: Mapping[str, object]) -> Inbound | Response:
    kind, d = payload.get("t"), payload.get("d")
    msg_id = text_of(dig(d, "id"))
    if kind == "GROUP_AT_MESSAGE_CREATE":
        chat = text_of(dig(d, "group_openid"))
        sender = ("member_openid", text_of(dig(d, "author", "member_openid")))
        path = f"/v2/groups/{chat}/messages"
    elif kind == "C2C_MESSAGE_CREATE":
        chat = sender_id = text_of(dig(d, "author", "user_openid"))
        sender, path = ("user_openid", sender_id), f"/v2/users/{chat}/messages"
    elif kind == "AT_MESSAGE_CREATE":
        chat, sender = text_of(dig(d, "channel_id")), ("id", text_of(dig(d, "author", "id")))
        path = f"/channels/{chat}/messages"
    else:
        return ACK
    if not _ID.fullmatch(chat) or not msg_id:
        raise Refused(400, "message without a valid chat id or message id")
    return Inbound(
        platform="qq", text=command_text(text_of(dig(d, "content"))), sender=(sender,), sender_name="",
        chat_id=chat, chat_keys=(f"qq:chat_id:{chat}",), message_id=msg_id,
        reply_to=QQReplyTo(path, msg_id), ack=ACK,
    )
