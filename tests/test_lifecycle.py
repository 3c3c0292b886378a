"""A handler's life around the application's: no feedback between handlers, a configuration error that
heals, a handler closed by a framework's dictConfig() that keeps working, child processes that leave
through os._exit, a close() that tells the truth, and configuring that costs the logging threads
nothing. Real fake platforms over HTTP, real subprocesses, an injected clock where the point is time.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatlog import ChatHandler
from chatlog.capture import capture
from chatlog.destinations import resolve
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.testing import FakePlatforms
from tests.conftest import assert_accounting, attach_only

ROOT = Path(__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT_S = 90


def chatlog_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("chatlog:")]


def run_script(script: str, *, cwd: Path | None = None, timeout: float = SUBPROCESS_TIMEOUT_S,
               args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True,
                            text=True, timeout=timeout, cwd=cwd or ROOT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


# --- nothing chatlog's threads log reaches any handler --------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_two_handlers_with_root_at_debug_send_one_message_each_and_no_http_lines_reach_the_app(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler]
) -> None:
    bots = [fake_platforms.add_bot("wecom"), fake_platforms.add_bot("dingtalk")]
    handlers = [make_handler(bot.url) for bot in bots]
    app_side = Collect()
    root = logging.getLogger()
    old_level, old_handlers = root.level, list(root.handlers)
    root.setLevel(logging.DEBUG)
    for handler in (*handlers, app_side):
        root.addHandler(handler)
    try:
        logging.getLogger("shop.checkout").error("payment provider timed out")
        for bot in bots:
            assert len(bot.wait_for(1, timeout=5.0)) == 1
        time.sleep(1.5)  # a loop would show here: each handler's sends logged, delivered by the other
        for bot in bots:
            assert len(bot.messages) == 1, bot.texts()
            assert "payment provider timed out" in bot.texts()[0] and "httpcore" not in bot.texts()[0]
        names = {record.name for record in app_side.records}
        assert names == {"shop.checkout"}, names
    finally:
        for handler in (*handlers, app_side):
            root.removeHandler(handler)
        root.setLevel(old_level)
        assert root.handlers == old_handlers


# --- a configuration error is not forever ---------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def put(dispatcher: Dispatcher, i: int) -> None:
    record = logging.LogRecord("shop", logging.ERROR, "shop.py", 7, "order %s failed", (i,), None)
    dispatcher.buffer.append(capture(record, record.getMessage()))


def test_clock_an_hour_off_suspends_the_destination_which_resumes_with_everything_once_fixed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    skew = [2 * 3600.0]  # the platform's view of this machine's clock: two hours off
    clock = Clock()
    with FakePlatforms(clock=lambda: time.time() - skew[0]) as fake:
        bot = fake.add_bot("feishu", secret="feishu-probe-secret", rate_limit=False)
        timing = Timing(group_wait=5.0, group_interval=60.0, close_timeout=1.0)
        dispatcher = Dispatcher(resolve(bot.url).destination, timing=timing, clock=clock, start=False)
        try:
            logged = 0
            for second in range(70 * 60):  # 70 minutes refused: probes at 10-minute steps
                put(dispatcher, logged)
                logged += 1
                dispatcher.step()
                clock.now += 1.0
                if second == 6:
                    first = len(bot.received)
            refused = len(bot.received)
            assert 1 <= first <= 2 and refused in (7 * first, 8 * first), (first, refused)  # probe each 600 s
            stats = dispatcher.stats()
            assert (stats.dropped, stats.pending, stats.delivered_records) == (0, logged, 0)
            assert not dispatcher.flush(1.0)
            lines = chatlog_lines(capsys.readouterr().err)
            assert len(lines) == 2, lines  # at the first refusal and an hour later, not per probe
            assert all("clock is right" in line and "every 10 minutes" in line for line in lines), lines

            skew[0] = 0.0  # the clock was corrected
            for _ in range(601):
                dispatcher.step()
                clock.now += 1.0
            assert len(bot.messages) == 1
            assert f"×{logged:,}" in bot.texts()[0]
            stats = dispatcher.stats()
            assert (stats.delivered_records, stats.pending, stats.dropped) == (logged, 0, 0)
            [resumed] = chatlog_lines(capsys.readouterr().err)
            assert "accepts messages again" in resumed
            put(dispatcher, logged)
            for _ in range(61):
                dispatcher.step()
                clock.now += 1.0
            assert len(bot.messages) == 2  # and it keeps working
        finally:
            dispatcher.close(1.0)
            assert_accounting(dispatcher.stats())


# --- a handler closed by a framework's dictConfig() starts again ----------------------------------------


def test_handler_added_at_import_survives_uvicorn_configuring_logging(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("wecom")
    result = run_script(f"""
        import logging, chatlog
        handler = chatlog.ChatHandler({bot.url!r}, level=logging.ERROR, group_wait=60)
        logging.getLogger().addHandler(handler)  # at import time, as many apps do

        import uvicorn
        async def app(scope, receive, send): ...
        uvicorn.Config(app, host="127.0.0.1", port=0)  # uvicorn.run() starts so: its dictConfig closes ours
        assert handler in logging.getLogger().handlers
        logging.getLogger("shop").error("order %s failed after start-up", 7)
        print(handler.stats())
    """)
    assert "accepted=1, dropped=0, pending=1" in result.stdout, result.stdout
    assert chatlog_lines(result.stderr) == []
    assert any("order 7 failed after start-up" in text for text in bot.texts())


def test_handler_added_at_import_survives_django_setup(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    result = run_script(f"""
        import logging, chatlog
        handler = chatlog.ChatHandler({bot.url!r}, level=logging.ERROR, group_wait=60)
        logging.getLogger().addHandler(handler)

        import django
        from django.conf import settings
        settings.configure(DEBUG=False, INSTALLED_APPS=[], LOGGING={{"version": 1}})
        django.setup()  # configure_logging(): dictConfig(DEFAULT_LOGGING) closes every existing handler
        logging.getLogger("shop").error("order %s failed after django.setup()", 8)
        print(handler.stats())
    """)
    assert "accepted=1, dropped=0, pending=1" in result.stdout, result.stdout
    assert any("order 8 failed after django.setup()" in text for text in bot.texts())


def test_record_after_the_final_shutdown_at_exit_is_counted_and_said_not_restarted(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("wecom")
    result = run_script(f"""
        import atexit, sys
        assert "logging" not in sys.modules  # so this hook runs after logging's own shutdown hook

        def late():
            logging.getLogger("shop").error("logged after logging.shutdown() at exit")
            print(handler.stats(), flush=True)

        atexit.register(late)
        import logging, chatlog
        handler = chatlog.ChatHandler({bot.url!r}, group_wait=60)
        logging.getLogger().addHandler(handler)
        logging.getLogger("shop").error("logged while running")
    """)
    assert "accepted=2, dropped=1, pending=0, delivered_records=1" in result.stdout, result.stdout
    [line] = chatlog_lines(result.stderr)
    assert "after the handler was closed at exit is counted as dropped" in line
    assert len(bot.received) == 1 and "logged while running" in bot.texts()[0]


# --- child processes deliver ----------------------------------------------------------------------------

MULTIPROCESSING_SCRIPT = """
import logging, multiprocessing, os, sys
import chatlog

# Module level: the parent and every spawn/forkserver child (which imports this module again) build it.
logging.getLogger().addHandler(chatlog.ChatHandler(sys.argv[1], level=logging.ERROR, group_wait=60))


def work(n):
    logging.getLogger("worker").error("task %s failed in pid %s", n, os.getpid())
    return os.getpid()


if __name__ == "__main__":
    method, kind = sys.argv[2], sys.argv[3]
    context = multiprocessing.get_context(method)
    if kind == "Process":
        children = [context.Process(target=work, args=(n,)) for n in range(2)]
        for child in children:
            child.start()
        for child in children:
            child.join(60)
        print("pids", [child.pid for child in children], [child.exitcode for child in children])
    else:
        pool = context.Pool(2, maxtasksperchild=1)
        pids = pool.map(work, range(3))
        pool.close()
        pool.join()
        print("pids", sorted(set(pids)), [0])
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
@pytest.mark.parametrize("kind", ["Process", "Pool"])
def test_multiprocessing_children_deliver_their_records_when_they_end(
    fake_platforms: FakePlatforms, tmp_path: Path, method: str, kind: str
) -> None:
    bot = fake_platforms.add_bot("feishu")
    script = tmp_path / "mp_app.py"
    script.write_text(MULTIPROCESSING_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script), bot.url, method, kind], capture_output=True,
                            text=True, timeout=SUBPROCESS_TIMEOUT_S, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    pids_line = result.stdout.split("pids ", 1)[1]
    pids = json.loads(pids_line.split("] [")[0] + "]")
    texts = "\n".join(bot.texts())
    for pid in pids:
        assert f"in pid {pid}" in texts, (pid, texts, result.stderr)
    assert chatlog_lines(result.stderr) == []


CELERY_APP = """
import logging, os
from celery import Celery, signals
import chatlog

BROKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "broker")
app = Celery("celery_child_app", broker="filesystem://")
app.conf.broker_transport_options = {"data_folder_in": BROKER, "data_folder_out": BROKER}
app.conf.task_ignore_result = True
chat = chatlog.ChatHandler(os.environ["CHATLOG_URL"], level=logging.ERROR, group_wait=60)


@signals.after_setup_logger.connect
def add_chat_handler(logger, **kwargs):
    logger.addHandler(chat)


@app.task
def charge(order):
    logging.getLogger("billing").error("charging order %s failed in pid %s", order, os.getpid())
"""


def test_celery_prefork_children_with_max_tasks_per_child_deliver_before_os_exit(
    fake_platforms: FakePlatforms, tmp_path: Path
) -> None:
    bot = fake_platforms.add_bot("wecom")
    (tmp_path / "broker").mkdir()
    (tmp_path / "celery_child_app.py").write_text(CELERY_APP)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "CHATLOG_URL": bot.url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_child_app", "worker", "--pool=prefork",
         "--concurrency=1", "--max-tasks-per-child=1", "--loglevel=WARNING", "--without-heartbeat",
         "--without-gossip", "--without-mingle"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        subprocess.run([sys.executable, "-c", "from celery_child_app import charge\n"
                        "for order in (1, 2): charge.delay(order)"],
                       cwd=tmp_path, env=env, check=True, timeout=SUBPROCESS_TIMEOUT_S)
        messages = bot.wait_for(2, timeout=60.0)  # group_wait=60: only the children's exit hook sends them
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    texts = bot.texts()
    assert len(messages) == 2, (texts, output)
    pids = {text.split("failed in pid ")[1].split()[0].strip("`*") for text in texts}
    assert len(pids) == 2, texts  # one child per task, each delivered before leaving through os._exit
    assert all("charging order" in text for text in texts)


# --- close() tells the truth ----------------------------------------------------------------------------


def test_records_in_a_request_still_in_flight_at_close_are_reported_as_sent_not_lost(
    fake_platforms: FakePlatforms, app_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatlog.testing import Fault

    bot = fake_platforms.add_bot("dingtalk")
    bot.fail_next(1, Fault.slow(3.0))  # accepted after 3 s, close_timeout is 1 s
    handler = ChatHandler(bot.url, group_wait=60, close_timeout=1.0)
    attach_only(app_logger, handler)
    for i in range(500):
        app_logger.error("order %s failed", i)
    handler.close()
    [line] = chatlog_lines(capsys.readouterr().err)
    assert "500 log records were sent, answer not awaited" in line and "not delivered" not in line
    assert len(bot.wait_for(1, timeout=5.0)) == 1 and "×500" in bot.texts()[0]


# --- configuring costs the logging threads nothing ------------------------------------------------------


def test_import_and_construction_import_no_httpx_and_build_no_client(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("wecom")
    result = run_script(f"""
        import sys, logging, logging.config
        import chatlog
        after_import = "httpx" in sys.modules
        logging.config.dictConfig({{"version": 1, "handlers": {{"chat": {{"class": "chatlog.ChatHandler",
            "url": {bot.url!r}, "group_wait": 0.05}}}}, "root": {{"handlers": ["chat"]}}}})
        after_construction = "httpx" in sys.modules
        print("httpx after import", after_import, "after construction", after_construction)
        logging.getLogger("cron").error("nightly export failed")
        handler = logging.getLogger().handlers[0]
        print("delivered", handler.flush(5.0), "httpx after sending", "httpx" in sys.modules)
    """)
    assert "httpx after import False after construction False" in result.stdout, result.stdout
    assert "delivered True httpx after sending True" in result.stdout
    assert len(bot.messages) == 1


def test_dictconfig_with_a_chat_handler_does_not_stall_64_logging_threads(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    result = run_script(f"""
        import logging, logging.config, threading, time
        config = {{"version": 1, "disable_existing_loggers": False,
                   "handlers": {{"chat": {{"class": "chatlog.ChatHandler", "url": {bot.url!r},
                                          "group_wait": 60, "close_timeout": 1.0, "level": "ERROR"}}}},
                   "loggers": {{"shop": {{"handlers": ["chat"], "level": "ERROR", "propagate": False}}}}}}
        logging.config.dictConfig(config)
        stop = threading.Event()
        def work(n):
            while not stop.is_set():
                logging.getLogger("shop").error("worker %d failed", n)
                time.sleep(0.001)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(64)]
        for thread in threads:
            thread.start()
        took = []
        for _ in range(15):
            began = time.perf_counter()
            logging.config.dictConfig(config)
            took.append(time.perf_counter() - began)
            time.sleep(0.02)
        stop.set()
        for thread in threads:
            thread.join()
        print("median_ms", sorted(took)[len(took) // 2] * 1000)
    """)
    median_ms = float(result.stdout.split("median_ms ")[1])
    # The target is < 20 ms (benchmarks/reconfigure.py: 8-10 ms at load 8 on 2 cores); the bound here
    # tolerates a loaded machine and still catches a client (TLS context) built per handler (53-60 ms).
    assert median_ms < 25, f"dictConfig() took {median_ms:.0f} ms (median) under 64 logging threads"


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)



def test_a_warning_raised_on_a_chatlog_thread_reaches_no_handler_when_warnings_are_captured(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler]
) -> None:
    import threading
    import warnings

    from chatlog.courier import mark_own_thread, unmark_own_thread

    bot = fake_platforms.add_bot("wecom")
    handler = make_handler(bot.url)
    app_side = Collect()
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.addHandler(app_side)

    def on_a_chatlog_thread() -> None:  # as a library chatlog calls would warn there
        mark_own_thread()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.warn("deprecated transport option", DeprecationWarning, stacklevel=1)
        finally:
            unmark_own_thread()

    try:
        thread = threading.Thread(target=on_a_chatlog_thread)
        thread.start()
        thread.join(5.0)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("the application's own warning", UserWarning, stacklevel=1)
    finally:
        warnings_logger.removeHandler(app_side)
        logging.captureWarnings(False)
    messages = [record.getMessage() for record in app_side.records]
    assert len(messages) == 1 and "the application's own warning" in messages[0], messages
    assert handler.stats().accepted == 0
