"""Mutes typed in the chat are honoured by handlers in other processes: an alert from a child process →
``mute #id 1h`` in the fake chat → the reply → that group stays quiet while others alert → unmute."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chatlog
from chatlog.chatops import HTTPReceiver, Receiver
from chatlog.testing import FakeApp, FakePlatforms
from chatlog.testing.callbacks import FakeChat

FEISHU = {"encrypt_key": "chatlog-encrypt-key", "verification_token": "vtoken-abc"}
GROUP_ID = re.compile(r"#([0-9a-f]{4})\b")

CHILD = r"""
import json, logging, sys
import chatlog
url, state = sys.argv[1], sys.argv[2]
handler = chatlog.ChatHandler(url, chatops=state, group_wait=0.1, group_interval=0.3)
log = logging.getLogger("child")
log.propagate = False
log.addHandler(handler)
for line in sys.stdin:
    word, _, n = line.strip().partition(" ")
    if word == "payment":
        for i in range(int(n)):
            log.error("payment %s failed", i)
    elif word == "cache":
        for i in range(int(n)):
            log.error("cache miss for user %s", i)
    elif word == "flush":
        handler.flush(10)
        s = handler.stats()
        print(json.dumps({"accepted": s.accepted, "delivered": s.delivered_records, "dropped": s.dropped,
                          "pending": s.pending, "muted": s.muted}), flush=True)
    elif word == "quit":
        break
handler.close()
"""


class Child:
    def __init__(self, url: str, state: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
        self.process = subprocess.Popen([sys.executable, "-c", CHILD, url, state], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)

    def do(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def flush(self) -> dict[str, int]:
        self.do("flush")
        assert self.process.stdout is not None
        stats: dict[str, int] = json.loads(self.process.stdout.readline())
        return stats

    def stop(self) -> None:
        self.do("quit")
        self.process.wait(20)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[FakeApp, FakeChat, Child]]:
    state = f"sqlite:///{tmp_path / 'controls.db'}"
    with FakePlatforms() as fake:
        app = fake.add_app(recipients={"chat_id": ["oc_ops"]})
        option = f"feishu-app://{app.app_id}:{app.app_secret}?base_url={fake.base_url}"
        server = HTTPReceiver(Receiver(feishu={**FEISHU, "app": option}, state=state))
        server.serve_in_thread()
        child = Child(app.url("chat_id"), state)
        try:
            chat = fake.add_chat("feishu", f"{server.url}/feishu", FEISHU, app=app, chat_id="oc_ops")
            yield app, chat, child
        finally:
            child.stop()
            server.stop()


def ask(chat: FakeChat, text: str) -> str:
    before = len(chat.replies)
    assert chat.say("ou_alice", text).status == 200
    replies = chat.wait_replies(before + 1)
    assert len(replies) > before, f"no reply to {text!r}"
    return replies[-1]


def test_mute_from_the_chat_silences_one_group_of_another_process_until_unmuted(
        setup: tuple[FakeApp, FakeChat, Child]) -> None:
    app, chat, child = setup
    child.do("payment 3")
    child.flush()
    first = app.texts("oc_ops")[-1]
    payment_id = GROUP_ID.search(first)
    assert payment_id is not None, first
    group = payment_id.group(1)

    assert ask(chat, f"mute #{group} 1h").startswith(f"Muted #{group} until ")

    child.do("payment 5")
    child.do("cache 2")
    stats = child.flush()
    assert stats["muted"] == 5
    assert stats["accepted"] == stats["delivered"] + stats["dropped"] + stats["pending"] + stats["muted"]
    latest = app.texts("oc_ops")[-1]
    assert "cache miss for user" in latest and "payment" not in latest.split("muted")[0]
    assert f"#{group} ×5 muted by ou_alice until" in latest

    status = ask(chat, "status")
    assert f"muted #{group} until" in status and "cache miss for user" in status

    assert ask(chat, f"unmute #{group}") == f"Unmuted #{group}."
    sent = len(app.texts("oc_ops"))
    child.do("payment 1")
    child.flush()
    texts = app.texts("oc_ops")
    assert len(texts) == sent + 1 and f"#{group}" in texts[-1] and "payment" in texts[-1]


def test_every_alert_line_shows_a_short_stable_group_id(fake_platforms: FakePlatforms) -> None:
    bots = [fake_platforms.add_bot(name) for name in ("feishu", "dingtalk", "wecom")]
    ids = []
    for bot in bots:
        handler = chatlog.ChatHandler(bot.url, group_wait=0.05)
        log = logging.getLogger(f"ids.{bot.platform}")
        log.propagate = False
        log.addHandler(handler)
        try:
            log.error("order %s failed", 1)
            handler.flush(10)
        finally:
            log.removeHandler(handler)
            handler.close()
        found = GROUP_ID.search(bot.texts()[-1])
        assert found is not None, bot.texts()[-1]
        ids.append(found.group(1))
    assert len(set(ids)) == 3  # the logger name is part of the fingerprint


def test_chatops_option_is_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="chatops="):
        chatlog.ChatHandler("wecom://KEY", chatops="redis://x")
    handler = chatlog.ChatHandler("wecom://KEY", chatops="memory")
    try:
        assert handler.stats().muted == 0
    finally:
        handler.close()


def test_a_mute_expires_by_itself_and_the_group_alerts_again(fake_platforms: FakePlatforms) -> None:
    from chatlog.state import ControlStore
    from chatlog.state.honour import scope_of

    bot = fake_platforms.add_bot("wecom")
    handler = chatlog.ChatHandler(bot.url, chatops="memory", group_wait=0.05)
    store = ControlStore("memory")
    log = logging.getLogger("expiry")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.error("disk %s full", "/var")
        handler.flush(10)
        group = GROUP_ID.search(bot.texts()[-1])
        assert group is not None
        scope = scope_of(handler._dispatcher.destination)
        store.mute([scope], group.group(1), time.time() + 0.5, "ou_alice", time.time())
        log.error("disk %s full", "/var")
        handler.flush(10)
        assert handler.stats().muted == 1
        time.sleep(0.6)  # the mute is stored in wall time, shared with other processes: no clock to inject
        log.error("disk %s full", "/var")
        handler.flush(10)
        assert f"#{group.group(1)}" in bot.texts()[-1] and handler.stats().muted == 1
    finally:
        log.removeHandler(handler)
        handler.close()
        store.unmute([scope], "*")


def test_app_bot_cards_carry_mute_and_ack_buttons_that_the_receiver_answers(
        setup: tuple[FakeApp, FakeChat, Child]) -> None:
    app, chat, child = setup
    child.do("payment 2")
    child.flush()
    card = app.messages[-1].content
    buttons = [action for element in card["elements"] if element.get("tag") == "action"
               for action in element["actions"]]
    assert [b["text"]["content"] for b in buttons] == ["Mute 1h", "Ack"]
    mute = buttons[0]["value"]["command"]
    assert GROUP_ID.search(mute) is not None
    toast = chat.press("ou_alice", mute).json()["toast"]
    assert toast["type"] == "success" and toast["content"].startswith("Muted #")
    child.do("payment 4")
    assert child.flush()["muted"] == 4


def buttons_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [action for element in card["elements"] if element.get("tag") == "action"
            for action in element["actions"]]


def contents_of(card: dict[str, Any]) -> str:
    return "\n".join(str(element.get("content", "")) for element in card["elements"])


def test_pressing_mute_or_ack_updates_the_card_in_place_over_the_callback_answer(
        setup: tuple[FakeApp, FakeChat, Child]) -> None:
    app, chat, child = setup
    child.do("payment 2")
    child.do("cache 1")
    child.flush()
    sent = app.messages[-1]
    payment_mute, _, cache_mute, cache_ack = (b["value"]["command"] for b in buttons_of(sent.content))
    payment = payment_mute.split()[1]

    answer = chat.press("ou_alice", payment_mute).json()
    assert answer["toast"]["type"] == "success" and answer["card"]["type"] == "raw"
    card = chat.cards[sent.message_id]
    assert card == answer["card"]["data"] and card["header"] == sent.content["header"]
    assert "🔕 Muted by <at id=ou_alice></at> until " in contents_of(card)
    assert f"type unmute {payment} to undo" in contents_of(card)
    assert [b["value"]["command"] for b in buttons_of(card)] == [cache_mute, cache_ack]

    chat.press("ou_bob", cache_ack)
    card = chat.cards[sent.message_id]
    assert "🔕 Muted by <at id=ou_alice></at>" in contents_of(card)
    assert "✅ Acknowledged by <at id=ou_bob></at>" in contents_of(card)
    assert [b["value"]["command"] for b in buttons_of(card)] == [cache_mute]
    assert app.messages[-1] == sent  # updated in place: no new message


def test_the_name_in_an_updated_card_is_inert_whatever_the_callback_says(
        setup: tuple[FakeApp, FakeChat, Child]) -> None:
    app, chat, child = setup
    child.do("payment 1")
    child.flush()
    sent = app.messages[-1]
    mute = buttons_of(sent.content)[0]["value"]["command"]
    assert chat.press("<at id=all></at>[x](http://evil)", mute).status == 200
    shown = json.dumps(chat.cards[sent.message_id], ensure_ascii=False)
    assert "Muted by" in shown and "<at id=all>" not in shown and "](http://evil)" not in shown


def test_group_bot_cards_have_no_buttons(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("feishu")
    handler = chatlog.ChatHandler(bot.url, chatops="memory", group_wait=0.05)
    log = logging.getLogger("no-buttons")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.error("boom %s", 1)
        handler.flush(10)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert '"tag": "action"' not in json.dumps(bot.messages[-1])


def test_an_acknowledged_group_is_not_shown_in_full_again(fake_platforms: FakePlatforms) -> None:
    from chatlog.state import ControlStore
    from chatlog.state.honour import scope_of

    bot = fake_platforms.add_bot("wecom")
    handler = chatlog.ChatHandler(bot.url, chatops="memory", group_wait=0.05, group_interval=0.05,
                                  repeat_interval=1.0)
    log = logging.getLogger("acked")
    log.propagate = False
    log.addHandler(handler)
    store = ControlStore("memory")
    scope = scope_of(handler._dispatcher.destination)
    try:
        log.error("queue %s is backing up", "orders")
        handler.flush(10)
        group = GROUP_ID.search(bot.texts()[-1])
        assert group is not None and "more since last alert" not in bot.texts()[-1]
        time.sleep(1.1)  # past repeat_interval: without the ack the group would be shown in full again
        store.ack([scope], group.group(1), "ou_alice", time.time())
        log.error("queue %s is backing up", "orders")
        handler.flush(10)
        assert "more since last alert" in bot.texts()[-1]
    finally:
        log.removeHandler(handler)
        handler.close()
        store._query("DELETE FROM acks")


def test_who_muted_is_shown_inert_even_if_the_store_holds_markup(fake_platforms: FakePlatforms) -> None:
    from chatlog.state import ControlStore
    from chatlog.state.honour import scope_of

    bot = fake_platforms.add_bot("feishu")
    handler = chatlog.ChatHandler(bot.url, chatops="memory", group_wait=0.05)
    log = logging.getLogger("inert")
    log.propagate = False
    log.addHandler(handler)
    store = ControlStore("memory")
    scope = scope_of(handler._dispatcher.destination)
    try:
        log.error("noisy %s", 1)
        handler.flush(10)
        group = GROUP_ID.search(bot.texts()[-1])
        assert group is not None
        store.mute([scope], group.group(1), time.time() + 60, "<at id=all></at>[x](http://evil)", time.time())
        log.error("noisy %s", 2)
        log.error("other %s", 1)
        handler.flush(10)
        sent = json.dumps(bot.messages[-1], ensure_ascii=False)
        assert "muted by" in sent and "<at id=all>" not in sent and "](http://evil)" not in sent
    finally:
        log.removeHandler(handler)
        handler.close()
        store.unmute([scope], "*")


def test_a_card_restated_from_a_store_holding_markup_shows_the_names_inert() -> None:
    from chatlog.chatops.cards import restate
    from chatlog.state.controls import Ack, Controls, Mute

    def row(group: str) -> dict[str, Any]:
        return {"tag": "action", "actions": [{"tag": "button", "value": {"command": f"{word} #{group}",
                                                                          "group": group, "card": "b-1"}}
                                             for word in ("mute", "ack")]}

    card = {"header": {}, "elements": [row("a3f2"), row("b7c1")]}
    evil = "<at id=all></at>[x](http://evil)"
    controls = Controls({"a3f2": Mute("a3f2", time.time() + 60, evil, time.time())},
                        {"b7c1": Ack("b7c1", "ou_bob", time.time())})
    shown = json.dumps(restate(card, controls), ensure_ascii=False)
    assert "Muted by" in shown and "<at id=all>" not in shown and "](http://evil)" not in shown
    assert "✅ Acknowledged by <at id=ou_bob></at>" in shown
    assert [b["value"]["command"] for b in buttons_of(restate(card, controls))] == ["mute #b7c1"]


def test_a_card_that_fails_to_render_falls_back_to_text_and_keeps_nothing(
        fake_platforms: FakePlatforms, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    from chatlog.platforms.feishu_app import FeishuApp
    from chatlog.state import ControlStore

    def broken(self: FeishuApp, digest: object) -> dict[str, Any]:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(FeishuApp, "render", broken)
    state = f"sqlite:///{tmp_path / 'controls.db'}"
    app = fake_platforms.add_app(recipients={"chat_id": ["oc_ops"]})
    handler = chatlog.ChatHandler(app.url("chat_id"), chatops=state, group_wait=0.05)
    log = logging.getLogger("broken-card")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.error("boom %s", 1)
        assert handler.flush(10)
        log.error("boom %s", 2)
        assert handler.flush(10)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert [m.msg_type for m in app.messages] == ["text", "text"]  # the dispatcher went on
    assert ControlStore(state)._query("SELECT COUNT(*) FROM cards") == [(0,)]
    err = capfd.readouterr().err
    assert "could not render the message" in err and "internal error" not in err
