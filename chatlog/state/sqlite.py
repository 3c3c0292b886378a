"""`SQLiteStore`: the fleet store of one host, the default (``state=None`` or ``sqlite:///path``).

One WAL database shared by every process on the host; every method is one ``BEGIN IMMEDIATE``
transaction with a short busy timeout, so a store locked by another program costs a round a second,
then a `StoreError` (the process sends alone meanwhile). Before each transaction the
file is checked to still be the one the connection opened: a deleted (or replaced) file is created
again, with a new epoch, instead of writing on into a file no one else sees.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TypeVar

from chatlog._report import write_stderr
from chatlog.state import store
from chatlog.state.memory import MemoryStore, budget_wait
from chatlog.state.store import HandOver, Member, PendingGroup, Status, Store

BUSY_TIMEOUT_S = 1.0
"""How long a write waits for another writer: transactions take well under a millisecond, so only a
lock held by another program (or a descheduled process on a loaded host) waits this long."""
_T = TypeVar("_T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scopes(scope TEXT PRIMARY KEY, masked TEXT NOT NULL DEFAULT '', leader TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    last_send REAL, last_error TEXT NOT NULL DEFAULT '', last_error_at REAL);
CREATE TABLE IF NOT EXISTS members(scope TEXT, member TEXT, host TEXT NOT NULL, pid INTEGER NOT NULL,
    seen REAL NOT NULL, PRIMARY KEY(scope, member));
CREATE TABLE IF NOT EXISTS credits(scope TEXT, member TEXT, delivered INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0, muted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(scope, member));
CREATE TABLE IF NOT EXISTS groups(scope TEXT, fp TEXT, level INTEGER NOT NULL, first_seen REAL NOT NULL,
    last_seen REAL NOT NULL, total INTEGER NOT NULL, sample TEXT NOT NULL, shown_at REAL,
    PRIMARY KEY(scope, fp));
CREATE TABLE IF NOT EXISTS counts(scope TEXT, fp TEXT, member TEXT, n INTEGER NOT NULL,
    PRIMARY KEY(scope, fp, member));
CREATE TABLE IF NOT EXISTS sends(scope TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sends_at ON sends(scope, at);
CREATE TABLE IF NOT EXISTS quota(scope TEXT, period TEXT, n INTEGER NOT NULL, PRIMARY KEY(scope, period));
"""
_MERGE_GROUP = """
INSERT INTO groups VALUES (?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT(scope, fp) DO UPDATE SET
    first_seen = CASE WHEN ? THEN MIN(first_seen, excluded.first_seen) ELSE excluded.first_seen END,
    last_seen = MAX(last_seen, excluded.last_seen), level = MAX(level, excluded.level),
    total = total + excluded.total, sample = CASE WHEN sample = '' THEN excluded.sample ELSE sample END
"""
_ADD_COUNT = ("INSERT INTO counts VALUES (?, ?, ?, ?) ON CONFLICT(scope, fp, member) "
              "DO UPDATE SET n = n + excluded.n")


def default_path() -> Path:
    """``<runtime dir>/fleet.db`` (`store.runtime_dir`)."""
    return store.runtime_dir() / "fleet.db"


def prepare_file(path: Path) -> None:
    """Create the folder (0700) and the file (0600) before SQLite does, so nobody else can read them."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)


def open_sqlite(parsed: store.StateURL, *, warn: bool = True) -> Store:
    """The SQLite store `parsed` names (the default file for an empty path); memory, with one line on
    stderr, when the file cannot be created. (A file that exists but fails — locked, not a database —
    is a store that fails: each round tries again.)"""
    path = Path(parsed.path) if parsed.path else default_path()
    try:
        return SQLiteStore(path)
    except OSError as exc:
        if warn:
            write_stderr(f"chatlog: cannot use the state file {path} ({exc}); each process alerts on its "
                         "own (state='memory'): set state='sqlite:///a/writable/file.db'")
        return MemoryStore()


class SQLiteStore:
    """The `Store` protocol on one SQLite file; thread-safe, reopened after a fork or a deleted file."""

    def __init__(self, path: Path) -> None:
        """Creates `path` and its folder owner-only (OSError when it cannot)."""
        self.path = path
        self.masked = f"sqlite://{path}"
        prepare_file(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._opened: tuple[int, int, int] = (-1, -1, -1)
        """(pid, st_dev, st_ino) of the connection: another process, or another file, reconnects."""

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        try:
            stat = os.stat(self.path)
            current = (os.getpid(), stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            current = (os.getpid(), -1, -1)
        if self._db is None or current != self._opened:
            if self._db is not None and self._opened[0] == os.getpid():
                self._db.close()
            self._db = None
            prepare_file(self.path)
            db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                 check_same_thread=False)
            try:
                _set_up(db)
            except BaseException:
                db.close()
                raise
            stat = os.stat(self.path)
            self._db, self._opened = db, (os.getpid(), stat.st_dev, stat.st_ino)
        return self._db

    def _tx(self, work: Callable[[sqlite3.Connection], _T], *, write: bool = True) -> _T:
        """Run `work` in one transaction: ``BEGIN IMMEDIATE`` to write (writers queue for the busy
        timeout), a plain ``BEGIN`` to read (in WAL mode a reader never waits for a writer)."""
        with self._lock:
            try:
                db = self._connection()
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = work(db)
                    db.execute("COMMIT")
                    return result
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise store.StoreError(f"{self.masked}: {type(exc).__name__}: {exc}") from None

    def describe(self, scope: str, masked: str, now: float) -> None:
        """See `Store.describe`."""
        self._tx(lambda db: db.execute("INSERT INTO scopes(scope, masked) VALUES (?, ?) ON CONFLICT(scope) "
                                       "DO UPDATE SET masked = excluded.masked", (scope, masked)))

    def hand_over(self, scope: str, member: Member, deltas: Sequence[store.Delta], now: float) -> HandOver:
        """See `Store.hand_over`."""
        return self._tx(lambda db: _hand_over(db, scope, member, deltas, now))

    def lease(self, scope: str, member_id: str, ttl: float, now: float) -> bool:
        """See `Store.lease`."""
        def work(db: sqlite3.Connection) -> bool:
            db.execute("INSERT OR IGNORE INTO scopes(scope) VALUES (?)", (scope,))
            changed = db.execute("UPDATE scopes SET leader = ?, lease_until = ? WHERE scope = ? AND "
                                 "(leader IS NULL OR leader = ? OR lease_until <= ?)",
                                 (member_id, now + ttl, scope, member_id, now)).rowcount
            return changed == 1
        return self._tx(work)

    def release(self, scope: str, member_id: str) -> None:
        """See `Store.release`."""
        def work(db: sqlite3.Connection) -> None:
            db.execute("UPDATE scopes SET leader = NULL, lease_until = 0 WHERE scope = ? AND leader = ?",
                       (scope, member_id))
            db.execute("DELETE FROM members WHERE scope = ? AND member = ?", (scope, member_id))
        self._tx(work)

    def pending(self, scope: str) -> list[PendingGroup]:
        """See `Store.pending`."""
        def work(db: sqlite3.Connection) -> list[PendingGroup]:
            counts: dict[str, dict[str, int]] = {}
            for fp, member, n in db.execute("SELECT fp, member, n FROM counts WHERE scope = ? AND n > 0",
                                            (scope,)):
                counts.setdefault(fp, {})[member] = n
            rows = db.execute("SELECT fp, level, first_seen, last_seen, total, sample, shown_at FROM groups "
                              "WHERE scope = ?", (scope,)).fetchall()
            return [PendingGroup(fp, level, first, last, total, sample, counts[fp], shown)
                    for fp, level, first, last, total, sample, shown in rows if fp in counts]
        groups = self._tx(work, write=False)
        return sorted(groups, key=lambda g: (-g.level, -g.count, g.first_seen))

    def settle(self, scope: str, member_id: str, sent: store.Sent, now: float, *, delivered: bool,
               shown: Collection[str], muted: bool = False) -> bool:
        """See `Store.settle`."""
        column = "delivered" if delivered else "muted" if muted else "dropped"
        return self._tx(lambda db: _settle(db, scope, member_id, sent, now, column, shown))

    def take_budget(self, scope: str, limits: Sequence[tuple[int, float]], now: float, count: int = 1,
                    *, force: bool = False) -> float:
        """See `Store.take_budget`."""
        def work(db: sqlite3.Connection) -> float:
            db.execute("DELETE FROM sends WHERE scope = ? AND (at <= ? OR at > ?)",
                       (scope, now - store.BUDGET_SPAN_S, now + store.BUDGET_SPAN_S))
            sends = [at for (at,) in db.execute("SELECT at FROM sends WHERE scope = ?", (scope,))]
            wait = 0.0 if force else budget_wait(sends, limits, now, count)
            if wait == 0.0:
                db.executemany("INSERT INTO sends VALUES (?, ?)", [(scope, now)] * count)
            return wait
        return self._tx(work)

    def count_sent(self, scope: str, period_key: str, n: int = 1) -> int:
        """See `Store.count_sent`."""
        def work(db: sqlite3.Connection) -> int:
            db.execute("INSERT INTO quota VALUES (?, ?, ?) ON CONFLICT(scope, period) DO UPDATE SET "
                       "n = n + excluded.n", (scope, period_key, n))
            return int(db.execute("SELECT n FROM quota WHERE scope = ? AND period = ?",
                                  (scope, period_key)).fetchone()[0])
        return self._tx(work)

    def note_error(self, scope: str, error: str, now: float) -> None:
        """See `Store.note_error`."""
        self._tx(lambda db: db.execute(
            "INSERT INTO scopes(scope, last_error, last_error_at) VALUES (?, ?, ?) ON CONFLICT(scope) DO "
            "UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at",
            (scope, error, now)))

    def status(self, scope: str, now: float) -> Status:
        """See `Store.status`."""
        return self._tx(lambda db: _status(db, scope, now), write=False)

    def scopes(self) -> list[str]:
        """See `Store.scopes`."""
        return self._tx(lambda db: [s for (s,) in db.execute("SELECT scope FROM scopes ORDER BY scope")],
                        write=False)

    def close(self) -> None:
        """Close this process's connection (the data stays)."""
        with self._lock:
            if self._db is not None and self._opened[0] == os.getpid():
                self._db.close()
            self._db = None


def _set_up(db: sqlite3.Connection) -> None:
    """WAL, and the tables with the epoch in one transaction — only where they are missing: many
    processes opening the file at once then write nothing, and wait for no lock. A file of an older
    chatlog gains the credits' ``muted`` column (its data, and its processes, keep working)."""
    if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        db.execute("PRAGMA journal_mode=WAL")
    if _has_muted_credits(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        if not _has_muted_credits(db):
            db.execute("ALTER TABLE credits ADD COLUMN muted INTEGER NOT NULL DEFAULT 0")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (os.urandom(8).hex(),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _has_muted_credits(db: sqlite3.Connection) -> bool:
    return any(row[1] == "muted" for row in db.execute("PRAGMA table_info(credits)"))


def _one(db: sqlite3.Connection, sql: str, params: Sequence[object]) -> int:
    return int(db.execute(sql, tuple(params)).fetchone()[0] or 0)


def _budget_used(db: sqlite3.Connection, scope: str, now: float) -> int:
    return _one(db, "SELECT COUNT(*) FROM sends WHERE scope = ? AND at > ? AND at <= ?",
                (scope, now - store.BUDGET_SPAN_S, now))


def _hand_over(db: sqlite3.Connection, scope: str, member: Member, deltas: Sequence[store.Delta],
               now: float) -> HandOver:
    db.execute("INSERT OR IGNORE INTO scopes(scope) VALUES (?)", (scope,))
    db.execute("INSERT OR REPLACE INTO members VALUES (?, ?, ?, ?, ?)", (scope, member.id, member.host,
                                                                        member.pid, now))
    for d in deltas:
        had = _one(db, "SELECT COALESCE(SUM(n), 0) FROM counts WHERE scope = ? AND fp = ?",
                   (scope, d.fingerprint))
        db.execute(_MERGE_GROUP, (scope, d.fingerprint, d.level, d.first_seen, d.last_seen, d.count,
                                  d.sample or "", had > 0))
        db.execute(_ADD_COUNT, (scope, d.fingerprint, member.id, d.count))
    outstanding = dict(db.execute("SELECT fp, n FROM counts WHERE scope = ? AND member = ? AND n > 0",
                                  (scope, member.id)).fetchall())
    credit = db.execute("SELECT delivered, dropped, muted FROM credits WHERE scope = ? AND member = ?",
                        (scope, member.id)).fetchone() or (0, 0, 0)
    live = _one(db, "SELECT COUNT(*) FROM members WHERE scope = ? AND seen > ?",
                (scope, now - store.MEMBER_LIVE_S))
    leader, until = db.execute("SELECT leader, lease_until FROM scopes WHERE scope = ?", (scope,)).fetchone()
    pending = _one(db, "SELECT COALESCE(SUM(n), 0) FROM counts WHERE scope = ?", (scope,))
    epoch = str(db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])
    used = _budget_used(db, scope, now)
    return HandOver(epoch, outstanding, int(credit[0]), int(credit[1]), int(credit[2]), live,
                    leader if leader is not None and until > now else None, pending, used)


def _settle(db: sqlite3.Connection, scope: str, member_id: str, sent: store.Sent, now: float, column: str,
            shown: Collection[str]) -> bool:
    """`column`: the credit, ``delivered``, ``dropped`` or ``muted``."""
    other = db.execute("SELECT 1 FROM scopes WHERE scope = ? AND leader IS NOT NULL AND leader != ? AND "
                       "lease_until > ?", (scope, member_id, now)).fetchone()
    if other:
        return False
    for fp, counts in sent.items():
        for member_id, n in counts.items():
            row = db.execute("SELECT n FROM counts WHERE scope = ? AND fp = ? AND member = ?",
                             (scope, fp, member_id)).fetchone()
            taken = min(n, row[0]) if row else 0
            if taken <= 0:
                continue
            db.execute("UPDATE counts SET n = n - ? WHERE scope = ? AND fp = ? AND member = ?",
                       (taken, scope, fp, member_id))
            db.execute(f"INSERT INTO credits(scope, member, {column}) VALUES (?, ?, ?) "
                       f"ON CONFLICT(scope, member) DO UPDATE SET {column} = {column} + excluded.{column}",
                       (scope, member_id, taken))
    db.execute("DELETE FROM counts WHERE scope = ? AND n <= 0", (scope,))
    if column == "delivered":
        db.executemany("UPDATE groups SET shown_at = ? WHERE scope = ? AND fp = ?",
                       [(now, scope, fp) for fp in shown])
        db.execute("UPDATE scopes SET last_send = ? WHERE scope = ?", (now, scope))
    forget = now - store.FORGET_AFTER_S
    db.execute("DELETE FROM groups WHERE scope = ? AND last_seen < ? AND fp NOT IN "
               "(SELECT fp FROM counts WHERE scope = ?)", (scope, forget, scope))
    db.execute("DELETE FROM members WHERE scope = ? AND seen < ?", (scope, forget))
    return True


def _status(db: sqlite3.Connection, scope: str, now: float) -> Status:
    row = db.execute("SELECT masked, leader, lease_until, last_send, last_error, last_error_at FROM scopes "
                     "WHERE scope = ?", (scope,)).fetchone() or ("", None, 0.0, None, "", None)
    masked, leader, until, last_send, last_error, last_error_at = row
    held = leader is not None and until > now
    members = tuple(Member(m, h, p, s) for m, h, p, s in db.execute(
        "SELECT member, host, pid, seen FROM members WHERE scope = ? AND seen > ? ORDER BY seen DESC",
        (scope, now - store.MEMBER_LIVE_S)))
    groups, records = db.execute("SELECT COUNT(DISTINCT fp), COALESCE(SUM(n), 0) FROM counts WHERE scope = ? "
                                 "AND n > 0", (scope,)).fetchone()
    used = _budget_used(db, scope, now)
    return Status(scope, masked, members, leader if held else None, until if held else None, int(groups),
                  int(records), used, last_send, last_error, last_error_at)
