"""The tally counters with plain values: exact readings, records counted before their group is known,
retired keys whose late increments still count."""

from __future__ import annotations

import threading

from chatlog.tally import IDLE_KEY_S, KEY_LIMIT, RETIRED_GRACE_S, Tallies


def readings(tallies: Tallies, now: float) -> list[tuple[object, int]]:
    return [(tally.fingerprint, count) for tally, count in tallies.collect(now)]


def test_every_increment_is_read_exactly_once() -> None:
    tallies = Tallies()
    tallies.register("k")
    tallies.link("k", "group", None, 40, now=0.0)
    counter = tallies.counters["k"]
    for _ in range(5):
        next(counter)
    assert readings(tallies, 0.1) == [("group", 5)]
    assert readings(tallies, 0.2) == []
    next(counter)
    assert readings(tallies, 0.3) == [("group", 1)]


def test_increments_from_many_threads_are_all_read() -> None:
    tallies = Tallies()
    tallies.register("k")
    tallies.link("k", "group", None, 40, now=0.0)
    counter = tallies.counters["k"]
    total = 0

    def count() -> None:
        for _ in range(50_000):
            next(counter)

    workers = [threading.Thread(target=count) for _ in range(8)]
    for worker in workers:
        worker.start()
    while any(w.is_alive() for w in workers):
        total += sum(n for _, n in readings(tallies, 0.0))  # read while they count
    for worker in workers:
        worker.join()
    total += sum(n for _, n in readings(tallies, 0.0))
    assert total == 8 * 50_000


def test_records_counted_before_their_group_is_known_are_owed_then_filed() -> None:
    tallies = Tallies()
    tallies.register("k")
    for _ in range(3):
        next(tallies.counters["k"])
    assert readings(tallies, 0.0) == []
    assert tallies.owed == 3
    tallies.link("k", "group", None, 40, now=0.0)
    assert readings(tallies, 0.1) == [("group", 3)]
    assert tallies.owed == 0


def test_an_idle_key_is_retired_and_late_increments_still_count() -> None:
    tallies = Tallies()
    tallies.register("k")
    tallies.link("k", "group", None, 40, now=0.0)
    counter = tallies.counters["k"]  # what a thread holds between its lookup and its increment
    next(counter)
    assert readings(tallies, 0.5) == [("group", 1)]
    assert readings(tallies, 0.5 + IDLE_KEY_S) == []
    assert "k" not in tallies.counters  # retired: the next record is captured again
    next(counter)
    assert readings(tallies, 1.0 + IDLE_KEY_S) == [("group", 1)]
    assert readings(tallies, 1.0 + IDLE_KEY_S + RETIRED_GRACE_S) == []


def test_keys_are_bounded() -> None:
    tallies = Tallies()
    for n in range(KEY_LIMIT + 50):
        tallies.register(("f-string message", n))
    assert len(tallies.counters) == KEY_LIMIT


def test_text_without_arguments_is_counted_from_its_second_record() -> None:
    tallies = Tallies()
    assert not tallies.seen_without_arguments(("payment gateway down",))
    assert tallies.counters == {}  # once could be an f-string's one-off text
    assert tallies.seen_without_arguments(("payment gateway down",))  # counted from now: link it
    assert ("payment gateway down",) in tallies.counters


def test_one_off_texts_never_fill_the_table() -> None:
    tallies = Tallies()
    for n in range(3 * KEY_LIMIT):
        tallies.seen_without_arguments((f"order {n} failed",))
    assert tallies.counters == {}
