"""``chatlog status``: what a fleet store holds, per destination, as lines for a terminal.

Reads only (`Store.status` per scope); the store's location is shown masked, and nothing in a `Status`
holds a credential (scopes are hashes, destinations are stored masked).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

from chatlog.state.store import BUDGET_SPAN_S, Status, Store

MAX_HOSTS_SHOWN = 8


def status_lines(store: Store, now: float | None = None) -> Iterator[str]:
    """Every scope of `store`, one block each; raises `StoreError` when the store cannot be read."""
    now = time.time() if now is None else now
    scopes = store.scopes()
    if not scopes:
        yield f"{store.masked}: no destination has used this store yet"
        return
    yield f"{store.masked}: {len(scopes)} destination{'s' if len(scopes) != 1 else ''}"
    for scope in scopes:
        yield ""
        yield from scope_lines(store.status(scope, now), now)


def scope_lines(status: Status, now: float) -> Iterator[str]:
    """One destination: members, leader, pending work, budget, last send and last error."""
    yield f"{status.masked or '(destination not described yet)'}  [scope {status.scope}]"
    yield f"  members     {_members(status)}"
    yield f"  leader      {_leader(status, now)}"
    yield f"  pending     {status.pending_groups} group{_s(status.pending_groups)}, " \
          f"{status.pending_records:,} record{_s(status.pending_records)}"
    yield f"  budget      {status.budget_used} send{_s(status.budget_used)} in the last {BUDGET_SPAN_S:g} s"
    yield f"  last send   {_when(status.last_send, now)}"
    error = f"{status.last_error}, {_when(status.last_error_at, now)}" if status.last_error else "none"
    yield f"  last error  {error}"


def _members(status: Status) -> str:
    if not status.members:
        return "none live"
    if len(status.members) == 1:
        (only,) = status.members
        return f"1 live: {only.host} pid {only.pid}"
    per_host = Counter(m.host for m in status.members)
    shown = ", ".join(f"{host} ×{n}" for host, n in per_host.most_common(MAX_HOSTS_SHOWN))
    more = len(per_host) - MAX_HOSTS_SHOWN
    return (f"{len(status.members)} live on {len(per_host)} host{_s(len(per_host))}: {shown}"
            + (f" and {more} more" if more > 0 else ""))


def _leader(status: Status, now: float) -> str:
    if status.leader is None:
        return "none (the next process to send takes the lease)"
    left = "" if status.lease_until is None else f", lease {max(0.0, status.lease_until - now):.0f} s left"
    return f"{status.leader}{left}"


def _when(at: float | None, now: float) -> str:
    if at is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    return f"{stamp} ({_ago(now - at)})"


def _ago(seconds: float) -> str:
    if seconds < 0:
        return "in the future: clocks differ"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _s(n: int) -> str:
    return "" if n == 1 else "s"
