"""A handler's side of ChatOps: honour the mutes and acks in the control store, say what it showed.

`Silencer` lives on the dispatcher thread (never the application's). It reads the store once right
before a batch goes out — never more often than once per dispatcher round — takes the records of muted
groups out of the batch (counted, shown as one line in the next message that does go out), shows acked
groups as one line, and after a delivered message records which groups it showed, for ``status``.
A store that fails (locked, deleted, full disk) is reported once a minute and honoured as "nothing
muted": alerts keep going out.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable

from chatlog._record import replace
from chatlog._report import Reporter
from chatlog.digest import Digest, GroupTable, MutedNote
from chatlog.platforms._base import Destination
from chatlog.state.controls import Controls, ControlStore, Shown
from chatlog.state.store import scope_of

__all__ = ["BUTTONS", "TYPED", "Silencer", "chat_keys_of", "scope_of"]

BUTTONS = frozenset({"feishu-app", "lark-app"})
"""Platforms whose cards call back: Mute 1h / Ack buttons."""
TYPED = frozenset({"feishu", "lark", "dingtalk", "wecom"})
"""Group bots in chats a receiver reads (but whose messages cannot call back): the command to type."""


def chat_keys_of(destination: Destination) -> list[str]:
    """The chats this destination's messages land in, as a callback names them (see docs/DESIGN.md)."""
    platform = getattr(destination, "platform", "")
    if platform in ("feishu-app", "lark-app"):
        kind = getattr(destination, "receive_id_type", "")
        if kind in ("chat_id", "open_id", "user_id", "union_id"):
            return [f"{platform}:{kind}:{value}" for value in getattr(destination, "receive_ids", ())]
    key = getattr(destination, "key", None)
    if platform == "wecom" and isinstance(key, str):
        return [f"wecom:key:{_key_hash(key)}"]
    return []


def _key_hash(secret: str) -> str:
    # The same name `chatlog.chatops.crypto.key_hash` gives the key a WeCom callback carries.
    return hashlib.sha256(b"chatlog:" + secret.encode()).hexdigest()[:16]


class Silencer:
    """Applies one destination's mutes and acks to its batches; all methods run on the dispatcher thread."""

    def __init__(self, store: ControlStore, destination: Destination, reporter: Reporter, *,
                 repeat_interval: float, wall_clock: Callable[[], float] = time.time) -> None:
        """`wall_clock` gives Unix seconds (mutes are stored in wall time, shared across processes)."""
        self._store = store
        self._destination = destination
        self._reporter = reporter
        self._repeat_interval = repeat_interval
        self._clock = wall_clock
        self.scope = scope_of(destination)
        self._registered = False
        self._controls = Controls({}, {})
        self._notes: dict[str, MutedNote] = {}
        self.muted = 0
        """Records kept out of messages because their group was muted."""

    def refresh(self) -> None:
        """Read this destination's mutes and acks from the store (an unreadable store: none)."""
        self._controls = self._read(self._clock())

    def take(self, table: GroupTable) -> int:
        """Take the unsent records of muted groups out of `table`; returns how many (no I/O)."""
        if not self._controls.mutes:
            return 0
        taken = table.silence(self.is_muted)
        for group_id, n in taken.items():
            self.note(group_id, n)
        total = sum(taken.values())
        self.muted += total
        return total

    def is_muted(self, group_id: str) -> bool:
        """True when a mute read by the last `refresh` covers `group_id`."""
        return self._controls.muted(group_id) is not None

    def note(self, group_id: str, n: int) -> None:
        """`n` records of a muted group were kept out: one line in the next message that goes out (a
        fleet's leader notes other processes' records here too; they count as muted in theirs)."""
        mute = self._controls.muted(group_id)
        if mute is None:
            return
        before = self._notes.get(group_id)
        self._notes[group_id] = MutedNote(group_id or "other", n + (before.count if before else 0),
                                          mute.until, mute.by)

    def silence(self, table: GroupTable, lock: threading.Lock) -> bool:
        """Before a send: read the store (once per send at most) and take muted groups out of `table`
        under `lock`; True when nothing else was left to send."""
        self.refresh()
        with lock:
            self.take(table)
            return not table.unsent

    def decorate(self, digest: Digest) -> Digest:
        """`digest` with the muted notes, acked groups shown as one line, buttons on app-bot cards (only
        app bots' cards call back) and, on the group bots a receiver can answer, the command to type."""
        now = self._clock()
        groups = tuple(replace(group, repeat=True) if self.acked(group.group_id, now) else group
                       for group in digest.groups)
        platform = getattr(self._destination, "platform", "")
        return replace(digest, groups=groups, muted=tuple(self._notes.values()),
                       actions=platform in BUTTONS, commands=platform in TYPED)

    def acked(self, group_id: str, now: float | None = None) -> bool:
        """True when `group_id` was acknowledged within ``repeat_interval`` (as of the last `refresh`)."""
        ack = self._controls.acks.get(group_id)
        when = self._clock() if now is None else now
        return ack is not None and 0.0 <= when - ack.at < self._repeat_interval

    def delivered(self, digest: Digest) -> None:
        """The digest reached the chat: its muted notes were read; remember what it showed."""
        for note in digest.muted:
            if self._notes.get(note.group_id) == note:
                del self._notes[note.group_id]
        now = self._clock()
        shown = [Shown(self.scope, group.group_id, group.sample.level_name, group.sample.message[:200],
                       group.count, group.last_seen, now) for group in digest.groups if group.group_id]
        self._write(lambda: self._store.publish(shown))
        if digest.actions and digest.batch:
            self._keep_card(digest, now)

    def _keep_card(self, digest: Digest, now: float) -> None:
        """Keep the card with buttons just delivered (rendered again: rendering is a pure function of
        the digest), so a press on one of them answers with it updated in place."""
        try:
            message = self._destination.render(digest)
        except Exception:  # the send fell back to plain text already (reported there): no buttons to keep
            return
        content = message.get("content")
        if message.get("msg_type") == "interactive" and isinstance(content, str):
            self._write(lambda: self._store.keep_card(digest.batch, self.scope, content, now))

    def _read(self, now: float) -> Controls:
        try:
            if not self._registered:
                keys = chat_keys_of(self._destination)
                self._store.register(self.scope, self._destination.masked(), keys, now)
                self._registered = True
            return self._store.controls(self.scope, now)
        except (sqlite3.Error, OSError) as exc:
            self._reporter.report("controls", "cannot read the ChatOps control store, mutes are not "
                                  f"honoured meanwhile: {type(exc).__name__}: {exc}")
            return Controls({}, {})

    def _write(self, write: Callable[[], None]) -> None:
        try:
            write()
        except (sqlite3.Error, OSError) as exc:
            self._reporter.report("controls-write", f"cannot write the ChatOps control store: "
                                  f"{type(exc).__name__}: {exc}")

