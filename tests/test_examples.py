"""Every example in ``examples/`` run as a process against a fake bot; the README kept equal to them.

Each test points ``CHATLOG_URL`` at a bot of the local fake platforms, runs the example the way its
README section says (servers: started, sent a request, stopped the way one stops them), and checks
the alert that arrived.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from chatlog.testing import FakeBot, FakePlatforms

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def needs(*modules: str) -> pytest.MarkDecorator:
    """Skip when a framework of the dev extra is missing (``pip install -e '.[dev]'`` installs it);
    in CI (``CI`` set) never skip: the test then fails on the missing import."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    skip = bool(missing) and not os.environ.get("CI")
    return pytest.mark.skipif(skip, reason=f"needs {', '.join(missing)} (the dev extra)")


def example_env(bot: FakeBot, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(CHATLOG_URL=bot.url, PYTHONUNBUFFERED="1", **extra)
    return env


def run_example(bot: FakeBot, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], cwd=EXAMPLES, env=example_env(bot),
        capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def sigint_reaches_children() -> Iterator[None]:
    """A shell starts background jobs with SIGINT ignored, and children inherit that: undo it for Ctrl-C."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def serving(
    bot: FakeBot, args: list[str], port: int, log: Path, *, stop: signal.Signals, cwd: Path = EXAMPLES,
    **env: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server example until the block ends, then stop it with `stop` and wait for it to exit."""
    with log.open("wb") as out, sigint_reaches_children():
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=example_env(bot, **env),
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(proc, port, log)
        yield proc
        proc.send_signal(stop)
        proc.wait(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the example exited with {proc.returncode}:\n{log.read_text()}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    pytest.fail(f"the example did not listen on port {port} within {START_TIMEOUT_S} s:\n{log.read_text()}")


def client() -> httpx.Client:
    return httpx.Client(timeout=10.0, trust_env=False, headers={"Connection": "close"})


def the_alert(bot: FakeBot) -> str:
    texts = bot.texts()
    assert len(texts) == 1, [r.answer for r in bot.received]
    return texts[0]


# ---- scripts ---------------------------------------------------------------------------------------


def test_cron_script_delivers_its_errors_before_it_exits(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECcron0123456789", keyword="alert")
    run_example(bot, "script.py")
    text = the_alert(bot)
    assert "nightly-export" in text and "×3" in text and "export failed for customer 1" in text
    assert "ConnectionError: warehouse API timed out" in text
    assert "customer 3" not in text  # one group, one sample


@needs("yaml")
def test_dictconfig_from_yaml_alerts_with_the_records_extra_fields(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("feishu", secret="feishu-signing-secret")
    run_example(bot, "dictconfig.py")
    text = the_alert(bot)
    assert "billing" in text and "staging" in text and "×3" in text
    assert "invoice INV-1001 could not be rendered" in text and "customer=acme" in text
    assert "invoice queue is slow" not in text  # WARNING: below the handler's level


@needs("loguru")
def test_loguru_app_alerts_with_traceback_and_bound_fields_at_exit(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("wecom")
    run_example(bot, "loguru_app.py")
    text = the_alert(bot)
    assert "checkout" in text and "×2" in text and "charge failed for order 2" in text
    assert "order=2" in text and "customer=acme" in text
    assert "ValueError: card declined: 250.00 is over the limit" in text


@needs("celery")
def test_celery_task_failures_arrive_as_one_group_per_task_with_counts(fake_platforms: FakePlatforms) -> None:
    bot = fake_platforms.add_bot("feishu", secret="feishu-signing-secret")
    run_example(bot, "celery_app.py", timeout=90.0)
    text = the_alert(bot)
    assert "billing-worker" in text
    charge, ship = text.index("celery_app.charge"), text.index("celery_app.ship")
    assert "×3" in text[:charge] and "ValueError('card declined for order 1')" in text
    assert "TimeoutError('carrier API timed out for order 4')" in text[ship:]
    assert "card declined for order 2" not in text  # three failures of one task: one group
    # the where line is the task's own frame, not celery/app/trace.py
    assert re.search(r"celery_app\.py:39 in charge \(logged at \S*celery\S*trace\.py:\d+\)", text), text


# ---- servers ---------------------------------------------------------------------------------------


@needs("flask")
def test_flask_unhandled_exception_and_app_logger_error_arrive(
    fake_platforms: FakePlatforms, tmp_path: Path
) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECflask0123456789")
    port = free_port()
    with serving(bot, ["flask_app.py"], port, tmp_path / "flask.log", stop=signal.SIGINT, PORT=str(port)), \
            client() as http:
        assert http.get(f"http://127.0.0.1:{port}/orders/42").status_code == 500
        assert http.get(f"http://127.0.0.1:{port}/orders/3").status_code == 200
    text = the_alert(bot)  # delivered at Ctrl-C, well before group_wait
    assert "shop-web" in text and "order 42 has no customer" in text
    assert "Exception on /orders/42 [GET]" in text and "LookupError: order 42 not found" in text
    # the where line is the view's own frame, not flask/app.py
    assert re.search(r"flask_app\.py:28 in show_order \(logged at \S*flask\S*app\.py:\d+\)", text), text


@needs("fastapi", "uvicorn")
def test_fastapi_uvicorn_errors_and_exception_handler_errors_arrive(
    fake_platforms: FakePlatforms, tmp_path: Path
) -> None:
    bot = fake_platforms.add_bot("feishu", secret="feishu-signing-secret")
    port = free_port()
    with serving(bot, ["fastapi_app.py"], port, tmp_path / "fastapi.log", stop=signal.SIGTERM,
                 PORT=str(port)), client() as http:
        assert http.get(f"http://127.0.0.1:{port}/orders/42").status_code == 500
        assert http.get(f"http://127.0.0.1:{port}/orders/7/pay").status_code == 402
    text = the_alert(bot)
    assert "orders-api" in text and "Exception in ASGI application" in text
    assert "ZeroDivisionError" in text
    # the where line is the endpoint's own frame, not uvicorn's protocol code
    assert re.search(r"fastapi_app\.py:\d+ in show_order \(logged at \S*uvicorn\S*\.py:\d+\)", text), text
    assert "payment declined for order 7" in text and "path=/orders/7/pay" in text


@needs("django")
def test_django_500_alert_shows_the_request_path_and_user(
    fake_platforms: FakePlatforms, tmp_path: Path
) -> None:
    bot = fake_platforms.add_bot("wecom")
    port = free_port()
    args = ["manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with serving(bot, args, port, tmp_path / "django.log", stop=signal.SIGINT,
                 cwd=EXAMPLES / "django_project"), client() as http:
        assert http.get(f"http://127.0.0.1:{port}/orders/42/").status_code == 500
        assert http.get(f"http://127.0.0.1:{port}/orders/3/").status_code == 200
    text = the_alert(bot)
    assert "shop" in text and "Internal Server Error: /orders/42/" in text
    assert "user=AnonymousUser" in text and "status_code=500" in text
    assert "LookupError: order 42 not found" in text
    # the where line is the view's own frame, not django/utils/log.py
    assert re.search(r"views\.py:6 in show_order \(logged at \S*django\S*log\.py:\d+\)", text), text


@needs("gunicorn")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="gunicorn needs os.fork")
def test_gunicorn_each_forked_worker_delivers_its_own_alerts(
    fake_platforms: FakePlatforms, tmp_path: Path
) -> None:
    bot = fake_platforms.add_bot("feishu", secret="feishu-signing-secret")
    port = free_port()
    args = ["-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    workers: set[str] = set()
    # XDG_RUNTIME_DIR: where gunicorn ≥ 24 puts its control socket, so parallel runs do not share one.
    with serving(bot, args, port, tmp_path / "gunicorn.log", stop=signal.SIGTERM,
                 XDG_RUNTIME_DIR=str(tmp_path)), client() as http, ThreadPoolExecutor(4) as pool:
        url = f"http://127.0.0.1:{port}/orders/"
        deadline, order = time.monotonic() + START_TIMEOUT_S, 0
        # The kernel picks the worker, and the second may still be booting: ask until both answered.
        while len(workers) < 2 and time.monotonic() < deadline:
            answers = pool.map(http.get, [f"{url}{order + i}" for i in range(4)])
            workers |= {a.text.split(":")[0].removeprefix("worker ") for a in answers}
            order += 4
            time.sleep(0.05)
        assert len(workers) == 2, workers
    texts = bot.texts()  # each worker delivered what it held when the master stopped it
    for pid in workers:
        assert any(f"pid {pid}" in t and "payment provider rejected order" in t for t in texts), (pid, texts)


# ---- README ----------------------------------------------------------------------------------------

README_REGION = re.compile(r"<!-- integrations:start -->(.*?)<!-- integrations:end -->", re.S)
CODE_BLOCK = re.compile(r"^```(python|yaml)\n(.*?)^```", re.S | re.M)
EXAMPLE_PATH = re.compile(r"examples/[\w./-]+\.(?:py|yaml)")


def comparable(code: str) -> str:
    """Code without the demo-only ``_local`` lines, trailing spaces and runs of blank lines."""
    lines = [line.rstrip() for line in code.splitlines() if "_local" not in line]
    return "\n" + re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


def readme_blocks() -> list[tuple[str, str]]:
    """(example path cited last before the block, block) for every python/yaml block of the region."""
    region = README_REGION.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert region, "README.md lost its <!-- integrations:start/end --> markers"
    text = region.group(1)
    blocks = []
    for block in CODE_BLOCK.finditer(text):
        cited = EXAMPLE_PATH.findall(text[: block.start()])
        assert cited, f"no examples/... file is named before this README block:\n{block.group(2)}"
        blocks.append((cited[-1], block.group(2)))
    return blocks


def test_readme_integration_blocks_are_the_example_code() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 8
    for path, block in blocks:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert comparable(block) in comparable(source), f"README block drifted from {path}:\n{block}"


def test_readme_shows_every_example() -> None:
    cited = {path for path, _ in readme_blocks()}
    examples = {f"examples/{p.name}" for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    examples.discard("examples/gunicorn_app.py")  # the app gunicorn serves; the config is the example
    assert examples | {"examples/logging.yaml", "examples/django_project/shop/settings.py"} <= cited
