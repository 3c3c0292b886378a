"""The control store: mutes and acknowledgements typed in a chat, and what each destination shows.

One small SQLite database (WAL) shared by every process on the host: the receiver writes mutes and
acks, each handler reads them on its dispatcher thread and writes which groups it showed. Rows are
keyed by *scope*, a hash of the destination (platform + credentials, never the credentials), so the
file holds no secret. The data model (see docs/DESIGN.md, "ChatOps"):

- ``destinations(scope, masked, seen)`` — handlers that registered, with their masked URL;
- ``chats(chat_key, scope)`` — which chats a destination's messages land in (``feishu-app:chat_id:oc_…``,
  ``wecom:key:<hash>``), so a command typed in a chat finds the destinations it controls;
- ``mutes(scope, group_id, until, by, at)`` — ``group_id`` ``*`` mutes everything;
- ``acks(scope, group_id, by, at)``;
- ``groups(scope, group_id, level, title, count, last_seen, last_sent)`` — what ``status`` shows;
- ``cards(card_key, scope, card, at)`` — the Feishu/Lark cards with buttons that a handler sent, so a
  button press can answer with the card updated in place (kept `CARD_KEEP_S`).

Issue 11's fleet store can absorb these tables unchanged: they are keyed the same way.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatlog.state.sqlite import prepare_file
from chatlog.state.store import runtime_dir

ALL = "*"
MEMORY_URI = "file:chatlog-controls?mode=memory&cache=shared"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS destinations(scope TEXT PRIMARY KEY, masked TEXT NOT NULL, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chats(chat_key TEXT NOT NULL, scope TEXT NOT NULL, PRIMARY KEY(chat_key, scope));
CREATE TABLE IF NOT EXISTS mutes(scope TEXT NOT NULL, group_id TEXT NOT NULL, until REAL NOT NULL,
    by TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY(scope, group_id));
CREATE TABLE IF NOT EXISTS acks(scope TEXT NOT NULL, group_id TEXT NOT NULL, by TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY(scope, group_id));
CREATE TABLE IF NOT EXISTS groups(scope TEXT NOT NULL, group_id TEXT NOT NULL, level TEXT NOT NULL,
    title TEXT NOT NULL, count INTEGER NOT NULL, last_seen REAL NOT NULL, last_sent REAL NOT NULL,
    PRIMARY KEY(scope, group_id));
CREATE TABLE IF NOT EXISTS cards(card_key TEXT PRIMARY KEY, scope TEXT NOT NULL, card TEXT NOT NULL,
    at REAL NOT NULL);
"""
CARD_KEEP_S = 7 * 86400.0
"""How long a sent card can still be updated in place when one of its buttons is pressed."""
_EXAMPLE = "state='memory', state=None (the default file) or state='sqlite:///var/run/chatlog/controls.db'"
_memory_anchor: sqlite3.Connection | None = None
_anchor_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Mute:
    """A group (or ``*``: all) kept quiet until `until` (Unix seconds), and who asked."""

    group_id: str
    until: float
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class Ack:
    """A group someone acknowledged: no full repeats until it changes."""

    group_id: str
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class Shown:
    """One group as a destination last showed it (for ``status``)."""

    scope: str
    group_id: str
    level: str
    title: str
    count: int
    last_seen: float
    last_sent: float


@dataclass(frozen=True, slots=True)
class Controls:
    """What one destination must honour now."""

    mutes: dict[str, Mute]
    acks: dict[str, Ack]

    def muted(self, group_id: str) -> Mute | None:
        """The mute covering `group_id` (its own, else ``all``), or None."""
        return self.mutes.get(group_id) or self.mutes.get(ALL)


def default_path() -> Path:
    """``$XDG_RUNTIME_DIR/chatlog/controls.db``, else ``<tempdir>/chatlog-<uid>/controls.db``."""
    return runtime_dir() / "controls.db"


def path_of(state: str | None) -> Path | None:
    """The database file `state` names; None for ``"memory"``. ValueError with an example otherwise."""
    if state is None:
        return default_path()
    if state == "memory":
        return None
    if isinstance(state, str) and state.startswith("sqlite:///") and len(state) > len("sqlite:///"):
        return Path(state[len("sqlite://"):])
    raise ValueError(f"state must be {_EXAMPLE}; got {state!r}")


class ControlStore:
    """Mutes, acks and shown groups in SQLite; thread-safe, reopened after a fork.

    Every method is one short transaction; none raises for a locked or vanished file except
    `sqlite3.Error`, which callers on chatlog's threads catch and report.
    """

    def __init__(self, state: str | None = "memory") -> None:
        """`state` as `path_of` reads it; the file and its folder are created owner-only."""
        self.path = path_of(state)
        self._lock = threading.Lock()
        self._pid = -1
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"ControlStore({'memory' if self.path is None else str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            self._db = _connect(self.path)
            self._pid = os.getpid()
        return self._db

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            db = self._connection()
            with db:
                return db.execute(sql, tuple(params)).fetchall()

    def _change(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        """Run `sql` once per row in one transaction; returns the rows changed."""
        if not rows:
            return 0
        with self._lock:
            db = self._connection()
            with db:
                return db.executemany(sql, [tuple(row) for row in rows]).rowcount

    def register(self, scope: str, masked: str, chat_keys: Iterable[str], now: float) -> None:
        """A destination says it exists and which chats its messages land in."""
        self._change("INSERT OR REPLACE INTO destinations VALUES (?, ?, ?)", [(scope, masked, now)])
        self._change("INSERT OR IGNORE INTO chats VALUES (?, ?)", [(key, scope) for key in chat_keys])

    def scopes_for(self, chat_keys: Iterable[str]) -> list[str]:
        """The destinations whose messages land in any of `chat_keys`."""
        keys = list(chat_keys)
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        sql = f"SELECT DISTINCT scope FROM chats WHERE chat_key IN ({marks}) ORDER BY scope"
        rows = self._query(sql, keys)
        return [str(row[0]) for row in rows]

    def all_scopes(self) -> list[str]:
        """Every destination that ever registered."""
        return [str(row[0]) for row in self._query("SELECT scope FROM destinations ORDER BY scope")]

    def mute(self, scopes: Iterable[str], group_id: str, until: float, by: str, now: float) -> None:
        """Mute `group_id` (or ``*``) in every scope until `until`."""
        self._change("INSERT OR REPLACE INTO mutes VALUES (?, ?, ?, ?, ?)",
                     [(scope, group_id, until, by, now) for scope in scopes])

    def unmute(self, scopes: Iterable[str], group_id: str) -> int:
        """End the mutes of `group_id` (``*``: every mute) in the scopes; returns how many ended."""
        if group_id == ALL:
            return self._change("DELETE FROM mutes WHERE scope = ?", [(scope,) for scope in scopes])
        return self._change("DELETE FROM mutes WHERE scope = ? AND group_id = ?",
                            [(scope, group_id) for scope in scopes])

    def ack(self, scopes: Iterable[str], group_id: str, by: str, now: float) -> None:
        """Acknowledge `group_id` in every scope."""
        self._change("INSERT OR REPLACE INTO acks VALUES (?, ?, ?, ?)",
                     [(scope, group_id, by, now) for scope in scopes])

    def controls(self, scope: str, now: float) -> Controls:
        """The mutes in force and the acks of one destination (an expired mute is simply not read)."""
        mutes = self._query("SELECT group_id, until, by, at FROM mutes WHERE scope = ? AND until > ?",
                            (scope, now))
        acks = self._query("SELECT group_id, by, at FROM acks WHERE scope = ?", (scope,))
        return Controls(
            {str(g): Mute(str(g), float(str(u)), str(b), float(str(a))) for g, u, b, a in mutes},
            {str(g): Ack(str(g), str(b), float(str(a))) for g, b, a in acks},
        )

    def publish(self, shown: Iterable[Shown]) -> None:
        """Record what a destination just showed (one row per group, replaced)."""
        rows = [(s.scope, s.group_id, s.level, s.title, s.count, s.last_seen, s.last_sent) for s in shown]
        self._change("INSERT OR REPLACE INTO groups VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def shown(self, scopes: Iterable[str], since: float) -> list[Shown]:
        """Groups of the scopes seen at or after `since`, most recent first."""
        found: list[Shown] = []
        for scope in scopes:
            rows = self._query("SELECT * FROM groups WHERE scope = ? AND last_seen >= ? "
                               "ORDER BY last_seen DESC", (scope, since))
            found += [Shown(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(str(r[4])), float(str(r[5])),
                            float(str(r[6]))) for r in rows]
        return found

    def keep_card(self, card_key: str, scope: str, card: str, now: float) -> None:
        """Remember a card a destination sent (its JSON), forgetting those older than `CARD_KEEP_S`."""
        self._change("DELETE FROM cards WHERE at < ?", [(now - CARD_KEEP_S,)])
        self._change("INSERT OR REPLACE INTO cards VALUES (?, ?, ?, ?)", [(card_key, scope, card, now)])

    def card(self, card_key: str) -> tuple[str, str] | None:
        """The scope and JSON of the card kept under `card_key`, or None."""
        rows = self._query("SELECT scope, card FROM cards WHERE card_key = ?", (card_key,))
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def close(self) -> None:
        """Close this process's connection (the data stays)."""
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None


def _connect(path: Path | None) -> sqlite3.Connection:
    if path is None:
        _anchor_memory()
        db = sqlite3.connect(MEMORY_URI, uri=True, check_same_thread=False, timeout=2.0)
    else:
        prepare_file(path)
        db = sqlite3.connect(str(path), check_same_thread=False, timeout=2.0)
        db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA)
    return db


def _anchor_memory() -> None:
    # A shared in-memory database lives only while a connection is open: keep one for the process.
    global _memory_anchor
    with _anchor_lock:
        if _memory_anchor is None:
            _memory_anchor = sqlite3.connect(MEMORY_URI, uri=True, check_same_thread=False)
