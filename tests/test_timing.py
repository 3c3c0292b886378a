"""The batch-timing state machine and the pacing values, driven with plain floats: no threads, no sleeping."""

from __future__ import annotations

import logging
import math

import pytest

from chatlog.pacing import Backoff, SendWindow
from chatlog.timing import BatchSchedule, ClockWatch


def schedule() -> BatchSchedule:
    return BatchSchedule(group_wait=5.0, group_interval=60.0)


def test_nothing_unsent_is_never_due() -> None:
    assert schedule().due_at() == math.inf


def test_first_record_after_quiet_is_due_group_wait_later() -> None:
    s = schedule()
    s.record_filed(100.0, logging.ERROR)
    s.record_filed(103.0, logging.ERROR)  # joins the batch; does not push it back
    assert s.due_at() == 105.0


def test_records_after_a_delivery_wait_for_group_interval() -> None:
    s = schedule()
    s.record_filed(100.0, logging.ERROR)
    s.delivered(105.0, logging.ERROR, unsent_left=False)
    assert s.due_at() == math.inf
    s.record_filed(106.0, logging.ERROR)
    assert s.due_at() == 165.0


def test_after_a_long_quiet_a_record_waits_only_group_wait() -> None:
    s = schedule()
    s.record_filed(100.0, logging.ERROR)
    s.delivered(105.0, logging.ERROR, unsent_left=False)
    s.record_filed(1000.0, logging.ERROR)
    assert s.due_at() == 1005.0


def test_worse_news_than_the_last_message_waits_group_wait() -> None:
    s = schedule()
    s.record_filed(100.0, logging.WARNING)
    s.delivered(105.0, logging.WARNING, unsent_left=False)
    s.record_filed(106.0, logging.WARNING)
    assert s.due_at() == 165.0
    s.record_filed(110.0, logging.ERROR)
    assert s.due_at() == 115.0
    s.delivered(115.0, logging.ERROR, unsent_left=False)
    s.record_filed(116.0, logging.ERROR)  # as bad as what was sent: the interval applies again
    assert s.due_at() == 175.0


def test_records_left_over_after_a_delivery_keep_their_place() -> None:
    s = schedule()
    s.record_filed(100.0, logging.ERROR)
    s.record_filed(104.0, logging.ERROR)  # arrived while the message was out
    s.delivered(105.0, logging.ERROR, unsent_left=True)
    assert s.due_at() == 165.0


def test_a_refused_message_still_spaces_the_next_one() -> None:
    s = schedule()
    s.record_filed(100.0, logging.ERROR)
    s.delivered(105.0, logging.ERROR, unsent_left=False)
    s.record_filed(106.0, logging.ERROR)
    s.refused(165.0, unsent_left=False)
    s.record_filed(166.0, logging.ERROR)
    assert s.due_at() == 225.0


def test_after_a_refused_first_message_an_error_is_still_news() -> None:
    s = schedule()
    s.record_filed(100.0, logging.ERROR)
    s.refused(105.0, unsent_left=False)  # nobody saw it
    s.record_filed(106.0, logging.ERROR)
    assert s.due_at() == 111.0


def test_discarding_leaves_nothing_due() -> None:
    s = schedule()
    s.record_filed(100.0, logging.ERROR)
    s.discarded()
    assert s.due_at() == math.inf


def test_clock_stepping_back_keeps_the_wait_length() -> None:
    watch, s = ClockWatch(), schedule()
    assert watch.step_back(5000.0) == 0.0
    s.record_filed(5000.0, logging.ERROR)
    shift = watch.step_back(1400.0)  # NTP stepped the clock back an hour
    assert shift == -3600.0
    s.shift(shift)
    assert s.due_at() == 1405.0
    assert watch.step_back(1500.0) == 0.0  # forward needs nothing


def test_backoff_doubles_up_to_the_cap_and_jitter_shortens_it() -> None:
    backoff = Backoff()
    delays = []
    for _ in range(12):
        backoff = backoff.after_failure(0.0, retry_after=0.0, max_backoff=300.0, jitter=1.0)
        delays.append(backoff.retry_at)
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0] and delays[-1] == 300.0
    half = Backoff(2).after_failure(10.0, retry_after=0.0, max_backoff=300.0, jitter=0.5)
    assert half.retry_at == 12.0


def test_a_platform_pause_outlasts_flush_and_success() -> None:
    backoff = Backoff().after_failure(0.0, retry_after=600.0, max_backoff=300.0, jitter=1.0)
    assert backoff.ready_at() == 600.0
    assert backoff.retry_now().ready_at() == 600.0  # flush() skips our backoff, not the platform's pause
    assert backoff.after_success().ready_at() == 600.0
    assert backoff.after_success().failures == 0


def test_flush_skips_our_own_backoff() -> None:
    backoff = Backoff().after_failure(0.0, retry_after=0.0, max_backoff=300.0, jitter=1.0)
    assert backoff.ready_at() == 1.0
    assert backoff.retry_now().ready_at() == -math.inf


def test_backoff_moves_with_the_clock() -> None:
    backoff = Backoff().after_failure(100.0, retry_after=30.0, max_backoff=300.0, jitter=1.0)
    moved = backoff.shifted(-50.0)
    assert (moved.retry_at, moved.paused_until, moved.failures) == (80.0, 80.0, 1)


def test_send_window_never_allows_more_than_the_limit_in_any_minute() -> None:
    window = SendWindow(per_minute=18, per_second=None)
    sends: list[float] = []
    now = 0.0
    while now < 600.0:
        if window.wait(now) == 0.0:
            window.record(now)
            sends.append(now)
        now += 0.25
    for start in sends:
        assert sum(1 for t in sends if start <= t < start + 60.0) <= 18
    assert len(sends) >= 18 * 9


def test_send_window_limits_bursts_per_second() -> None:
    window = SendWindow(per_minute=90, per_second=4)
    for _ in range(4):
        assert window.wait(10.0) == 0.0
        window.record(10.0)
    assert window.wait(10.0) == pytest.approx(1.0)


def test_send_window_survives_clock_jumps() -> None:
    window = SendWindow(per_minute=18, per_second=None)
    for i in range(18):
        window.record(5000.0 + i)
    assert window.wait(5020.0) > 0
    assert window.wait(100.0) == 0.0  # the clock went back hours: old sends are not "in the future" forever
    assert window.wait(5000.0 + 3 * 3600) == 0.0
