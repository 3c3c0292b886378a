"""Many processes, one destination (issue 11): real OS processes share the SQLite store and one fake bot.

The processes of a run are started by `HARNESS` (multiprocessing, fork or spawn) and step through
phases the test opens by creating files (``go1``, ``go2``, …, ``stop``); each phase logs ``COUNT``
records per process. At ``stop`` each process waits (bounded) until its records are delivered,
writes its accounting and exits. Every loop here is bounded; nothing is timed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chatlog import ChatHandler
from chatlog.lifecycle import host_name
from chatlog.state.sqlite import SQLiteStore
from chatlog.state.store import Status
from chatlog.testing import FakeBot, FakePlatforms, Fault

ROOT = Path(__file__).resolve().parent.parent
COUNT = 10
WAIT_S = 60.0

CHILDREN = """
import json, logging, multiprocessing, os, sys, time
from pathlib import Path
import chatlog


def finish(handler, folder, limit):
    # Bounded: until every record of this process was delivered (by whichever process sent it).
    deadline = time.monotonic() + limit
    while handler.stats().delivered_records < handler.stats().accepted and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = handler.stats()
    handler.close()
    counts = {name: getattr(stats, name) for name in stats._fields}
    Path(folder, f"stats-{os.getpid()}.json").write_text(json.dumps(counts))


def run(method, n, work, args, join_s):
    children = [multiprocessing.get_context(method).Process(target=work, args=args) for _ in range(n)]
    for child in children:
        child.start()
    for child in children:
        child.join(join_s)
    print("exit codes", [child.exitcode for child in children])
"""

HARNESS = CHILDREN + """

def wait_for(path, stop, limit=240.0):
    deadline = time.monotonic() + limit
    while not path.exists() and not stop.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def work(url, state, folder, count, group_wait, group_interval):
    folder = Path(folder)
    handler = chatlog.ChatHandler(url, state=state, group_wait=group_wait, group_interval=group_interval,
                                  close_timeout=5.0)
    log = logging.getLogger("shop")
    log.addHandler(handler)
    log.propagate = False
    (folder / f"ready-{os.getpid()}").touch()
    phase, stop = 1, folder / "stop"
    while wait_for(folder / f"go{phase}", stop):
        for i in range(count):
            log.error("payment %s failed", i)
        (folder / f"logged{phase}-{os.getpid()}").touch()
        phase += 1
    finish(handler, folder, 60.0)


if __name__ == "__main__":
    url, state, folder, n, method, count, wait, interval = sys.argv[1:9]
    run(method, int(n), work, (url, state, folder, int(count), float(wait), float(interval)), 300)
"""


class Run:
    """One harness run: its folder, the store it shares, and the phases the test opens."""

    def __init__(self, folder: Path, proc: subprocess.Popen[str], db: Path, n: int) -> None:
        self.folder, self.proc, self.db, self.n = folder, proc, db, n
        self.scope = ""

    def wait_files(self, prefix: str, n: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while len(list(self.folder.glob(f"{prefix}*"))) < n and time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            time.sleep(0.05)
        assert len(list(self.folder.glob(f"{prefix}*"))) >= n, prefix

    def phase(self, number: int, processes: int | None = None) -> None:
        (self.folder / f"go{number}").touch()
        self.wait_files(f"logged{number}-", processes or self.n)

    def status(self) -> Status:
        store = SQLiteStore(self.db)
        try:
            self.scope = self.scope or next(iter(store.scopes()), "")
            if not self.scope:  # no process has joined yet
                return Status("", "", (), None, None, 0, 0, 0, None, "", None)
            return store.status(self.scope, time.time())
        finally:
            store.close()

    def wait_store(self, done: Callable[[Status], bool]) -> Status:
        deadline = time.monotonic() + WAIT_S
        status = self.status()
        while not done(status) and time.monotonic() < deadline:
            time.sleep(0.05)
            status = self.status()
        assert done(status), status
        return status

    def stop(self, survivors: int | None = None) -> list[dict[str, int]]:
        (self.folder / "stop").touch()
        self.wait_files("stats-", self.n if survivors is None else survivors)
        self.proc.wait(WAIT_S)
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob("stats-*"))]

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc.stdout and self.proc.poll() is not None else ""


@contextmanager
def harness(tmp_path: Path, bot: FakeBot, n: int, method: str = "fork", *, group_wait: float = 5.0,
            group_interval: float = 30.0) -> Iterator[Run]:
    script, folder, db = tmp_path / "harness.py", tmp_path / "run", tmp_path / "fleet.db"
    script.write_text(HARNESS)
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), bot.url, f"sqlite:///{db}", str(folder), str(n),
                             method, str(COUNT), str(group_wait), str(group_interval)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    run = Run(folder, proc, db, n)
    try:
        run.wait_files("ready-", n)
        yield run
    finally:
        (folder / "stop").touch()
        try:
            proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def records_in(text: str) -> int:
    """The total a message's header gives (``ERROR · 40 records``)."""
    match = re.search(r"· ([\d,]+) records?", text.splitlines()[0])
    assert match, text
    return int(match.group(1).replace(",", ""))


def everyone_saw_the_last_send(status: Status) -> bool:
    """Every member has read what the last message settled. A store that loses its data makes each
    member hand over again what it last knew as pending there: records sent since are sent again."""
    last = status.last_send
    return (status.pending_records == 0 and last is not None and len(status.members) > 0
            and all(member.last_seen > last for member in status.members))


def accounted(stats: dict[str, int]) -> bool:
    return stats["accepted"] == stats["delivered_records"] + stats["dropped"] + stats["pending"]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_processes_on_one_host_send_one_message_per_batch_with_every_count_and_the_workers_named(
    fake_platforms: FakePlatforms, tmp_path: Path, method: str
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    with harness(tmp_path, bot, 4, method) as run:
        run.phase(1)
        run.wait_store(lambda s: s.pending_records == 0 and s.last_send is not None)
        stats = run.stop()
    (text,) = bot.texts()
    assert records_in(text) == 4 * COUNT and f"×{4 * COUNT} from 4 workers on {host_name()}" in text, text
    assert len(stats) == 4 and all(s["accepted"] == s["delivered_records"] == COUNT for s in stats), stats
    assert "chatlog:" not in run.output()


def test_the_leader_killed_mid_incident_is_replaced_and_nothing_is_lost_or_sent_twice(
    fake_platforms: FakePlatforms, tmp_path: Path
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    with harness(tmp_path, bot, 3, group_wait=1.0, group_interval=60.0) as run:
        run.phase(1)
        run.wait_store(lambda s: s.pending_records == 0 and s.last_send is not None)
        run.phase(2)  # the leader waits for group_interval now: these records are pending in the store
        status = run.wait_store(lambda s: s.pending_records == 3 * COUNT and s.leader is not None)
        assert status.leader is not None
        os.kill(int(status.leader.rsplit(":", 2)[1]), signal.SIGKILL)
        bot.wait_for(2, timeout=WAIT_S)  # a survivor takes the lease when it expires, and sends
        stats = run.stop(survivors=2)
    texts = bot.texts()
    assert [records_in(t) for t in texts] == [3 * COUNT, 3 * COUNT], texts
    assert f"from 3 workers on {host_name()}" in texts[1]  # the dead leader's records too
    assert len(stats) == 2 and all(s["delivered_records"] == s["accepted"] == 2 * COUNT for s in stats)


def test_a_deleted_store_file_means_each_process_alerts_alone_until_it_is_back(
    fake_platforms: FakePlatforms, tmp_path: Path
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    with harness(tmp_path, bot, 3, group_wait=1.0, group_interval=1.0) as run:
        run.phase(1)
        run.wait_store(everyone_saw_the_last_send)  # else the records it sent are sent again: see below
        for part in ("", "-wal", "-shm"):
            Path(f"{run.db}{part}").unlink(missing_ok=True)
        run.db.mkdir()  # deleted, and nothing can take its place: the store is gone
        run.phase(2)
        bot.wait_for(4, timeout=WAIT_S)  # each process sends its own records
        run.db.rmdir()
        back = time.time()
        run.wait_store(lambda s: sum(m.last_seen > back for m in s.members) == 3)
        run.phase(3)
        bot.wait_for(5, timeout=WAIT_S)
        stats = run.stop()
    totals = [records_in(t) for t in bot.texts()]
    assert totals == [3 * COUNT, COUNT, COUNT, COUNT, 3 * COUNT], bot.texts()
    assert all(s["accepted"] == s["delivered_records"] == 3 * COUNT and accounted(s) for s in stats), stats
    output = run.output()
    assert output.count("cannot use the shared store") == 3, output
    assert output.count("works again") == 3, output


STORM = CHILDREN + """
LEVELS = [(logging.WARNING, "cache slow on shard %s"), (logging.ERROR, "db timeout after %s ms"),
          (logging.CRITICAL, "db down, %s requests failed")]


def work(url, state, folder, duration):
    handler = chatlog.ChatHandler(url, state=state, level=logging.WARNING, group_wait=0.5,
                                  group_interval=0.5, close_timeout=5.0)
    log = logging.getLogger("shop")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.WARNING)
    for tick in range(int(duration * 4)):  # four records a second, escalating
        level, message = LEVELS[min(2, int(3 * tick / (duration * 4)))]
        log.log(level, message, tick % 7)
        time.sleep(0.25)
    finish(handler, folder, 150.0)


if __name__ == "__main__":
    url, state, folder, n, duration = sys.argv[1:6]
    run("fork", int(n), work, (url, state, folder, float(duration)), 400)
"""


def busiest_minute(times: list[float]) -> int:
    """The most sends within any 60 s window."""
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < 60.0) for i, start in enumerate(times)), default=0)


def test_24_processes_on_one_dingtalk_bot_stay_within_its_limit_and_every_record_is_counted(
    fake_platforms: FakePlatforms, tmp_path: Path
) -> None:
    """The issue's storm, scaled: 30 s of escalating records in 24 processes, each as eager to send as it
    can be (group_interval 0.5 s): only the shared budget keeps them within DingTalk's 20 a minute, so
    the run spans more than a minute of sends."""
    bot = fake_platforms.add_bot("dingtalk")
    script, folder = tmp_path / "storm.py", tmp_path / "run"
    script.write_text(STORM)
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script), bot.url, f"sqlite:///{tmp_path}/fleet.db",
                             str(folder), "24", "30"], env=env, capture_output=True, text=True, timeout=420)
    assert "exit codes [0" in result.stdout and ", 1" not in result.stdout, result.stdout + result.stderr
    stats = [json.loads(p.read_text()) for p in folder.glob("stats-*.json")]
    assert len(stats) == 24
    assert all(r.accepted for r in bot.received), [r.answer for r in bot.received if not r.accepted]
    assert busiest_minute([r.at for r in bot.received]) <= 20
    assert len(bot.received) >= 18  # a minute's budget was reached: it, not the timing, held them back
    assert sum(records_in(t) for t in bot.texts()) == sum(s["accepted"] for s in stats)
    assert all(s["delivered_records"] == s["accepted"] > 0 and accounted(s) for s in stats), stats
    assert "CRITICAL" in bot.texts()[-1] or any("CRITICAL" in t for t in bot.texts())
    assert "chatlog:" not in result.stderr, result.stderr


GUNICORN_EXAMPLES = ROOT / "examples"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="gunicorn needs os.fork")
def test_four_gunicorn_workers_send_one_alert_naming_them_all(fake_platforms: FakePlatforms,
                                                              tmp_path: Path) -> None:
    from tests.test_examples import client, free_port, serving

    bot = fake_platforms.add_bot("feishu", secret="feishu-signing-secret")
    port = free_port()
    args = ["-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "4"]
    workers: set[str] = set()
    store = {"XDG_RUNTIME_DIR": str(tmp_path), "CHATLOG_STATE": f"sqlite:///{tmp_path}/fleet.db",
             "PYTHONPATH": str(ROOT)}
    with serving(bot, args, port, tmp_path / "gunicorn.log", stop=signal.SIGTERM, **store), client() as http:
        deadline, order = time.monotonic() + WAIT_S, 0
        while len(workers) < 4 and time.monotonic() < deadline:  # the kernel picks the worker: ask them all
            workers.add(http.get(f"http://127.0.0.1:{port}/orders/{order}").text.split(":")[0])
            order += 1
        assert len(workers) == 4, workers
        bot.wait_for(1, timeout=WAIT_S)
    texts = bot.texts()
    assert f"from 4 workers on {host_name()}" in texts[0], texts
    assert sum(records_in(text) for text in texts) == order, texts


def test_a_group_muted_from_the_chat_is_left_out_of_the_fleet_message_and_noted_in_the_next(
    fake_platforms: FakePlatforms, tmp_path: Path, make_handler: Callable[..., ChatHandler],
    app_logger: logging.Logger
) -> None:
    from chatlog.state import ControlStore
    from chatlog.state.honour import scope_of

    bot = fake_platforms.add_bot("wecom")
    handler = make_handler(bot.url, chatops="memory", state=f"sqlite:///{tmp_path}/fleet.db")
    app_logger.addHandler(handler)
    controls = ControlStore("memory")
    app_logger.error("disk %s full", "/var")
    assert handler.flush(10)
    group = re.search(r"#([0-9a-f]{4})", bot.texts()[-1])
    assert group is not None
    scope = scope_of(handler._dispatcher.destination)
    controls.mute([scope], group.group(1), time.time() + 600, "ou_alice", time.time())
    try:
        for _ in range(3):
            app_logger.error("disk %s full", "/var")
        assert handler.flush(10) and len(bot.texts()) == 1  # only the muted group: nothing to send
        app_logger.error("queue %s stuck", "billing")
        assert handler.flush(10)
    finally:
        controls.unmute([scope], "*")
    assert "×3 muted by ou_alice" in bot.texts()[-1] and "queue billing stuck" in bot.texts()[-1]
    stats = handler.stats()
    assert (stats.accepted, stats.delivered_records, stats.pending) == (5, 2, 0)
    assert (stats.muted, stats.dropped) == (3, 0)  # credited as muted in the process that logged them


def test_a_state_url_of_no_store_fails_at_construction_with_an_example_and_no_password() -> None:
    with pytest.raises(ValueError, match=r"state must be .*sqlite:///") as caught:
        ChatHandler("dingtalk://TOKEN", state="mysql://root:hunter2@db/chatlog")
    assert "hunter2" not in str(caught.value) and "mysql://root:***@db/chatlog" in str(caught.value)


def test_an_unwritable_state_file_falls_back_to_alerting_alone_with_one_line(
    fake_platforms: FakePlatforms, tmp_path: Path, make_handler: Callable[..., ChatHandler],
    app_logger: logging.Logger, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    bot = fake_platforms.add_bot("dingtalk")
    handler = make_handler(bot.url, state=f"sqlite:///{blocker}/fleet.db")
    app_logger.addHandler(handler)
    app_logger.error("nightly export failed")
    assert handler.flush(10) and "nightly export failed" in bot.texts()[0]
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("chatlog:")]
    assert len(lines) == 1 and "cannot use the state file" in lines[0] and "state='memory'" in lines[0], lines


@pytest.mark.parametrize(("method", "kind"), [("fork", "Process"), ("spawn", "Pool")])
def test_children_leaving_through_os_exit_hand_over_and_every_record_is_delivered(
    fake_platforms: FakePlatforms, tmp_path: Path, method: str, kind: str
) -> None:
    from tests.test_lifecycle import MULTIPROCESSING_SCRIPT  # group_wait=60: only the exits send

    bot = fake_platforms.add_bot("feishu")
    script = tmp_path / "mp_app.py"
    script.write_text(MULTIPROCESSING_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHATLOG_STATE": f"sqlite:///{tmp_path}/fleet.db"}
    result = subprocess.run([sys.executable, str(script), bot.url, method, kind], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    texts = "\n".join(bot.texts())
    assert sum(records_in(text) for text in bot.texts()) == (2 if kind == "Process" else 3), texts
    assert "chatlog:" not in result.stderr, result.stderr


def test_records_a_full_buffer_dropped_are_said_in_the_fleet_message(
    fake_platforms: FakePlatforms, tmp_path: Path, make_handler: Callable[..., ChatHandler],
    app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("dingtalk", rate_limit=False)
    handler = make_handler(bot.url, state=f"sqlite:///{tmp_path}/fleet.db", max_queue=5)
    app_logger.addHandler(handler)
    for burst in range(200):  # bounded: bursts until the buffer overflowed at least once
        for i in range(50):
            app_logger.error(f"job {burst}-{i} failed")  # a new text each time: each one is captured
        if handler.stats().dropped:
            break
    assert handler.flush(10)
    stats = handler.stats()
    assert stats.dropped > 0 and stats.accepted == stats.delivered_records + stats.dropped
    said = sum(int(n.replace(",", "")) for n in re.findall(r"([\d,]+) records dropped: buffer full",
                                                           "\n".join(bot.texts())))
    assert said == stats.dropped, bot.texts()


def test_a_pause_the_platform_asked_of_a_leader_holds_for_the_next_one(
    fake_platforms: FakePlatforms, tmp_path: Path, make_handler: Callable[..., ChatHandler],
    app_logger: logging.Logger
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    state = f"sqlite:///{tmp_path}/fleet.db"
    first, second = make_handler(bot.url, state=state), make_handler(bot.url, state=state)
    app_logger.addHandler(first)
    other = logging.getLogger(f"{app_logger.name}.other")
    other.propagate = False
    other.addHandler(second)
    bot.fail_next(1, Fault.json({"errcode": 410100, "errmsg": "send too fast"}))  # a 10-minute block
    app_logger.error("payment failed")
    assert not first.flush(5)  # refused: the leader waits the 10 minutes
    first.close()  # gives the lease up; its records stay in the store
    other.error("payment failed again")
    assert not second.flush(2)  # the next leader waits for the same pause
    assert len(bot.received) == 1 and "chatlog" not in bot.texts()
    other.removeHandler(second)


def test_one_process_on_the_default_store_ends_with_every_record_delivered_and_the_all_clear_last(
    fake_platforms: FakePlatforms, tmp_path: Path, make_handler: Callable[..., ChatHandler],
    app_logger: logging.Logger
) -> None:
    # The all-clear waits for what the fleet still holds (due 0.5 s after the last error, while those
    # records wait for group_interval), and the last message at close is credited in the store: read
    # back before the process leaves, or its records would stay "pending".
    bot = fake_platforms.add_bot("dingtalk")
    handler = make_handler(bot.url, state=f"sqlite:///{tmp_path}/fleet.db", group_wait=0.2,
                           group_interval=2, resolve_after=0.5)
    app_logger.addHandler(handler)
    app_logger.error("order %s failed", 0)
    assert len(bot.wait_received(1, timeout=10)) == 1
    for i in range(1, 50):
        app_logger.error("order %s failed", i)
    bot.wait_received(3, timeout=15)
    texts = bot.texts()
    assert [records_in(text) for text in texts[:2]] == [1, 49] and "no error" in texts[2].lower(), texts
    app_logger.error("order %s failed", 50)
    handler.close()
    stats = handler.stats()
    assert (stats.accepted, stats.delivered_records, stats.dropped, stats.pending) == (51, 51, 0, 0)
