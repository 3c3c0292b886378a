"""Commands typed in a fake chat change the control store, and the bot says what it did, in that chat."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatlog.chatops import HTTPReceiver, Receiver
from chatlog.chatops.commands import duration_s, group_id
from chatlog.state import ControlStore, Shown
from chatlog.testing import FakePlatforms
from chatlog.testing.callbacks import FakeChat

FEISHU = {"encrypt_key": "chatlog-encrypt-key", "verification_token": "vtoken-abc"}
SCOPE = "dest-ops"


@dataclass
class Room:
    chat: FakeChat
    other: FakeChat
    store: ControlStore
    fake: FakePlatforms


def _room(store: ControlStore, allow: list[str] | None = None) -> Iterator[Room]:
    store.register(SCOPE, "feishu-app://cli_x:***@chat_id/oc_ops", ["feishu-app:chat_id:oc_ops"], time.time())
    with FakePlatforms() as fake:
        app = fake.add_app(recipients={"chat_id": ["oc_ops", "oc_random"]})
        option = f"feishu-app://{app.app_id}:{app.app_secret}?base_url={fake.base_url}"
        server = HTTPReceiver(Receiver(feishu={**FEISHU, "app": option}, state=store, allow=allow))
        server.serve_in_thread()
        try:
            chat = fake.add_chat("feishu", f"{server.url}/feishu", FEISHU, app=app, chat_id="oc_ops")
            other = fake.add_chat("feishu", f"{server.url}/feishu", FEISHU, app=app, chat_id="oc_random")
            yield Room(chat, other, store, fake)
        finally:
            server.stop()


@pytest.fixture
def room() -> Iterator[Room]:
    yield from _room(ControlStore("memory"))
    ControlStore("memory")._query("DELETE FROM mutes")


def ask(chat: FakeChat, user: str, text: str, **kwargs: bool) -> str:
    before = len(chat.replies)
    assert chat.say(user, text, **kwargs).status == 200
    replies = chat.wait_replies(before + 1)
    assert len(replies) > before, f"no reply to {text!r}"
    return replies[-1]


def test_mute_in_the_chat_the_alert_went_to_is_stored_and_answered(room: Room) -> None:
    reply = ask(room.chat, "ou_alice", "mute #A3F2 1h")
    assert reply.startswith("Muted #a3f2 until ") and "by ou_alice" in reply
    mute = room.store.controls(SCOPE, time.time()).muted("a3f2")
    assert mute is not None and mute.by == "ou_alice"
    assert 3590 < mute.until - time.time() <= 3600


def test_a_mute_expires_by_itself(room: Room) -> None:
    ask(room.chat, "ou_alice", "mute a3f2 30m")
    assert room.store.controls(SCOPE, time.time() + 1799).muted("a3f2") is not None
    assert room.store.controls(SCOPE, time.time() + 1801).muted("a3f2") is None


def test_typing_without_mentioning_the_bot_works_too(room: Room) -> None:
    assert ask(room.chat, "ou_alice", "mute all 2h", mention=False).startswith("Muted all alerts until")
    assert room.store.controls(SCOPE, time.time()).muted("ffff") is not None


def test_a_chat_no_alert_goes_to_cannot_mute(room: Room) -> None:
    reply = ask(room.other, "ou_mallory", "mute #a3f2 1d")
    assert "no chatlog alerts reach this chat" in reply
    assert room.store.controls(SCOPE, time.time()).mutes == {}


def test_unmute_and_unmute_all(room: Room) -> None:
    ask(room.chat, "ou_alice", "mute #a3f2 1h")
    ask(room.chat, "ou_alice", "mute #b7c1 1h")
    assert ask(room.chat, "ou_bob", "unmute #a3f2") == "Unmuted #a3f2."
    assert ask(room.chat, "ou_bob", "unmute #a3f2") == "#a3f2 was not muted."
    assert ask(room.chat, "ou_bob", "unmute all") == "Unmuted all alerts."
    assert room.store.controls(SCOPE, time.time()).mutes == {}


def test_ack_is_stored_with_who(room: Room) -> None:
    assert ask(room.chat, "ou_carol", "ack #a3f2").startswith("Acknowledged #a3f2 (by ou_carol)")
    assert room.store.controls(SCOPE, time.time()).acks["a3f2"].by == "ou_carol"


def test_status_lists_what_fired_and_what_is_muted(room: Room) -> None:
    now = time.time()
    title = "order <*> failed: database unavailable"
    room.store.publish([Shown(SCOPE, "a3f2", "ERROR", title, 12, now, now)])
    ask(room.chat, "ou_alice", "mute #a3f2 1h")
    reply = ask(room.chat, "ou_alice", "status")
    assert "#a3f2 ERROR ×12 order <*> failed: database unavailable" in reply
    assert "muted #a3f2 until" in reply and "by ou_alice" in reply


def test_bad_arguments_get_the_usage_and_change_nothing(room: Room) -> None:
    for text in ("mute #a3f2", "mute #a3f2 1y", "mute #a3f2 31d", "mute #zz 1h", "mute <at id=all></at> 1h"):
        assert ask(room.chat, "ou_alice", text).startswith("Usage: mute"), text
    assert room.store.controls(SCOPE, time.time()).mutes == {}
    assert ask(room.chat, "ou_alice", "frobnicate").startswith("Sorry, I do not know 'frobnicate'")


def test_allow_list_lets_listed_people_mute_from_anywhere_and_nobody_else() -> None:
    for room in _room(ControlStore("memory"), allow=["on_alice"]):
        assert ask(room.chat, "ou_bob", "mute #a3f2 1h").startswith("Sorry, you are not on")
        assert ask(room.other, "ou_alice", "mute #a3f2 1h").startswith("Muted #a3f2")
        assert room.store.controls(SCOPE, time.time()).muted("a3f2") is not None
    ControlStore("memory")._query("DELETE FROM mutes")


def test_the_sender_name_shown_is_made_inert() -> None:
    for room in _room(ControlStore("memory")):
        reply = ask(room.chat, "ou_<b>x</b>*", "mute #a3f2 1h")
        assert "<b>" not in reply and "*" not in reply.split("by ")[1]
    ControlStore("memory")._query("DELETE FROM mutes")


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("2h", 7200), ("1d", 86400), ("45min", 2700)])
def test_durations(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "0m", "1y", "31d", "-1h", "1.5h", "h"])
def test_not_durations(text: str) -> None:
    assert duration_s(text) is None


def test_group_ids() -> None:
    assert group_id("#A3F2") == "a3f2" and group_id("a3f2") == "a3f2" and group_id("all") == "*"
    assert group_id("#xyz1") is None and group_id("#a3") is None


def test_store_file_is_owner_only_wal_and_shared_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "state" / "controls.db"
    store = ControlStore(f"sqlite:///{path}")
    store.register("s1", "wecom://***", ["wecom:key:abc"], 1.0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store._query("PRAGMA journal_mode")[0][0] == "wal"
    code = ("import sys; from chatlog.state import ControlStore; "
            "s = ControlStore(sys.argv[1]); "
            "s.mute(s.scopes_for(['wecom:key:abc']), 'a3f2', 2e9, 'zhangsan', 1.0)")
    subprocess.run([sys.executable, "-c", code, f"sqlite:///{path}"], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    mute = store.controls("s1", 1.5e9).muted("a3f2")
    assert mute is not None and mute.by == "zhangsan"
    assert "secret" not in path.read_bytes().decode("latin-1")


def test_bad_state_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match=r"sqlite:///"):
        ControlStore("postgres://x")
