"""Group bots cannot call back: with ``chatops=``, each group line on Feishu/Lark group bots, DingTalk and
WeCom shows the command to type, and typing exactly that in the fake chat (delivered signed and encrypted
to a receiver over real HTTP) mutes the group."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import chatlog
from chatlog.chatops import HTTPReceiver, Receiver
from chatlog.testing import FakeBot, FakePlatforms

FEISHU = {"encrypt_key": "chatlog-encrypt-key", "verification_token": "vtoken-abc"}
WECOM = {"token": "QDG6eK", "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}
DINGTALK = {"app_secret": "chatlog-app-secret"}
HINT = re.compile(r"to silence, type: (mute #([0-9a-f]{4}) 1h) · ack #\2")
GROUP_BOTS = ("feishu", "lark", "dingtalk", "wecom")


@pytest.fixture
def fake() -> Iterator[FakePlatforms]:
    with FakePlatforms() as platforms:
        yield platforms


def logger_to(handler: logging.Handler, name: str) -> logging.Logger:
    log = logging.getLogger(f"typed.{name}")
    log.propagate = False
    log.handlers[:] = [handler]
    return log


class Typing:
    """A receiver over real HTTP for the platform `bot` is in, the fake chat typing to it, and who types."""

    def __init__(self, fake: FakePlatforms, bot: FakeBot, state: str) -> None:
        app = None
        if bot.platform == "wecom":  # the callback names the bot's webhook: matched to its chat as is
            receiver, keys, self.user = Receiver(wecom=WECOM, state=state), WECOM, "alice"
        elif bot.platform == "dingtalk":  # a custom robot cannot be matched to its chat: allow-list
            receiver = Receiver(dingtalk=DINGTALK, state=state, allow=["alice"])
            keys, self.user = DINGTALK, "alice"
        else:  # typed to the Feishu/Lark app in the group bot's chat: allow-list too
            app = fake.add_app(f"{bot.platform}-app", recipients={"chat_id": ["oc_ops"]})
            option = f"{app.platform}://{app.app_id}:{app.app_secret}?base_url={fake.base_url}"
            options = {**FEISHU, "app": option}
            receiver = Receiver(feishu=options if bot.platform == "feishu" else None,
                                lark=options if bot.platform == "lark" else None,
                                state=state, allow=["ou_alice"])
            keys, self.user = FEISHU, "ou_alice"
        self.server = HTTPReceiver(receiver)
        self.server.serve_in_thread()
        self.chat = fake.add_chat(bot.platform, f"{self.server.url}/{bot.platform}", keys, app=app,
                                  bot=bot if bot.platform == "wecom" else None, chat_id="oc_ops")


@pytest.mark.parametrize("platform", GROUP_BOTS)
def test_group_bot_lines_show_the_command_that_typed_in_the_chat_mutes_the_group(
        fake: FakePlatforms, platform: str, tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'controls.db'}"  # its own store: the chat keys of other tests' bots
    bot = fake.add_bot(platform)
    handler = chatlog.ChatHandler(bot.url, chatops=state, group_wait=0.05)
    log = logger_to(handler, platform)
    typing = Typing(fake, bot, state)
    try:
        log.error("disk %s is full", "/var")
        handler.flush(10)
        hint = HINT.search(bot.texts()[-1])
        assert hint is not None, bot.texts()[-1]
        typed, group = hint.group(1), hint.group(2)
        assert '"tag": "action"' not in str(bot.messages[-1])  # no buttons on a group bot

        assert typing.chat.say(typing.user, typed).status == 200
        replies = typing.chat.wait_replies(1 + (platform == "wecom"))  # WeCom: the bot's alert came first
        assert replies[-1].startswith(f"Muted #{group} until "), replies

        sent = len(bot.texts())
        log.error("disk %s is full", "/var")
        log.error("cache %s is cold", "users")
        handler.flush(10)
        stats = handler.stats()
        assert stats.muted == 1
        assert stats.accepted == stats.delivered_records + stats.dropped + stats.pending + stats.muted
        latest = bot.texts()[-1]
        assert len(bot.texts()) > sent and "cache" in latest and f"#{group} ×1 muted by" in latest
    finally:
        typing.server.stop()
        log.handlers.clear()
        handler.close()


def test_no_command_line_without_chatops_nor_on_app_bot_cards(fake: FakePlatforms, tmp_path: Path) -> None:
    bot = fake.add_bot("dingtalk")
    app = fake.add_app(recipients={"chat_id": ["oc_ops"]})
    plain = chatlog.ChatHandler(bot.url, group_wait=0.05)
    with_buttons = chatlog.ChatHandler(app.url("chat_id"), chatops=f"sqlite:///{tmp_path / 'c.db'}",
                                       group_wait=0.05)
    log = logger_to(plain, "plain")
    log.addHandler(with_buttons)
    try:
        log.error("boom %s", 1)
        plain.flush(10)
        with_buttons.flush(10)
    finally:
        log.handlers.clear()
        plain.close()
        with_buttons.close()
    assert HINT.search(bot.texts()[-1]) is None and HINT.search(app.texts()[-1]) is None
    assert "Mute 1h" in str(app.messages[-1].content)
