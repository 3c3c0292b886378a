"""Feishu / Lark callbacks in request-URL mode (reference 3.7-3.9).

Order of checks, each refusing before the next step runs:

1. a request with ``X-Lark-Signature``: timestamp within 5 minutes, then the signature
   SHA-256(timestamp + nonce + encrypt_key + raw body), then the nonce not seen before;
2. only then the body is parsed and decrypted (AES-256-CBC, key SHA-256(encrypt_key)) and the
   verification token compared;
3. a request without a signature can only be the ``url_verification`` challenge (Feishu does not sign
   it): answered only when it decrypts with the key (or, sent plain, carries the verification token)
   and names the token — anything else unsigned is refused.

Events: schema 2.0 ``im.message.receive_v1`` (text messages) and ``card.action.trigger`` (buttons,
answered in the HTTP answer with a toast and the card updated in place: `chatlog.chatops.cards`).
Other event types are acknowledged and ignored.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from chatlog.chatops import _http, crypto
from chatlog.chatops._http import Refused, Request, Response, dig, text_of
from chatlog.chatops.events import FeishuReplyTo, Inbound, command_text

ORIGINS = {"feishu": "https://open.feishu.cn", "lark": "https://open.larksuite.com"}
_SCHEMES = {"feishu-app": "feishu", "lark-app": "lark"}
ACK = _http.json_response({"msg": "success"})
EVENT_WINDOW_S = 4 * 3600.0
"""Feishu retries for up to about 6 hours; event ids are remembered about 8."""
_EXAMPLE = ('feishu={"encrypt_key": "…", "verification_token": "…", '
            '"app": "feishu-app://cli_a1b2:APP_SECRET"}')


@dataclass(frozen=True, slots=True)
class App:
    """The app that answers in the chat: id, secret and the API origin."""

    app_id: str
    app_secret: str
    origin: str

    def url(self, path: str) -> str:
        """`path` (``/open-apis/…``) on the app's API origin."""
        return self.origin + path


@dataclass(frozen=True, slots=True)
class Options:
    """One Feishu or Lark app's callback settings (Events & Callbacks → Encryption Strategy)."""

    platform: str
    encrypt_key: str
    verification_token: str
    app: App | None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values never to print."""
        app_secret = (self.app.app_secret,) if self.app else ()
        return (self.encrypt_key, self.verification_token, *app_secret)


def options(platform: str, given: Mapping[str, object]) -> Options:
    """Checked options for ``feishu=`` / ``lark=``; ValueError naming the problem with an example."""
    example = _EXAMPLE.replace("feishu", platform, 1)
    unknown = set(given) - {"encrypt_key", "verification_token", "app"}
    if unknown:
        raise ValueError(f"{platform}= has unknown option(s) {', '.join(sorted(unknown))}; use {example}")
    for name in ("encrypt_key", "verification_token"):
        value = given.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{platform}= needs {name!r} (developer console → Events & Callbacks → "
                             "Encryption Strategy; without an Encrypt Key Feishu signs nothing); "
                             f"use {example}")
    app = given.get("app")
    return Options(platform, str(given["encrypt_key"]), str(given["verification_token"]),
                   None if app is None else app_of(platform, app, example))


def app_of(platform: str, value: object, example: str) -> App:
    """``feishu-app://APP_ID:APP_SECRET[?base_url=http://host:port]`` as an `App`."""
    if not isinstance(value, str):
        raise ValueError(f"{platform}= 'app' is a string like feishu-app://cli_a1b2:APP_SECRET; "
                         f"use {example}")
    url = urllib.parse.urlsplit(value)
    query = dict(urllib.parse.parse_qsl(url.query))
    # The alert destination's form (…@chat_id/oc_…) is accepted too: the part after "@" is not needed.
    credentials = url.netloc.rpartition("@")[0] if "@" in url.netloc else url.netloc
    app_id, _, app_secret = credentials.partition(":")
    if url.scheme not in _SCHEMES or not app_id or not app_secret or set(query) - {"base_url"}:
        raise ValueError(f"{platform}= 'app' must look like feishu-app://cli_a1b2:APP_SECRET "
                         f"(or lark-app://…), optionally ?base_url=http://127.0.0.1:8750; got {url.scheme}://***")
    origin = query.get("base_url", ORIGINS[_SCHEMES[url.scheme]]).rstrip("/")
    return App(urllib.parse.unquote(app_id), urllib.parse.unquote(app_secret), origin)


def handle(request: Request, opts: Options, guard: _http.ReplayGuard) -> Response | Inbound | None:
    """The answer to one callback, or the `Inbound` it carries; None for an event we ignore."""
    if request.method != "POST":
        raise Refused(405, "POST only")
    signature = request.headers.get("x-lark-signature")
    if signature is None:
        return _challenge(request, opts)
    timestamp = request.headers.get("x-lark-request-timestamp", "")
    nonce = request.headers.get("x-lark-request-nonce", "")
    guard.check_time(_http.timestamp_s(timestamp))
    expected = crypto.feishu_signature(timestamp, nonce, opts.encrypt_key, request.body)
    if not crypto.same(expected, signature):
        raise _http.BAD_SIGNATURE
    guard.remember(f"{opts.platform}:nonce:{nonce}")
    event = _decrypted(request.body, opts)
    if event.get("type") == "url_verification":
        return _challenge_answer(event, opts)
    if not crypto.same(opts.verification_token, text_of(dig(event, "header", "token"))):
        raise Refused(401, "verification token does not match")
    event_id = text_of(dig(event, "header", "event_id"))
    if event_id and not guard.first(f"{opts.platform}:event:{event_id}", EVENT_WINDOW_S):
        return ACK  # Feishu delivers at least once: a retry is answered, not acted on twice
    return inbound_of(event, opts.platform)


def inbound_of(event: Mapping[str, object], platform: str) -> Inbound | None:
    """The `Inbound` of a verified, decrypted schema 2.0 event (request URL or long connection)."""
    kind = dig(event, "header", "event_type")
    if kind == "im.message.receive_v1":
        return _message(event, platform)
    if kind == "card.action.trigger":
        return _card_action(event, platform)
    return None


def _decrypted(body: bytes, opts: Options) -> dict[str, object]:
    encrypt = _http.json_object(body).get("encrypt")
    if not isinstance(encrypt, str):
        raise Refused(400, "body has no 'encrypt' value (turn on the Encrypt Key)")
    try:
        plain = crypto.feishu_decrypt(encrypt, opts.encrypt_key)
    except crypto.CryptoError:
        raise Refused(400, "the encrypted body does not decrypt with the Encrypt Key") from None
    return _http.json_object(plain, "decrypted body")


def _challenge(request: Request, opts: Options) -> Response:
    body = _http.json_object(request.body)
    event = _decrypted(request.body, opts) if "encrypt" in body else body
    if event.get("type") != "url_verification":
        raise _http.BAD_SIGNATURE
    return _challenge_answer(event, opts)


def _challenge_answer(event: Mapping[str, object], opts: Options) -> Response:
    if not crypto.same(opts.verification_token, text_of(event.get("token"))):
        raise Refused(401, "verification token does not match")
    challenge = event.get("challenge")
    if not isinstance(challenge, str) or len(challenge) > 200:
        raise Refused(400, "challenge missing")
    return _http.json_response({"challenge": challenge})


def _ids(value: object) -> tuple[tuple[str, str], ...]:
    kinds = ("open_id", "user_id", "union_id")
    return tuple((kind, text_of(dig(value, kind))) for kind in kinds if text_of(dig(value, kind)))


def _message(event: Mapping[str, object], platform: str) -> Inbound | None:
    message = dig(event, "event", "message")
    if dig(message, "message_type") != "text":
        return None
    try:
        content = json.loads(text_of(dig(message, "content")) or "{}")
    except ValueError:
        raise Refused(400, "message content is not valid JSON") from None
    sender = _ids(dig(event, "event", "sender", "sender_id"))
    chat_id, message_id = text_of(dig(message, "chat_id")), text_of(dig(message, "message_id"))
    keys = [f"{platform}-app:chat_id:{chat_id}"]
    if dig(message, "chat_type") == "p2p":
        keys += [f"{platform}-app:{kind}:{value}" for kind, value in sender]
    return Inbound(
        platform=platform, text=command_text(text_of(dig(content, "text"))), sender=sender,
        sender_name="", chat_id=chat_id, chat_keys=tuple(keys), message_id=message_id,
        reply_to=FeishuReplyTo(message_id) if message_id else None, ack=ACK,
    )


def _card_action(event: Mapping[str, object], platform: str) -> Inbound | None:
    value = dig(event, "event", "action", "value")
    if not isinstance(value, dict) or not isinstance(value.get("command"), str):
        return None
    chat_id = text_of(dig(event, "event", "context", "open_chat_id"))
    return Inbound(
        platform=platform, text=command_text(value["command"]),
        sender=_ids(dig(event, "event", "operator")), sender_name="", chat_id=chat_id,
        chat_keys=(f"{platform}-app:chat_id:{chat_id}",),
        message_id=text_of(dig(event, "event", "context", "open_message_id")),
        reply_to=None, answer=card_answer, card=text_of(value.get("card")),
    )


def card_answer(text: str, card: Mapping[str, object] | None = None) -> Response:
    """A ``card.action.trigger`` answer: a toast with what the command did and, when the pressed card
    is known, that card updated in place (reference 3.9)."""
    kind = "error" if text.startswith(("⚠", "Sorry")) else "success"
    answer: dict[str, object] = {"toast": {"type": kind, "content": text[:200]}}
    if card is not None:
        answer["card"] = {"type": "raw", "data": card}
    return _http.json_response(answer)
