"""Fake Feishu / Lark app bot (reference 3.1-3.5, 3.10): the token endpoint and the send API.

``POST /open-apis/auth/v3/tenant_access_token/internal`` with ``{"app_id", "app_secret"}``: a token
``t-…`` with ``expire`` seconds (the app's ``expire_s``); while the current token has 30 minutes or more
left, the same token with its remaining lifetime (as Feishu does). Wrong or unknown credentials:
``10014 app secret invalid``; a body without them: ``10003 invalid param`` (both HTTP 400).

``POST /open-apis/im/v1/messages?receive_id_type=…`` checks, in this order:

1. ``Authorization: Bearer t-…``: missing → ``99991661``; unknown, revoked or expired (by the fake's
   clock) → ``99991663`` (HTTP ``auth_status``, 400 by default: Feishu does not document it).
2. the app-wide limits, 50 a second and 1000 a minute → HTTP 429 ``99991400`` with
   ``x-ogw-ratelimit-limit`` and ``x-ogw-ratelimit-reset``.
3. the bot capability (``230006``) and a send permission (``im:message``, ``im:message:send_as_bot`` or
   ``im:message:send``; for ``receive_id_type=user_id`` also ``contact:user.employee_id:readonly``)
   → ``99991672`` naming the scopes.
4. ``receive_id_type`` one of the five, ``receive_id`` and ``msg_type`` strings, ``content`` a string
   holding a JSON object shaped for ``msg_type``, ``uuid`` at most 50 characters → else ``230001``;
   card JSON 2.0 leftovers → ``230099``; card/post bodies over 30 KB or text over 150 KB → ``230025``.
5. a ``uuid`` seen within the hour → success with the first message's id, nothing delivered again.
6. the recipient: a ``chat_id`` the bot is not in → ``230002``; a user outside the availability range
   (``hidden``) → ``230013``; any other unknown id → ``230034``.
7. more than 5 a second to one recipient → ``230020``.

All business errors come with HTTP 400, as Feishu documents for this API.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatlog.testing import feishu
from chatlog.testing.rules import Answer, JSONObject, RateState, Request, dig_str

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MESSAGES_PATH = "/open-apis/im/v1/messages"
PATHS = frozenset({TOKEN_PATH, MESSAGES_PATH})
PLATFORMS = ("feishu-app", "lark-app")
RECEIVE_ID_TYPES = ("open_id", "user_id", "union_id", "email", "chat_id")
SEND_SCOPES = ("im:message:send_as_bot", "im:message", "im:message:send")
USER_ID_SCOPE = "contact:user.employee_id:readonly"
MSG_TYPES = frozenset({"text", "post", "image", "file", "audio", "media", "sticker", "interactive",
                       "share_chat", "share_user", "system"})
SAME_TOKEN_WHILE_S = 1800.0
UUID_WINDOW_S = 3600.0
CARD_LIMIT_BYTES = 30 * 1024
TEXT_LIMIT_BYTES = 150 * 1024
APP_PER_SECOND = 50
APP_PER_MINUTE = 1000
RECIPIENT_PER_SECOND = 5
TENANT_KEY = "736588c9260f175e"


@dataclass(frozen=True, slots=True)
class AppSettings:
    """How one fake app is configured; the rules read it, never change it."""

    platform: str
    app_id: str
    app_secret: str
    recipients: Mapping[str, tuple[str, ...]]
    """Reachable ids per receive_id_type: users in the availability range, chats the bot is in."""
    hidden: Mapping[str, tuple[str, ...]]
    """Users that exist but are outside the app's availability range."""
    expire_s: int = 7200
    permissions: frozenset[str] = frozenset({"im:message:send_as_bot"})
    bot_enabled: bool = True
    rate_limit: bool = True
    auth_status: int = 400


@dataclass(frozen=True, slots=True)
class Delivered:
    """One message a recipient got: what chatlog sent, with ``content`` decoded from its JSON string."""

    receive_id_type: str
    receive_id: str
    msg_type: str
    content: JSONObject
    uuid: str | None
    message_id: str
    at: float

    @property
    def text(self) -> str:
        """The human-readable text, as Feishu would show it (card header and contents, or the text)."""
        return text_of({"msg_type": self.msg_type, "content": json.dumps(self.content)})


@dataclass(slots=True)
class AppState:
    """One app's memory: tokens issued, uuids seen, messages delivered, rate windows (fake clock seconds)."""

    tokens: dict[str, float] = field(default_factory=dict)
    """Every token issued, with the time it expires (``-inf`` once revoked)."""
    current: str = ""
    uuids: dict[str, tuple[str, float]] = field(default_factory=dict)
    delivered: list[Delivered] = field(default_factory=list)
    duplicates: int = 0
    app_window: RateState = field(default_factory=RateState)
    recipient_windows: dict[str, RateState] = field(default_factory=dict)

    def revoke(self) -> None:
        """Make every token issued so far invalid (as when the app secret is reset)."""
        for token in self.tokens:
            self.tokens[token] = float("-inf")
        self.current = ""


def _error(code: int, msg: str, status: int = 400, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return Answer({"code": code, "msg": msg}, status=status, headers=headers)


BAD_CREDENTIALS = _error(10014, "app secret invalid")
NO_CREDENTIALS = _error(10003, "invalid param")
MISSING_TOKEN = "Missing access token for authorization. Please make a request with token attached."
INVALID_TOKEN = "Invalid access token for authorization. Please make a request with token attached."


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None when there is none."""
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def judge_token(request: Request, app: AppSettings | None, state: AppState, now: float) -> Answer:
    """The token endpoint's answer; `app` is None when no app has the requested app_id."""
    payload = request.payload or {}
    app_id, app_secret = payload.get("app_id"), payload.get("app_secret")
    if not isinstance(app_id, str) or not isinstance(app_secret, str) or not app_id or not app_secret:
        return NO_CREDENTIALS
    if app is None or app_secret != app.app_secret:
        return BAD_CREDENTIALS
    left = state.tokens.get(state.current, float("-inf")) - now
    if left < SAME_TOKEN_WHILE_S:
        state.current = f"t-{secrets.token_hex(20)}"
        state.tokens[state.current] = now + app.expire_s
        left = float(app.expire_s)
    body = {"code": 0, "msg": "ok", "tenant_access_token": state.current, "expire": int(left)}
    return Answer(body, accepted=True)


def judge_unknown_token(request: Request, auth_status: int = 400) -> Answer:
    """The send API's answer to a token no app issued (or no token at all)."""
    if bearer(request) is None:
        return _error(99991661, MISSING_TOKEN, auth_status)
    return _error(99991663, INVALID_TOKEN, auth_status)


def judge_message(request: Request, app: AppSettings, state: AppState, now: float) -> Answer:
    """The send API's answer for a request carrying one of `app`'s tokens (see the module docstring)."""
    token = bearer(request) or ""
    if now >= state.tokens.get(token, float("-inf")):
        return judge_unknown_token(request, app.auth_status)
    refused = _too_fast(app, state, now) or _not_allowed(request, app) or _malformed(request)
    if refused is not None:
        return refused
    payload = request.payload or {}
    uuid = payload.get("uuid")
    seen = state.uuids.get(uuid) if isinstance(uuid, str) else None
    if seen is not None and now - seen[1] < UUID_WINDOW_S:
        state.duplicates += 1
        return _success(app, payload, seen[0], now)
    refused = _unreachable(request, app) or _recipient_too_fast(request, app, state, now)
    if refused is not None:
        return refused
    return _deliver(request, app, state, now)


def _too_fast(app: AppSettings, state: AppState, now: float) -> Answer | None:
    window = state.app_window
    if not app.rate_limit:
        return None
    if window.count_since(now - 1.0) >= APP_PER_SECOND:
        return _rate_limited(APP_PER_SECOND, 1)
    if window.count_since(now - 60.0) >= APP_PER_MINUTE:
        return _rate_limited(APP_PER_MINUTE, 60)
    window.sent.append(now)
    return None


def _rate_limited(limit: int, reset_s: int) -> Answer:
    headers = (("x-ogw-ratelimit-limit", str(limit)), ("x-ogw-ratelimit-reset", str(reset_s)))
    return _error(99991400, "request trigger frequency limit", 429, headers)


def _not_allowed(request: Request, app: AppSettings) -> Answer | None:
    if not app.bot_enabled:
        return _error(230006, "Bot ability is not activated")
    if not app.permissions & set(SEND_SCOPES):
        return _missing_scopes(app, SEND_SCOPES)
    if request.query.get("receive_id_type") == "user_id" and USER_ID_SCOPE not in app.permissions:
        return _missing_scopes(app, (USER_ID_SCOPE,))
    return None


def _missing_scopes(app: AppSettings, scopes: tuple[str, ...]) -> Answer:
    listed = ", ".join(scopes)
    host = "open.larksuite.com" if app.platform == "lark-app" else "open.feishu.cn"
    link = f"https://{host}/app/{app.app_id}/auth?q={','.join(scopes)}&op_from=openapi&token_type=tenant"
    msg = f"Access denied. One of the following scopes is required: [{listed}]. {link}"
    return _error(99991672, msg)


def _malformed(request: Request) -> Answer | None:
    payload = request.payload
    if request.query.get("receive_id_type") not in RECEIVE_ID_TYPES:
        return _invalid("receive_id_type must be one of " + ", ".join(RECEIVE_ID_TYPES))
    if payload is None:
        return _invalid("the body is not a JSON object")
    receive_id, msg_type, uuid = payload.get("receive_id"), payload.get("msg_type"), payload.get("uuid")
    if not isinstance(receive_id, str) or not receive_id:
        return _invalid("receive_id is required")
    if msg_type not in MSG_TYPES:
        return _invalid("msg_type is invalid")
    if uuid is not None and (not isinstance(uuid, str) or len(uuid) > 50):
        return _invalid("uuid must be a string of at most 50 characters")
    content = _content(payload.get("content"))
    if content is None:
        return _invalid("content must be a string holding a JSON object")
    return _shape_problem(str(msg_type), content) or _size_problem(str(msg_type), request.body)


def _invalid(detail: str) -> Answer:
    return _error(230001, f"Your request contains an invalid request parameter, ext={detail}")


def _content(value: object) -> JSONObject | None:
    if not isinstance(value, str):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _shape_problem(msg_type: str, content: JSONObject) -> Answer | None:
    if msg_type == "text" and not isinstance(content.get("text"), str):
        return _invalid("content of a text message must be {\"text\": \"...\"}")
    if msg_type != "interactive":
        return None
    if content.get("type") == "template":
        return None
    problem = feishu._card_problem({"card": content})
    if problem is None:
        return None
    if problem.body.get("code") == 230099:
        return _error(230099, str(problem.body.get("msg")))
    return _invalid("content of an interactive message must be a card with header and elements or body")


def _size_problem(msg_type: str, body: bytes) -> Answer | None:
    limit = TEXT_LIMIT_BYTES if msg_type == "text" else CARD_LIMIT_BYTES
    if len(body) > limit:
        return _error(230025, "The length of the message content reaches its limit")
    return None


def _unreachable(request: Request, app: AppSettings) -> Answer | None:
    id_type = request.query["receive_id_type"]
    receive_id = dig_str(request.payload, "receive_id")
    if receive_id in app.recipients.get(id_type, ()):
        return None
    if id_type == "chat_id":
        return _error(230002, "The bot can not be outside the group")
    if receive_id in app.hidden.get(id_type, ()):
        return _error(230013, "Bot has NO availability to this user")
    return _error(230034, "The receive_id is invalid")


def _recipient_too_fast(request: Request, app: AppSettings, state: AppState, now: float) -> Answer | None:
    if not app.rate_limit:
        return None
    key = f"{request.query['receive_id_type']}:{dig_str(request.payload, 'receive_id')}"
    window = state.recipient_windows.setdefault(key, RateState())
    if window.count_since(now - 1.0) >= RECIPIENT_PER_SECOND:
        return _error(230020, "This operation triggers the frequency limit")
    window.sent.append(now)
    return None


def _deliver(request: Request, app: AppSettings, state: AppState, now: float) -> Answer:
    payload = request.payload or {}
    message_id = f"om_{secrets.token_hex(16)}"
    uuid = payload.get("uuid") if isinstance(payload.get("uuid"), str) else None
    if uuid is not None:
        state.uuids[uuid] = (message_id, now)
    state.delivered.append(Delivered(
        receive_id_type=request.query["receive_id_type"],
        receive_id=str(payload["receive_id"]),
        msg_type=str(payload["msg_type"]),
        content=_content(payload.get("content")) or {},
        uuid=uuid,
        message_id=message_id,
        at=now,
    ))
    return _success(app, payload, message_id, now)


def _success(app: AppSettings, payload: JSONObject, message_id: str, now: float) -> Answer:
    millis = str(int(now * 1000))
    data: dict[str, Any] = {
        "message_id": message_id, "root_id": "", "parent_id": "", "msg_type": payload.get("msg_type"),
        "create_time": millis, "update_time": millis, "deleted": False, "updated": False,
        "chat_id": "oc_" + message_id[3:27],
        "sender": {"id": app.app_id, "id_type": "app_id", "sender_type": "app", "tenant_key": TENANT_KEY},
        "body": {"content": payload.get("content")}, "mentions": [],
    }
    return Answer({"code": 0, "msg": "success", "data": data}, accepted=True)


def text_of(payload: JSONObject) -> str:
    """The human-readable text of an app message request (the card or text inside ``content``)."""
    content = _content(payload.get("content"))
    msg_type = payload.get("msg_type")
    if content is None:
        return ""
    if msg_type == "interactive":
        return feishu.text_of({"msg_type": "interactive", "card": content})
    if msg_type == "post":
        return feishu.text_of({"msg_type": "post", "content": {"post": content}})
    return feishu.text_of({"msg_type": msg_type, "content": content})


def _as_group_message(payload: JSONObject) -> JSONObject:
    """The app message in the group bot's shape, so the group bot's reading applies."""
    content = _content(payload.get("content")) or {}
    if payload.get("msg_type") == "interactive":
        return {"msg_type": "interactive", "card": content}
    return {"msg_type": payload.get("msg_type"), "content": content}


def notified(payload: JSONObject) -> tuple[str, ...]:
    """Who an app message mentions (the same tags as the group bot's card and text)."""
    return feishu.notified(_as_group_message(payload))


def live_markup(payload: JSONObject) -> list[str]:
    """What in an app message would be live beyond chatlog's own mentions (see the group bot's)."""
    return feishu.live_markup(_as_group_message(payload))
