"""Where the fake chats' bots answer: the hub of one `FakePlatforms`'s chats (`Callbacks.add_chat`)
and the reply endpoints their bots call — Feishu/Lark's message reply API (the app's tenant token),
DingTalk's session webhook (valid 90 minutes), QQ's app token and group messages (a passive reply,
refused after 5 minutes); WeCom bots answer on their group bot's webhook. The chats themselves, which
deliver what fake people type, are `chatlog.testing.callbacks`.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping

from chatlog.testing.apps import FakeApp
from chatlog.testing.bots import FakeBot
from chatlog.testing.callbacks import FakeChat
from chatlog.testing.callbacks_ws import ENDPOINT_PATH, FakeLongConnections
from chatlog.testing.feishu_app import bearer, judge_unknown_token
from chatlog.testing.rules import Answer, Request, dig_str

CHAT_PLATFORMS = ("feishu", "lark", "wecom", "dingtalk", "qq")
PASSIVE_S = 5 * 60.0
REPLY_PREFIX = "/open-apis/im/v1/messages/"


class Callbacks:
    """The fake chats of one `FakePlatforms` and the endpoints their bots answer through."""

    def __init__(self, changed: threading.Condition, clock: Callable[[], float],
                 base_url: Callable[[], str]) -> None:
        """`changed` is the server's condition; `clock` its clock."""
        self.changed = changed
        self.clock = clock
        self.base_url = base_url
        self.chats: list[FakeChat] = []
        self.sessions: dict[str, tuple[FakeChat, float]] = {}
        self._qq_tokens: dict[str, str] = {}
        self.ws = FakeLongConnections(changed, self._ws_known)

    def _ws_known(self, app_id: str, app_secret: str) -> bool:
        return any(c.transport == "ws" and c._app is not None and c._app.app_id == app_id
                   and c._app.app_secret == app_secret for c in self.chats)

    def add_chat(self, platform: str, url: str, keys: Mapping[str, str], *, app: FakeApp | None = None,
                 bot: FakeBot | None = None, chat_id: str | None = None, transport: str = "http") -> FakeChat:
        """A chat on `platform` whose callbacks go to `url`, signed with `keys` (the receiver's options);
        ``transport="ws"`` (Feishu/Lark, with ``app=``) delivers over the fake long connection instead."""
        if transport == "ws":
            return self._ws_chat(platform, app, chat_id)
        if platform not in CHAT_PLATFORMS:
            raise ValueError(f"chats exist on {', '.join(CHAT_PLATFORMS)}, e.g. add_chat('feishu', …); "
                             f"got {platform!r}")
        feishu_keys = ("encrypt_key", "verification_token")
        needed = {"feishu": feishu_keys, "lark": feishu_keys,
                  "wecom": ("token", "encoding_aes_key"), "dingtalk": ("app_secret",),
                  "qq": ("app_id", "secret")}[platform]
        missing = [name for name in needed if not keys.get(name)]
        if missing:
            raise ValueError(f"a {platform} chat needs {', '.join(needed)} in keys (the same dict the "
                             f"receiver gets); missing {', '.join(missing)}")
        chat = FakeChat(self, platform, url, keys, app=app, bot=bot,
                        chat_id=chat_id or f"oc_{secrets.token_hex(12)}")
        with self.changed:
            self.chats.append(chat)
        return chat

    def _ws_chat(self, platform: str, app: FakeApp | None, chat_id: str | None) -> FakeChat:
        if platform not in ("feishu", "lark") or app is None:
            raise ValueError("only Feishu/Lark have the long connection: add_chat('feishu', '', {}, app=app, "
                             "transport='ws')")
        self.ws.start()
        chat = FakeChat(self, platform, "", {"verification_token": ""}, app=app, bot=None,
                        chat_id=chat_id or f"oc_{secrets.token_hex(12)}", transport="ws")
        with self.changed:
            self.chats.append(chat)
        return chat

    def close(self) -> None:
        """Stop the long-connection server."""
        self.ws.stop()

    def answer(self, request: Request) -> Answer | None:
        """The answer when `request` is one of the reply endpoints, else None."""
        path, now = request.path, self.clock()
        if path == ENDPOINT_PATH:
            return self.ws.endpoint(request)
        if path.startswith(REPLY_PREFIX) and path.endswith("/reply"):
            return self._feishu_reply(request, path[len(REPLY_PREFIX):-len("/reply")], now)
        if path == "/robot/sendBySession":
            return self._session_reply(request, now)
        if path == "/app/getAppAccessToken":
            return self._qq_token(request)
        if path.startswith("/v2/groups/") and path.endswith("/messages"):
            return self._qq_reply(request, path.split("/")[3], now)
        return None

    def _feishu_reply(self, request: Request, message_id: str, now: float) -> Answer:
        token = bearer(request) or ""
        apps = [c._app for c in self.chats if c._app is not None]
        if not any(app._owns_token(token) for app in apps):
            return judge_unknown_token(request)
        chat = next((c for c in self.chats if c._app is not None and c._app._owns_token(token)
                     and c._knows(message_id, now, float("inf"))), None)
        if chat is None:
            return Answer({"code": 230011, "msg": "The message is not found or was recalled"}, status=400)
        text = _text_content(request)
        if text is None:
            return Answer({"code": 230001, "msg": "Your request contains an invalid request parameter"}, 400)
        chat._said(text, now)
        return Answer({"code": 0, "msg": "success", "data": {"message_id": f"om_{secrets.token_hex(16)}",
                                                             "parent_id": message_id}}, accepted=True)

    def _session_reply(self, request: Request, now: float) -> Answer:
        with self.changed:
            found = self.sessions.get(request.query.get("session", ""))
        if found is None or now > found[1]:
            return Answer({"errcode": 300001, "errmsg": "session is not exist or expired"})
        text = dig_str(request.payload, "text", "content")
        if dig_str(request.payload, "msgtype") != "text" or not text:
            return Answer({"errcode": 400105, "errmsg": "msgtype is invalid"})
        found[0]._said(text, now)
        return Answer({"errcode": 0, "errmsg": "ok"}, accepted=True)

    def _qq_token(self, request: Request) -> Answer:
        app_id, secret = dig_str(request.payload, "appId"), dig_str(request.payload, "clientSecret")
        known = any(c.platform == "qq" and c._keys.get("app_id") == app_id and c._keys.get("secret") == secret
                    for c in self.chats)
        if not known:
            return Answer({"code": 100016, "message": "invalid appid or secret"}, status=401)
        token = secrets.token_hex(16)
        with self.changed:
            self._qq_tokens[token] = app_id
        return Answer({"access_token": token, "expires_in": "7200"}, accepted=True)

    def _qq_reply(self, request: Request, group: str, now: float) -> Answer:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self.changed:
            app_id = self._qq_tokens.get(token) if scheme == "QQBot" else None
        chat = next((c for c in self.chats if c.platform == "qq" and c.chat_id == group
                     and c._keys.get("app_id") == app_id), None)
        if chat is None:
            return Answer({"code": 11244, "message": "token not exist or expire"}, status=401)
        msg_id = dig_str(request.payload, "msg_id")
        if not chat._knows(msg_id, now, PASSIVE_S):
            refusal = "msg limit exceed (proactive messages are not allowed)"
            return Answer({"code": 22009, "message": refusal}, 400)
        chat._said(dig_str(request.payload, "content"), now)
        return Answer({"id": secrets.token_hex(8), "timestamp": int(now)}, accepted=True)


def _text_content(request: Request) -> str | None:
    if dig_str(request.payload, "msg_type") != "text":
        return None
    try:
        content = json.loads(dig_str(request.payload, "content"))
    except ValueError:
        return None
    text = content.get("text") if isinstance(content, dict) else None
    return text if isinstance(text, str) else None
