"""The fleet store protocol (`chatlog.state.store`): every store passes the same semantic tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatlog.state.store import Delta, Member, Store, StoreError, mask_url, open_store, parse_state

SCOPE = "s" * 24
A = Member("web-1:100:aaaa", "web-1", 100)
B = Member("web-2:200:bbbb", "web-2", 200)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """One store of each kind; Redis is a real redis-server of the test's own (the `redis_server` fixture)."""
    urls = {"memory": "memory", "sqlite": f"sqlite:///{tmp_path}/fleet.db"}
    url = urls.get(request.param) or request.getfixturevalue("redis_server").url
    opened = open_store(url)
    yield opened
    opened.close()


def delta(fp: str, n: int, at: float = 100.0, level: int = 40, sample: str | None = "s") -> Delta:
    return Delta(fp, n, at, at, level, sample)


def test_hand_over_adds_up_per_member_and_answers_the_members_standing(store: Store) -> None:
    store.hand_over(SCOPE, A, [delta("g1", 3), delta("g2", 1, level=50)], 100.0)
    answer = store.hand_over(SCOPE, B, [delta("g1", 2, at=105.0, sample="later")], 105.0)
    assert answer.outstanding == {"g1": 2}
    assert (answer.live_members, answer.pending_records, answer.leader) == (2, 6, None)
    groups = {g.fingerprint: g for g in store.pending(SCOPE)}
    assert groups["g1"].counts == {A.id: 3, B.id: 2}
    assert (groups["g1"].first_seen, groups["g1"].last_seen, groups["g1"].sample) == (100.0, 105.0, "s")
    assert [g.fingerprint for g in store.pending(SCOPE)] == ["g2", "g1"]  # most severe first


def test_settle_subtracts_exactly_what_was_sent_and_credits_each_member(store: Store) -> None:
    store.hand_over(SCOPE, A, [delta("g1", 3)], 100.0)
    store.hand_over(SCOPE, B, [delta("g1", 2)], 100.0)
    sent = {g.fingerprint: g.counts for g in store.pending(SCOPE)}
    store.hand_over(SCOPE, A, [delta("g1", 4)], 101.0)  # arrives while the message is out
    assert store.settle(SCOPE, A.id, sent, 102.0, delivered=True, shown={"g1"})
    a = store.hand_over(SCOPE, A, [], 103.0)
    b = store.hand_over(SCOPE, B, [], 103.0)
    assert (a.outstanding, a.delivered, b.outstanding, b.delivered) == ({"g1": 4}, 3, {}, 2)
    (group,) = store.pending(SCOPE)
    assert (group.count, group.shown_at, group.total) == (4, 102.0, 9)


def test_refused_records_are_credited_as_dropped_and_not_shown(store: Store) -> None:
    store.hand_over(SCOPE, A, [delta("g1", 3)], 100.0)
    store.settle(SCOPE, A.id, {"g1": {A.id: 3}}, 101.0, delivered=False, shown={"g1"})
    answer = store.hand_over(SCOPE, A, [delta("g1", 1)], 102.0)
    assert (answer.dropped, answer.delivered, answer.outstanding) == (3, 0, {"g1": 1})
    assert store.pending(SCOPE)[0].shown_at is None


def test_muted_records_are_credited_as_muted_to_each_member_and_not_shown(store: Store) -> None:
    store.hand_over(SCOPE, A, [delta("g1", 3)], 100.0)
    store.hand_over(SCOPE, B, [delta("g1", 2)], 100.0)
    sent = {g.fingerprint: g.counts for g in store.pending(SCOPE)}
    assert store.settle(SCOPE, A.id, sent, 101.0, delivered=False, shown={"g1"}, muted=True)
    a = store.hand_over(SCOPE, A, [delta("g1", 1)], 102.0)
    b = store.hand_over(SCOPE, B, [], 102.0)
    assert (a.muted, a.dropped, a.delivered, a.outstanding) == (3, 0, 0, {"g1": 1})
    assert (b.muted, b.dropped, b.delivered, b.outstanding) == (2, 0, 0, {})
    assert store.pending(SCOPE)[0].shown_at is None and store.status(SCOPE, 102.0).last_send is None


def test_a_state_file_of_an_older_chatlog_gains_the_muted_credits_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                      "INSERT INTO meta VALUES ('epoch', 'e0');"
                      "CREATE TABLE credits(scope TEXT, member TEXT, delivered INTEGER NOT NULL DEFAULT 0,"
                      " dropped INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(scope, member));"
                      f"INSERT INTO credits VALUES ('{SCOPE}', '{A.id}', 7, 1);")
    old.close()
    store = open_store(f"sqlite:///{path}")
    store.hand_over(SCOPE, A, [delta("g1", 2)], 100.0)
    assert store.settle(SCOPE, A.id, {"g1": {A.id: 2}}, 101.0, delivered=False, shown=(), muted=True)
    answer = store.hand_over(SCOPE, A, [], 102.0)
    store.close()
    assert (answer.epoch, answer.delivered, answer.dropped, answer.muted) == ("e0", 7, 1, 2)


def test_settle_never_goes_below_zero_nor_applies_for_a_member_that_lost_the_lease(store: Store) -> None:
    store.hand_over(SCOPE, A, [delta("g1", 2)], 100.0)
    assert store.settle(SCOPE, A.id, {"g1": {A.id: 5}, "gone": {B.id: 1}}, 101.0, delivered=True, shown=())
    assert store.hand_over(SCOPE, A, [delta("g1", 3)], 102.0).delivered == 2
    assert store.lease(SCOPE, B.id, 10.0, 102.0)
    assert not store.settle(SCOPE, A.id, {"g1": {A.id: 3}}, 103.0, delivered=True, shown=())
    assert store.hand_over(SCOPE, A, [], 103.0).outstanding == {"g1": 3}


def test_one_lease_holder_until_it_expires_or_is_released(store: Store) -> None:
    assert store.lease(SCOPE, A.id, 10.0, 100.0)
    assert not store.lease(SCOPE, B.id, 10.0, 105.0)
    assert store.lease(SCOPE, A.id, 10.0, 109.0)  # renewed until 119
    assert not store.lease(SCOPE, B.id, 10.0, 118.0)
    assert store.lease(SCOPE, B.id, 10.0, 119.5)  # expired: taken over
    assert store.hand_over(SCOPE, A, [], 120.0).leader == B.id
    store.release(SCOPE, B.id)
    assert store.lease(SCOPE, A.id, 10.0, 121.0)


def test_the_budget_is_shared_and_never_exceeded(store: Store) -> None:
    limits = [(3, 60.0), (2, 1.0)]
    assert store.take_budget(SCOPE, limits, 100.0) == 0.0
    assert store.take_budget(SCOPE, limits, 100.1) == 0.0
    assert store.take_budget(SCOPE, limits, 100.2) == pytest.approx(0.8)  # 2 per second
    assert store.take_budget(SCOPE, limits, 101.5) == 0.0
    assert store.take_budget(SCOPE, limits, 102.0) == pytest.approx(58.0)
    assert store.take_budget(SCOPE, limits, 102.0, force=True) == 0.0
    assert store.status(SCOPE, 102.0).budget_used == 4
    assert store.hand_over(SCOPE, A, [], 102.0).budget_used == 4
    assert store.take_budget(SCOPE, limits, 160.2) == 0.0


def test_quota_counters_and_status(store: Store) -> None:
    assert store.count_sent(SCOPE, "2026-12-01") == 1
    assert store.count_sent(SCOPE, "2026-12-01", 2) == 3
    assert store.count_sent(SCOPE, "2026-12-01", 0) == 3
    store.describe(SCOPE, "dingtalk://***", 100.0)
    store.hand_over(SCOPE, A, [delta("g1", 2)], 100.0)
    store.lease(SCOPE, A.id, 10.0, 100.0)
    store.note_error(SCOPE, "HTTP 500", 100.5)
    status = store.status(SCOPE, 101.0)
    assert (status.masked, status.leader, status.pending_groups, status.pending_records) == (
        "dingtalk://***", A.id, 1, 2)
    assert [m.id for m in status.members] == [A.id] and status.last_error == "HTTP 500"
    assert store.status(SCOPE, 200.0).members == ()  # not live any more
    assert SCOPE in store.scopes()


def test_state_urls_mask_passwords_and_unknown_schemes_fail_with_an_example() -> None:
    assert parse_state(None).kind == "sqlite"
    assert parse_state("memory").kind == "memory"
    assert parse_state("sqlite:////tmp/x.db").path == "//tmp/x.db"
    redis = parse_state("redis://:hunter2@cache:6379/0")
    assert (redis.kind, redis.masked) == ("redis", "redis://:***@cache:6379/0")
    assert "hunter2" not in repr(redis)
    assert mask_url("unix:///run/r.sock?db=1&password=hunter2") == "unix:///run/r.sock?db=1&password=***"
    with pytest.raises(ValueError, match="sqlite:///") as caught:
        parse_state("mysql://root:hunter2@db/x")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError, match="sqlite:///"):
        parse_state("sqlite://relative.db")


def test_store_error_is_the_only_failure() -> None:
    assert issubclass(StoreError, Exception)
