"""The other direction: a fake person in a fake chat types to the bot, and the fake platform delivers it
to a receiver's URL encrypted and signed exactly as the platform does, then keeps the bot's answers.

    with FakePlatforms() as fake:
        app = fake.add_app(recipients={"chat_id": ["oc_ops"]})
        keys = {"encrypt_key": "k", "verification_token": "v"}      # what the receiver got as feishu=
        chat = fake.add_chat("feishu", f"{receiver_url}/feishu", keys, app=app, chat_id="oc_ops")
        chat.say("ou_alice", "mute #a3f2 1h")     # -> the receiver's HTTP answer
        chat.wait_replies(1)                      # -> ["Muted #a3f2 until …"]

Where replies go, per platform: Feishu/Lark — ``POST /open-apis/im/v1/messages/{id}/reply`` with the app's
tenant token (checked against the fake app); WeCom — the group bot's webhook named in the message
(``bot=``, a fake WeCom bot); DingTalk — ``POST /robot/sendBySession?session=…`` (valid 90 minutes);
QQ — ``POST /app/getAppAccessToken`` then ``POST /v2/groups/{group_openid}/messages`` with the
message's ``msg_id`` (a passive reply: refused after 5 minutes). Those endpoints are
`chatlog.testing.callbacks_hub`'s.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from chatlog.chatops import crypto
from chatlog.testing.apps import FakeApp
from chatlog.testing.bots import FakeBot
from chatlog.testing.cards import card_of_answer, find_button

if TYPE_CHECKING:
    from chatlog.testing.callbacks_hub import Callbacks

SESSION_S = 90 * 60.0


@dataclass(frozen=True, slots=True)
class Said:
    """One thing the bot said in the chat: a reply (or, on WeCom, any message to the chat's bot)."""

    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """The receiver's HTTP answer to one delivered callback."""

    status: int
    body: bytes
    verified: bool | None = None
    """For `FakeChat.verify_url`: whether the platform would accept the answer (the challenge echoed,
    the echostr decrypted, the op 13 token signed with the bot's key); None for other deliveries."""

    def json(self) -> Any:
        """The answer body as JSON."""
        return json.loads(self.body)


class FakeChat:
    """One chat on a fake platform, wired to a receiver URL; create it with ``FakePlatforms.add_chat``."""

    def __init__(self, hub: Callbacks, platform: str, url: str, keys: Mapping[str, str], *,
                 app: FakeApp | None, bot: FakeBot | None, chat_id: str, transport: str = "http") -> None:
        self._hub = hub
        self.transport = transport
        self.platform = platform
        self.url = url
        self.chat_id = chat_id
        self._keys = dict(keys)
        self._app = app
        self._bot = bot
        self._replies: list[Said] = []
        self._message_ids: dict[str, float] = {}
        self._updated: dict[str, dict[str, Any]] = {}
        self._client = httpx.Client(timeout=10.0, trust_env=False)

    def __repr__(self) -> str:
        return f"FakeChat(platform={self.platform!r}, chat_id={self.chat_id!r})"

    @property
    def replies(self) -> list[str]:
        """What the bot said in this chat, in order."""
        with self._hub.changed:
            said = list(self._replies)
        if self._bot is not None:
            return self._bot.texts()
        return [item.text for item in said]

    def wait_replies(self, n: int, timeout: float = 10.0) -> list[str]:
        """Block until the bot said `n` things here or `timeout` passed; returns them."""
        deadline = time.monotonic() + timeout
        with self._hub.changed:
            while len(self.replies) < n and time.monotonic() < deadline:
                self._hub.changed.wait(max(0.0, min(0.1, deadline - time.monotonic())))
        return self.replies

    def say(self, user: str, text: str, *, mention: bool = True) -> Delivery:
        """`user` (an open_id / userid / openid) types `text`, @-mentioning the bot unless `mention` is
        False; returns the receiver's HTTP answer."""
        message_id = f"m_{secrets.token_hex(12)}"
        with self._hub.changed:
            self._message_ids[message_id] = self._hub.clock()
        build = {"feishu": self._feishu_message, "lark": self._feishu_message, "wecom": self._wecom_message,
                 "dingtalk": self._dingtalk_message, "qq": self._qq_message}[self.platform]
        return build(user, text, mention, message_id)

    def press(self, user: str, command: str) -> Delivery:
        """Feishu/Lark: `user` presses the button that runs `command` on the latest card the app
        delivered here (its own value and message id; the card the answer puts in its place is kept,
        see `cards`), or, when no card has one, a button whose value is ``{"command": command}``."""
        if self.platform not in ("feishu", "lark"):
            raise ValueError(f"only Feishu/Lark cards call back; {self.platform} has no buttons")
        button = find_button(self.cards.items(), command)
        value = button.value if button else {"command": command}
        message_id = button.message_id if button else f"om_{secrets.token_hex(16)}"
        event = {"schema": "2.0", "header": self._feishu_header("card.action.trigger", micro=True),
                 "event": {"operator": _feishu_ids(user), "token": f"c-{secrets.token_hex(16)}",
                           "action": {"value": value, "tag": "button"}, "host": "im_message",
                           "context": {"open_message_id": message_id, "open_chat_id": self.chat_id}}}
        delivery = self._feishu_post(event, signed=True)
        card = card_of_answer(delivery.status, delivery.body)
        if button is not None and card is not None:
            with self._hub.changed:
                self._updated[message_id] = card
        return delivery

    @property
    def cards(self) -> dict[str, dict[str, Any]]:
        """Each card the app delivered to this chat, by message id, as it shows now: updated in place
        by the answers to its buttons."""
        delivered = self._app.messages_to(self.chat_id) if self._app is not None else []
        with self._hub.changed:
            updated = dict(self._updated)
        return {m.message_id: updated.get(m.message_id, m.content) for m in delivered
                if m.msg_type == "interactive"}

    def verify_url(self) -> Delivery:
        """What the platform sends when the callback URL is saved in its console."""
        if self.platform in ("feishu", "lark"):
            challenge = {"challenge": secrets.token_hex(8), "token": self._keys["verification_token"],
                         "type": "url_verification"}
            answer = self._feishu_post(challenge, signed=False)
            echoed = _json_of(answer) == {"challenge": challenge["challenge"]}
            return _checked(answer, answer.status == 200 and echoed)
        if self.platform == "wecom":
            plain = str(secrets.randbelow(10**18)).encode()
            echostr = crypto.wecom_encrypt(plain, self._keys["encoding_aes_key"], "", secrets.token_bytes(16))
            answer = self._get(self._wecom_query(echostr) | {"echostr": echostr})
            return _checked(answer, answer.status == 200 and answer.body == plain)
        if self.platform == "qq":
            event_ts = str(int(self._hub.clock()))
            plain_token = secrets.token_hex(10)
            answer = self._qq_post({"op": 13, "d": {"plain_token": plain_token, "event_ts": event_ts}})
            found = _json_of(answer)
            signed = isinstance(found, dict) and found.get("plain_token") == plain_token and crypto.qq_verify(
                self._keys["secret"], (event_ts + plain_token).encode(), str(found.get("signature", "")))
            return _checked(answer, answer.status == 200 and signed)
        raise ValueError("DingTalk robots have no URL verification step")

    # --- Feishu / Lark -------------------------------------------------------------------------------

    def _feishu_header(self, kind: str, *, micro: bool = False) -> dict[str, str]:
        now = self._hub.clock()
        return {"event_id": secrets.token_hex(16), "event_type": kind,
                "token": self._keys["verification_token"],
                "create_time": str(int(now * (1_000_000 if micro else 1000))),
                "app_id": self._app.app_id if self._app else "cli_fake", "tenant_key": "736588c9260f175e"}

    def _feishu_message(self, user: str, text: str, mention: bool, message_id: str) -> Delivery:
        content = f"@_user_1 {text}" if mention else text
        mentions = [{"key": "@_user_1", "id": _feishu_ids("ou_bot"), "name": "chatlog"}] if mention else []
        message = {"message_id": message_id, "root_id": "", "parent_id": "", "chat_id": self.chat_id,
                   "chat_type": "group", "message_type": "text", "content": json.dumps({"text": content}),
                   "mentions": mentions, "create_time": str(int(self._hub.clock() * 1000))}
        event = {"schema": "2.0", "header": self._feishu_header("im.message.receive_v1"),
                 "event": {"sender": {"sender_id": _feishu_ids(user), "sender_type": "user"},
                           "message": message}}
        return self._feishu_post(event, signed=True)

    def _feishu_post(self, event: Mapping[str, object], *, signed: bool) -> Delivery:
        if self.transport == "ws" and self._app is not None:
            return Delivery(*self._hub.ws.push(self._app.app_id, json.dumps(event).encode()))
        key = self._keys["encrypt_key"]
        encrypt = crypto.feishu_encrypt(json.dumps(event).encode(), key, secrets.token_bytes(16))
        body = json.dumps({"encrypt": encrypt}).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if signed:
            timestamp, nonce = str(int(self._hub.clock())), secrets.token_hex(8)
            headers |= {"X-Lark-Request-Timestamp": timestamp, "X-Lark-Request-Nonce": nonce,
                        "X-Lark-Signature": crypto.feishu_signature(timestamp, nonce, key, body)}
        return self._post(body, headers)

    # --- WeCom ---------------------------------------------------------------------------------------

    def _wecom_query(self, encrypt: str) -> dict[str, str]:
        timestamp, nonce = str(int(self._hub.clock())), str(secrets.randbelow(10**10))
        signature = crypto.wecom_signature(self._keys["token"], timestamp, nonce, encrypt)
        return {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}

    def _wecom_message(self, user: str, text: str, mention: bool, message_id: str) -> Delivery:
        if self._bot is None:
            raise ValueError("a WeCom chat needs bot= (the fake group bot whose webhook the bot answers on)")
        content = f"@chatlog {text}" if mention else text
        xml = (f"<xml><WebhookUrl><![CDATA[{self._bot.url}]]></WebhookUrl>"
               f"<MsgId><![CDATA[{message_id}]]></MsgId>"
               f"<ChatId><![CDATA[{self.chat_id}]]></ChatId><ChatType>group</ChatType><From><UserId>{user}</UserId>"
               f"<Name><![CDATA[{user}]]></Name><Alias><![CDATA[{user}]]></Alias></From><MsgType>text</MsgType>"
               f"<Text><Content><![CDATA[{content}]]></Content></Text></xml>")
        key = self._keys["encoding_aes_key"]
        encrypt = crypto.wecom_encrypt(xml.encode(), key, "", secrets.token_bytes(16))
        body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
        return self._post(body, {"Content-Type": "text/xml"}, self._wecom_query(encrypt))

    # --- DingTalk ------------------------------------------------------------------------------------

    def _dingtalk_message(self, user: str, text: str, mention: bool, message_id: str) -> Delivery:
        now = self._hub.clock()
        session = secrets.token_hex(12)
        with self._hub.changed:
            self._hub.sessions[session] = (self, now + SESSION_S)
        body = {"msgtype": "text", "text": {"content": f" {text}"}, "msgId": message_id,
                "createAt": int(now * 1000), "conversationType": "2", "conversationId": self.chat_id,
                "conversationTitle": "ops", "senderId": f"$:LWCP_v1:${user}", "senderNick": user,
                "senderStaffId": user, "chatbotUserId": "$:LWCP_v1:$bot", "isAdmin": False,
                "isInAtList": mention,
                "sessionWebhook": f"{self._hub.base_url()}/robot/sendBySession?session={session}",
                "sessionWebhookExpiredTime": int((now + SESSION_S) * 1000)}
        timestamp = str(int(now * 1000))
        headers = {"Content-Type": "application/json", "timestamp": timestamp,
                   "sign": crypto.dingtalk_signature(timestamp, self._keys["app_secret"])}
        return self._post(json.dumps(body).encode(), headers)

    # --- QQ ------------------------------------------------------------------------------------------

    def _qq_message(self, user: str, text: str, mention: bool, message_id: str) -> Delivery:
        kind = "GROUP_AT_MESSAGE_CREATE"
        body = {"op": 0, "id": f"{kind}:{secrets.token_hex(8)}", "t": kind,
                "d": {"id": message_id, "content": f" {text}", "group_openid": self.chat_id,
                      "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(self._hub.clock())),
                      "author": {"member_openid": user}}}
        return self._qq_post(body)

    def _qq_post(self, body: Mapping[str, object]) -> Delivery:
        raw = json.dumps(body).encode()
        timestamp = str(int(self._hub.clock()))
        headers = {"Content-Type": "application/json", "X-Signature-Timestamp": timestamp,
                   "X-Signature-Ed25519": crypto.qq_sign(self._keys["secret"], timestamp.encode() + raw),
                   "X-Bot-Appid": self._keys.get("app_id", "")}
        return self._post(raw, headers)

    # --- transport -----------------------------------------------------------------------------------

    def _post(self, body: bytes, headers: Mapping[str, str],
              params: Mapping[str, str] | None = None) -> Delivery:
        answer = self._client.post(self.url, content=body, headers=dict(headers), params=params)
        return Delivery(answer.status_code, answer.content)

    def _get(self, params: Mapping[str, str]) -> Delivery:
        answer = self._client.get(self.url, params=params)
        return Delivery(answer.status_code, answer.content)

    def _said(self, text: str, now: float) -> None:
        with self._hub.changed:
            self._replies.append(Said(text, now))
            self._hub.changed.notify_all()

    def _knows(self, message_id: str, now: float, within_s: float) -> bool:
        with self._hub.changed:
            at = self._message_ids.get(message_id)
        return at is not None and now - at <= within_s

    def close(self) -> None:
        """Close the chat's HTTP client."""
        self._client.close()


def _json_of(delivery: Delivery) -> object:
    try:
        return delivery.json()
    except ValueError:
        return None


def _checked(delivery: Delivery, verified: bool) -> Delivery:
    return Delivery(delivery.status, delivery.body, verified)


def _feishu_ids(open_id: str) -> dict[str, str]:
    name = open_id.removeprefix("ou_")
    return {"open_id": open_id, "user_id": name, "union_id": f"on_{name}"}
