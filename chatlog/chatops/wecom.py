"""WeCom group-bot callbacks, WXBizMsgCrypt (reference 5.6).

``GET ?msg_signature&timestamp&nonce&echostr``: the URL check — answered with the decrypted echostr as
plain text. ``POST ?msg_signature&timestamp&nonce`` with ``<xml><Encrypt>…</Encrypt></xml>`` (or the
JSON protocol's ``{"encrypt": …}``): a message. Both: timestamp within 5 minutes, then
``msg_signature`` = SHA-1 over the sorted token/timestamp/nonce/encrypt, then the nonce not seen before;
only then decryption (AES-256-CBC, PKCS#7 to 32 bytes) and the receive-id check (``""`` for group bots).
Replies go to the message's ``WebhookUrl``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from chatlog.chatops import _http, crypto
from chatlog.chatops._http import Refused, Request, Response, dig, text_of
from chatlog.chatops.events import Inbound, WebhookReplyTo, command_text

_TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")
_KEY = re.compile(r"[A-Za-z0-9]{43}")
_EXAMPLE = 'wecom={"token": "QDG6eK", "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}'
EMPTY = Response(200, b"", _http.TEXT)


@dataclass(frozen=True, slots=True)
class Options:
    """A WeCom bot's callback settings (bot → Receive messages → URL, Token, EncodingAESKey)."""

    token: str
    encoding_aes_key: str
    receive_id: str = ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values never to print."""
        return (self.token, self.encoding_aes_key)


def options(given: Mapping[str, object]) -> Options:
    """Checked options for ``wecom=``; ValueError naming the problem with an example."""
    unknown = set(given) - {"token", "encoding_aes_key", "receive_id"}
    if unknown:
        raise ValueError(f"wecom= has unknown option(s) {', '.join(sorted(unknown))}; use {_EXAMPLE}")
    token, key = given.get("token"), given.get("encoding_aes_key")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise ValueError(f"wecom= 'token' is 3-32 letters or digits, as set on the bot; use {_EXAMPLE}")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"wecom= 'encoding_aes_key' is the 43 letters/digits set on the bot; use {_EXAMPLE}")
    receive_id = given.get("receive_id", "")
    if not isinstance(receive_id, str):
        raise ValueError("wecom= 'receive_id' is a string ('' for group bots, the CorpID for apps); "
                         f"use {_EXAMPLE}")
    return Options(token, key, receive_id)


def handle(request: Request, opts: Options, guard: _http.ReplayGuard) -> Response | Inbound | None:
    """The answer to one callback, or the `Inbound` it carries; None for what we ignore."""
    if request.method == "GET":
        return _verify_url(request, opts, guard)
    if request.method != "POST":
        raise Refused(405, "GET or POST only")
    encrypt = _encrypt_of(request.body)
    plain = _verified_plaintext(request, encrypt, opts, guard)
    fields = _fields(plain)
    msg_id = fields.get("msgid", "")
    if msg_id and not guard.first(f"wecom:msg:{msg_id}", 3600.0):
        return EMPTY  # WeCom retries three times: answer, do not act twice
    if fields.get("msgtype") != "text" or not fields.get("webhookurl"):
        return None
    key = urllib.parse.parse_qs(urllib.parse.urlsplit(fields["webhookurl"]).query).get("key", [""])[0]
    chat_id = fields.get("chatid", "")
    keys = [f"wecom:chat_id:{chat_id}"] + ([f"wecom:key:{crypto.key_hash(key)}"] if key else [])
    return Inbound(
        platform="wecom", text=command_text(fields.get("content", "")),
        sender=(("userid", fields.get("userid", "")),), sender_name=fields.get("name", "")[:64],
        chat_id=chat_id, chat_keys=tuple(keys), message_id=msg_id,
        reply_to=WebhookReplyTo(fields["webhookurl"], "wecom"), ack=EMPTY,
    )


def _verify_url(request: Request, opts: Options, guard: _http.ReplayGuard) -> Response:
    echostr = request.query.get("echostr", "")
    plain = _verified_plaintext(request, echostr, opts, guard)
    return Response(200, plain, _http.TEXT)


def _verified_plaintext(request: Request, encrypt: str, opts: Options, guard: _http.ReplayGuard) -> bytes:
    timestamp, nonce = request.query.get("timestamp", ""), request.query.get("nonce", "")
    guard.check_time(_http.timestamp_s(timestamp))
    expected = crypto.wecom_signature(opts.token, timestamp, nonce, encrypt)
    if not encrypt or not crypto.same(expected, request.query.get("msg_signature", "")):
        raise _http.BAD_SIGNATURE
    guard.remember(f"wecom:nonce:{timestamp}:{nonce}")
    try:
        plain, receive_id = crypto.wecom_decrypt(encrypt, opts.encoding_aes_key)
    except crypto.CryptoError:
        raise Refused(400, "the encrypted value does not decrypt with the EncodingAESKey") from None
    if not crypto.same(opts.receive_id, receive_id):
        raise Refused(401, "receive id does not match")
    return plain


def _encrypt_of(body: bytes) -> str:
    # The signature covers the Encrypt value, so this one field is read before the check.
    if body.lstrip().startswith(b"{"):
        return text_of(_http.json_object(body).get("encrypt"))
    found = _http.xml_element(body).find("Encrypt")
    return (found.text or "").strip() if found is not None else ""


_XML_FIELDS = {"webhookurl": "WebhookUrl", "msgid": "MsgId", "chatid": "ChatId", "chattype": "ChatType",
               "msgtype": "MsgType", "userid": "From/UserId", "name": "From/Name", "content": "Text/Content"}


def _fields(plain: bytes) -> dict[str, str]:
    """The fields we use, from the XML or the JSON protocol (snake_case) plaintext."""
    if plain.lstrip().startswith(b"{"):
        value = _http.json_object(plain, "decrypted body")
        paths = {"webhookurl": ("webhook_url",), "msgid": ("msgid",), "chatid": ("chatid",),
                 "chattype": ("chattype",), "msgtype": ("msgtype",), "userid": ("from", "userid"),
                 "name": ("from", "name"), "content": ("text", "content")}
        return {name: text_of(dig(value, *path)) for name, path in paths.items()}
    root = _http.xml_element(plain, "decrypted body")
    return {name: (root.findtext(path) or "").strip() for name, path in _XML_FIELDS.items()}
