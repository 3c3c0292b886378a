"""What a verified callback becomes: one `Inbound` (a person's words, who, where, how to answer)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chatlog.chatops._http import Response, json_response

_MENTION = re.compile(r"^(?:@\S*\s*|<at[^>]*>[^<]*</at>\s*)+")
TEXT_LIMIT_CHARS = 500
EMPTY_JSON = json_response({})


@dataclass(frozen=True, slots=True)
class FeishuReplyTo:
    """Answer with Feishu's reply API to `message_id`, as the configured app."""

    message_id: str


@dataclass(frozen=True, slots=True)
class WebhookReplyTo:
    """Answer by POSTing to the per-chat webhook the callback named (WeCom ``WebhookUrl``, DingTalk
    ``sessionWebhook``)."""

    url: str
    kind: str
    """``wecom`` or ``dingtalk``: the body shape."""


@dataclass(frozen=True, slots=True)
class QQReplyTo:
    """A passive reply: ``POST {path}`` with ``msg_id`` (``/v2/groups/ID/messages``, ``/v2/users/ID/…``,
    ``/channels/ID/messages``)."""

    path: str
    msg_id: str


ReplyTo = FeishuReplyTo | WebhookReplyTo | QQReplyTo


@dataclass(frozen=True, slots=True)
class Inbound:
    """A person's message (or button press) to the bot, verified and decrypted.

    ``chat_keys`` name the chat the way a destination can be matched to it (see
    `chatlog.state.controls.chat_keys_of`); ``answer`` is set when the platform wants the result in the
    HTTP answer itself (a card button: answered within 3 s, with the command's words and the card
    updated in place, `chatlog.chatops.cards`), else the receiver answers ``ack`` at once and replies
    through ``reply_to`` afterwards. ``card`` is the pressed card's key (its button's ``value.card``).
    """

    platform: str
    text: str
    sender: tuple[tuple[str, str], ...]
    sender_name: str
    chat_id: str
    chat_keys: tuple[str, ...]
    message_id: str
    reply_to: ReplyTo | None
    ack: Response = EMPTY_JSON
    answer: Callable[[str, Mapping[str, Any] | None], Response] | None = None
    card: str = ""

    def sender_ids(self) -> frozenset[str]:
        """Every id of the sender (open_id, user_id, union_id, …), for allow-lists."""
        return frozenset(value for _, value in self.sender if value)


def command_text(text: str) -> str:
    """The command in a message: leading @-mentions removed (``@_user_1``, ``@Bot``, ``<at …>…</at>``),
    one line, at most 500 characters."""
    first = text.strip().replace("\r", " ").replace("\n", " ")
    return _MENTION.sub("", first).strip()[:TEXT_LIMIT_CHARS]
