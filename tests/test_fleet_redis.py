"""A fleet of OS processes sharing one fake DingTalk bot through a real Redis (``state="unix://…"``).

Each process is `tests/fleet_worker.py`, driven line by line; the bot is this process's fake server.
Checked: one message per batch for the whole fleet with every process's records counted exactly; Redis
stopped mid-incident (each process alerts alone, says so, accounting holds) and started again, empty
(they share again); the leader killed with SIGKILL (a sibling takes over, nothing handed over is lost).
Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatlog.state.store import open_store
from chatlog.testing import FakeBot, FakePlatforms
from chatlog.testing.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "fleet_worker.py"
ANSWER_TIMEOUT_S = 60.0
DELIVERY_TIMEOUT_S = 60.0
OPTIONS = {"group_wait": 1.0, "group_interval": 2.0, "close_timeout": 5.0, "level": "WARNING"}
_TOTAL = re.compile(r"(\d[\d,]*) records?\b")


class Worker:
    """One fleet process; `ask` sends a command and returns its one-line answer."""

    def __init__(self, url: str, state: str, folder: Path, index: int) -> None:
        spec = json.dumps({"url": url, "state": state, "options": OPTIONS})
        self.stderr_path = folder / f"worker-{index}.err"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        with self.stderr_path.open("w") as err:
            self.process = subprocess.Popen([sys.executable, str(WORKER), spec], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        assert self.read() == "ready"

    def read(self) -> str:
        """The next line of the worker's answer (bounded wait)."""
        stream = self.process.stdout
        assert stream is not None
        readable, _, _ = select.select([stream], [], [], ANSWER_TIMEOUT_S)
        assert readable, f"worker {self.process.pid} did not answer within {ANSWER_TIMEOUT_S:g} s"
        return stream.readline().strip()

    def ask(self, command: str) -> str:
        """Send one command; its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> dict[str, Any]:
        """Close the handler; its final accounting."""
        stats: dict[str, Any] = json.loads(self.ask("close"))
        self.process.wait(ANSWER_TIMEOUT_S)
        return stats

    @property
    def stderr(self) -> str:
        """What the worker wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def start_workers(tmp_path: Path) -> Iterator[Callable[[str, str, int], list[Worker]]]:
    """Start fleets of workers; any still running after the test is killed."""
    started: list[Worker] = []

    def start(url: str, state: str, n: int) -> list[Worker]:
        workers = [Worker(url, state, tmp_path, len(started) + i) for i in range(n)]
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(10)


Fleet = Callable[[int], tuple[FakeBot, list[Worker]]]


@pytest.fixture
def fleet(fake_platforms: FakePlatforms, redis_server: RedisServer,
          start_workers: Callable[[str, str, int], list[Worker]]) -> Fleet:
    """`fleet(n)`: a fake DingTalk bot and `n` workers sharing it through the test's Redis."""
    def make(n: int) -> tuple[FakeBot, list[Worker]]:
        bot = fake_platforms.add_bot("dingtalk")
        return bot, start_workers(bot.url, redis_server.url, n)

    return make


def delivered_total(bot: FakeBot) -> int:
    """Records the accepted messages say they carry (the total in each header)."""
    total = 0
    for received in bot.received:
        if received.accepted and received.payload is not None:
            found = _TOTAL.search(bot.text_of(received.payload))
            total += int(found.group(1).replace(",", "")) if found else 0
    return total


def wait_for_total(bot: FakeBot, total: int) -> int:
    """Until the bot's accepted messages carry `total` records (bounded); what they carry then."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while delivered_total(bot) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    return delivered_total(bot)


def log_in_each(workers: list[Worker], n: int) -> None:
    """Every worker logs `n` errors."""
    for worker in workers:
        assert worker.ask(f"log {n}") == "logged"


def accepted_messages(bot: FakeBot) -> int:
    """Messages the bot took."""
    return sum(1 for r in bot.received if r.accepted)


def wait_known(workers: list[Worker], delivered: int) -> None:
    """Until every worker knows `delivered` of its records were delivered (it learns at its next
    hand-over or heartbeat); bounded."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    for worker in workers:
        while json.loads(worker.ask("stats"))["delivered"] < delivered and time.monotonic() < deadline:
            time.sleep(0.1)


def assert_exact(stats: list[dict[str, Any]], each: int) -> None:
    """Every process logged `each` records and every one of them was delivered, by whoever sent it."""
    for s in stats:
        assert s["accepted"] == s["delivered"] + s["dropped"] + s["pending"], s
        assert (s["accepted"], s["delivered"], s["dropped"], s["pending"]) == (each, each, 0, 0), s


def test_processes_sharing_redis_send_one_message_per_batch_counting_every_record(fleet: Fleet) -> None:
    bot, workers = fleet(4)
    log_in_each(workers, 25)
    assert wait_for_total(bot, 100) == 100
    stats = [worker.close() for worker in workers]
    assert_exact(stats, 25)
    assert accepted_messages(bot) < len(workers)  # one per batch for the fleet, not one per process
    assert delivered_total(bot) == 100  # nothing sent twice
    assert all(r.accepted for r in bot.received)


def test_redis_stopped_mid_incident_each_process_alerts_alone_then_they_share_again(
        fleet: Fleet, redis_server: RedisServer) -> None:
    bot, workers = fleet(3)
    log_in_each(workers, 10)
    assert wait_for_total(bot, 30) == 30
    # Records delivered but not yet known as such to their process would be handed over again to a
    # Redis that comes back empty (sent twice rather than lost): stop it once every process knows.
    wait_known(workers, 10)
    redis_server.stop()
    log_in_each(workers, 10)
    assert wait_for_total(bot, 60) == 60  # each process on its own
    redis_server.start()  # empty: nothing was saved
    log_in_each(workers, 10)
    assert wait_for_total(bot, 90) == 90
    stats = [worker.close() for worker in workers]
    assert_exact(stats, 30)
    assert delivered_total(bot) == 90
    assert all(r.accepted for r in bot.received)  # never over the bot's limit, never blocked
    for worker in workers:
        said = worker.stderr
        assert "unix://" in said, said  # the store that failed is named, once or so, not per record
        assert len(said.splitlines()) <= 6, said


def test_the_leader_killed_mid_incident_a_sibling_sends_what_it_had_handed_over(
        fleet: Fleet, redis_server: RedisServer) -> None:
    bot, workers = fleet(3)
    log_in_each(workers, 5)
    assert wait_for_total(bot, 15) == 15
    store = open_store(redis_server.url)
    try:
        (scope,) = store.scopes()
        leader = store.status(scope, time.time()).leader
        assert leader is not None
        pid = int(leader.rsplit(":", 2)[1])
        (victim,) = [w for w in workers if w.process.pid == pid]
        victim.ask("log 7")
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S  # until its 7 are in the store, or already sent
        while (store.status(scope, time.time()).pending_records < 7 and delivered_total(bot) < 22
               and time.monotonic() < deadline):
            time.sleep(0.02)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        survivors = [w for w in workers if w is not victim]
        log_in_each(survivors, 5)
        assert wait_for_total(bot, 32) == 32  # the victim's 7 too, sent by a sibling once its lease ran out
        stats = [worker.close() for worker in survivors]
        assert_exact(stats, 10)
        assert store.status(scope, time.time()).pending_records == 0
    finally:
        store.close()
