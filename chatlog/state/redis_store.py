"""`RedisStore`: the fleet store on Redis (``state="redis://…"``, ``rediss://…``, ``unix://…``): many hosts.

Each method that reads and writes is one Lua script (`chatlog.state.redis_lua`): atomic on the server, one
round trip, no lock held across the network. redis-py is imported when a Redis store is made (never for
``memory`` or SQLite). Every call waits at most `SOCKET_TIMEOUT_S`; a Redis that is down, slow or
refuses raises `StoreError` (its text masked), which the dispatcher answers by sending alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from chatlog.state import redis_lua, store
from chatlog.state.redis_url import RedisURL, connect, parse, scrubbed
from chatlog.state.store import HandOver, Member, PendingGroup, Status

if TYPE_CHECKING:
    import redis

SCOPES_KEY = "chatlog:scopes"
"""Sorted set, scope → last described: what ``chatlog status`` lists (outside any scope's slot)."""
_FORGET_MS = int(store.FORGET_AFTER_S * 1000)


def prefix(scope: str) -> str:
    """``chatlog:{<scope>}:``, the start of every key of `scope` (one Redis Cluster slot per scope)."""
    return f"chatlog:{{{scope}}}:"


class RedisStore:
    """Every scope in one Redis database; thread-safe (a connection pool), and fork-safe (redis-py opens new
    connections in a child)."""

    def __init__(self, state: store.StateURL | str) -> None:
        """`state` as `chatlog.state.store.parse_state` reads it (or the URL itself). ValueError for a bad
        URL, ImportError naming the extra to install when redis-py is missing; nothing is connected yet."""
        self._url: RedisURL = parse(state.url if isinstance(state, store.StateURL) else state)
        self.masked = self._url.masked
        self._client: redis.Redis = connect(self._url)
        import redis

        self._failures: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._scripts = {name: self._client.register_script(getattr(redis_lua, name))
                         for name in ("HAND_OVER", "LEASE", "RELEASE", "PENDING", "SETTLE", "TAKE_BUDGET",
                                      "STATUS")}

    def __repr__(self) -> str:
        return f"RedisStore({self.masked!r})"

    def _run(self, script: str, scope: str, args: Sequence[object]) -> Any:
        try:
            return self._scripts[script](keys=[prefix(scope)], args=[_wire(a) for a in args])
        except self._failures as exc:
            raise self._error(exc) from None

    def _error(self, exc: BaseException) -> store.StoreError:
        detail = scrubbed(f"{type(exc).__name__}: {exc}", self._url)
        return store.StoreError(f"Redis at {self.masked}: {detail}")

    def describe(self, scope: str, masked: str, now: float) -> None:
        """See `Store.describe`."""
        try:  # one round trip, not one transaction: the scope list lives outside the scope's slot
            with self._client.pipeline(transaction=False) as pipe:
                pipe.hset(prefix(scope) + "info", "masked", _wire(masked))
                pipe.pexpire(prefix(scope) + "info", _FORGET_MS)
                pipe.zadd(SCOPES_KEY, {scope: now})
                pipe.zremrangebyscore(SCOPES_KEY, "-inf", f"({now - store.FORGET_AFTER_S!r}")
                pipe.pexpire(SCOPES_KEY, _FORGET_MS)
                pipe.execute()
        except self._failures as exc:
            raise self._error(exc) from None

    def hand_over(self, scope: str, member: Member, deltas: Sequence[store.Delta], now: float) -> HandOver:
        """See `Store.hand_over`."""
        args: list[object] = [member.id, repr(now), os.urandom(8).hex(), _FORGET_MS,
                              repr(now - store.MEMBER_LIVE_S), member.pid, member.host, len(deltas),
                              repr(store.BUDGET_SPAN_S)]
        for d in deltas:
            args += [d.fingerprint, d.count, repr(d.first_seen), repr(d.last_seen), d.level,
                     0 if d.sample is None else 1, d.sample or ""]
        epoch, outstanding, delivered, dropped, muted, live, leader, pending, used = self._run(
            "HAND_OVER", scope, args)
        return HandOver(_text(epoch), _counts(outstanding), int(delivered), int(dropped), int(muted),
                        int(live), _text(leader) or None, int(pending), int(used))

    def lease(self, scope: str, member_id: str, ttl: float, now: float) -> bool:
        """See `Store.lease`."""
        return bool(self._run("LEASE", scope, [member_id, repr(now), repr(now + ttl), _FORGET_MS]))

    def release(self, scope: str, member_id: str) -> None:
        """See `Store.release`."""
        self._run("RELEASE", scope, [member_id])

    def pending(self, scope: str) -> list[PendingGroup]:
        """See `Store.pending`."""
        groups = [_group(_text(fp), dict(_pairs(fields))) for fp, fields in self._run("PENDING", scope, [])]
        live = [g for g in groups if g.count > 0]
        return sorted(live, key=lambda g: (-g.level, -g.count, g.first_seen))

    def settle(self, scope: str, member_id: str, sent: store.Sent, now: float, *, delivered: bool,
               shown: Collection[str], muted: bool = False) -> bool:
        """See `Store.settle`."""
        credit = "d" if delivered else "m" if muted else "x"
        args: list[object] = [repr(now), credit, _FORGET_MS, len(sent), member_id]
        for fp, counts in sent.items():
            args += [fp, len(counts)]
            for member_id, n in counts.items():
                args += [member_id, int(n)]
        args += list(shown)
        return bool(self._run("SETTLE", scope, args))

    def take_budget(self, scope: str, limits: Sequence[tuple[int, float]], now: float, count: int = 1,
                    *, force: bool = False) -> float:
        """See `Store.take_budget`."""
        args: list[object] = [repr(now), count, int(force), repr(store.BUDGET_SPAN_S), _FORGET_MS]
        for limit, window in limits:
            args += [limit, repr(window)]
        return float(self._run("TAKE_BUDGET", scope, args))

    def count_sent(self, scope: str, period_key: str, n: int = 1) -> int:
        """See `Store.count_sent`."""
        key = prefix(scope) + "quota"
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, period_key, n)
                pipe.pexpire(key, _FORGET_MS)
                value, _ = pipe.execute()
        except self._failures as exc:
            raise self._error(exc) from None
        return int(value)

    def note_error(self, scope: str, error: str, now: float) -> None:
        """See `Store.note_error`."""
        key = prefix(scope) + "info"
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"last_error": _wire(error), "last_error_at": repr(now)})
                pipe.pexpire(key, _FORGET_MS)
                pipe.execute()
        except self._failures as exc:
            raise self._error(exc) from None

    def status(self, scope: str, now: float) -> Status:
        """See `Store.status`."""
        args = [repr(now), repr(now - store.MEMBER_LIVE_S), repr(now - store.BUDGET_SPAN_S)]
        members, who, lease, groups, records, info, used = self._run("STATUS", scope, args)
        live = tuple(Member(_text(member_id), _text(host), int(_text(pid)), float(_text(seen)))
                     for (member_id, seen), (pid, host) in zip(_pairs(members), who, strict=True))
        holder, until = _text(lease[0]), _text(lease[1])
        masked, last_send, last_error, error_at = (_text(v) for v in info)
        return Status(scope, masked, live, holder or None, float(until) if until else None, int(groups),
                      int(records), int(used), float(last_send) if last_send else None, last_error,
                      float(error_at) if error_at else None)

    def scopes(self) -> list[str]:
        """See `Store.scopes`."""
        try:
            found = self._client.zrange(SCOPES_KEY, 0, -1)
        except self._failures as exc:
            raise self._error(exc) from None
        return sorted(_text(s) for s in found)

    def close(self) -> None:
        """Close this process's connections (the data stays in Redis)."""
        with contextlib.suppress(*self._failures):
            self._client.close()


def _wire(value: object) -> bytes:
    """`value` as Redis stores it: UTF-8, with what UTF-8 cannot hold (a lone surrogate from a log line
    decoded with ``surrogateescape``) spelled ``\\udce2`` instead of failing the call."""
    return str(value).encode("utf-8", "backslashreplace")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _pairs(flat: Sequence[object]) -> list[tuple[object, object]]:
    """``[k1, v1, k2, v2]`` (a Redis HGETALL / WITHSCORES reply) as pairs."""
    return list(zip(flat[::2], flat[1::2], strict=True))


def _counts(flat: Sequence[object]) -> dict[str, int]:
    """A hash of counts (field → integer), without the ones at zero."""
    counts = {_text(k): int(_text(v)) for k, v in _pairs(flat)}
    return {k: n for k, n in counts.items() if n > 0}


def _group(fingerprint: str, fields: dict[object, object]) -> PendingGroup:
    values = {_text(k): _text(v) for k, v in fields.items()}
    counts = {k[2:]: int(v) for k, v in values.items() if k.startswith("m:") and int(v) > 0}
    shown = values.get("shown")
    return PendingGroup(fingerprint, int(values.get("level", "0")), float(values.get("first", "0")),
                        float(values.get("last", "0")), int(values.get("total", "0")),
                        values.get("sample", ""), counts, float(shown) if shown else None)
