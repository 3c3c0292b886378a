"""The fleet store under real concurrency: several OS processes on one SQLite file or one real Redis (and,
for ``memory``, several threads of one process) hit the same scope at once. The same assertions for
every store: the budget is never exceeded in any window, two members never hold the lease at once, and
every record handed over is settled exactly once to the member that handed it over. A call that raises
`StoreError` (SQLite busy past its timeout under this load) changed nothing and is counted as such.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatlog.state.store import Delta, Member, Store, StoreError, open_store

SCOPE = "c" * 24
WORKERS = 4
LIMIT, WINDOW_S = 5, 0.5
TRIES = 150
LEASE_TTL_S = 0.05
HAND_OVERS = 60
BUDGET_STORES = ["memory", "sqlite", "redis"]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the workers meet: one process's memory (threads), a SQLite file, a real Redis."""
    urls = {"memory": "memory", "sqlite": f"sqlite:///{tmp_path}/fleet.db"}
    yield urls.get(request.param) or request.getfixturevalue("redis_server").url


@contextlib.contextmanager
def meeting(url: str) -> Iterator[tuple[Store, Callable[[Callable[[Store, int], Any]], list[Any]]]]:
    """This process's view of the store, and `run(work)`: `work(store, index)` in `WORKERS` forked
    processes, each with a store of its own (for ``memory``: threads sharing the view); their results in
    index order."""
    view = open_store(url)

    def run(work: Callable[[Store, int], Any]) -> list[Any]:
        if url != "memory":
            view.close()  # no open connection crosses the fork (SQLite forbids it); reopened on next use
            with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
                return pool.starmap(_in_process, [(url, work, i) for i in range(WORKERS)], chunksize=1)
        results: list[Any] = [None] * WORKERS

        def one(index: int) -> None:
            results[index] = work(view, index)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return results

    try:
        yield view, run
    finally:
        view.close()


def _in_process(url: str, work: Callable[[Store, int], Any], index: int) -> Any:
    store = open_store(url)
    try:
        return work(store, index)
    finally:
        store.close()


def _take_budget(store: Store, index: int) -> list[float]:
    granted = []
    for _ in range(TRIES):
        now = time.time()
        with contextlib.suppress(StoreError):  # a failed call granted nothing (see _hand_over_and_settle)
            if store.take_budget(SCOPE, [(LIMIT, WINDOW_S)], now) == 0.0:
                granted.append(now)
        time.sleep(0.002)
    return granted


def most_in_window(times: list[float], window_s: float) -> int:
    """Most of `times` within any window ``(t - window_s, t]``."""
    ordered, best, first = sorted(times), 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - window_s:
            first += 1
        best = max(best, last - first + 1)
    return best


@pytest.mark.parametrize("store_url", BUDGET_STORES, indirect=True)
def test_the_budget_holds_when_every_process_takes_from_it_at_once(store_url: str) -> None:
    with meeting(store_url) as (_, run):
        granted = [t for times in run(_take_budget) for t in times]
    assert granted, "nobody was ever granted a send"
    assert most_in_window(granted, WINDOW_S) <= LIMIT


def _contend_for_the_lease(store: Store, index: int) -> list[tuple[float, float, int]]:
    held = []
    for _ in range(TRIES):
        now = time.time()
        with contextlib.suppress(StoreError):  # a failed call granted nothing
            if store.lease(SCOPE, f"host:{index}:x", LEASE_TTL_S, now):
                held.append((now, now + LEASE_TTL_S, index))
        time.sleep(0.003)
    return held


def test_two_members_never_hold_the_lease_at_once(store_url: str) -> None:
    with meeting(store_url) as (_, run):
        grants = sorted(g for held in run(_contend_for_the_lease) for g in held)
    assert grants
    for i, (at, _until, who) in enumerate(grants):
        overlapping = [g for g in grants[:i] if g[2] != who and g[1] > at]
        assert not overlapping, f"member {who} got the lease at {at} while {overlapping[-1]} held it"


def _hand_over_and_settle(store: Store, index: int) -> dict[str, int]:
    """Workers 1.. hand records over; worker 0 is the leader and settles what it reads, again and again.
    A call that fails (SQLite busy past its timeout on a loaded machine) changed nothing, as a skipped
    dispatcher round: it is not counted."""
    member = Member(f"host:{index}:m", "host", index)
    if index:
        handed = 0
        for i in range(HAND_OVERS):
            n = 1 + (i * 7 + index) % 5
            with contextlib.suppress(StoreError):
                store.hand_over(SCOPE, member, [Delta(f"g{i % 3}", n, 100.0 + i, 100.0 + i, 40, "s")],
                                time.time())
                handed += n
            time.sleep(0.002)
        return {member.id: handed}
    store.lease(SCOPE, member.id, 60.0, time.time())
    for _ in range(HAND_OVERS * 2):
        with contextlib.suppress(StoreError):
            sent = {g.fingerprint: g.counts for g in store.pending(SCOPE)}
            assert store.settle(SCOPE, member.id, sent, time.time(), delivered=True, shown=set(sent))
        time.sleep(0.001)
    return {}


def test_every_record_handed_over_concurrently_is_settled_once_to_its_member(store_url: str) -> None:
    with meeting(store_url) as (store, run):
        handed: dict[str, int] = {}
        for result in run(_hand_over_and_settle):
            handed.update(result)
        leader = "host:0:m"
        sent = {g.fingerprint: g.counts for g in store.pending(SCOPE)}
        assert store.settle(SCOPE, leader, sent, time.time(), delivered=True, shown=())
        for member_id, n in handed.items():
            index = int(member_id.split(":")[1])
            standing = store.hand_over(SCOPE, Member(member_id, "host", index), [], time.time())
            assert (standing.delivered, standing.dropped, standing.outstanding) == (n, 0, {})
        assert store.pending(SCOPE) == []
