"""The ``chatlog`` command: send one message, run the demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chatlog.cli import main
from chatlog.testing import PLATFORM_RULES, FakePlatforms


def test_send_delivers_one_message_and_prints_the_answer(
    fake_platforms: FakePlatforms, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = fake_platforms.add_bot("dingtalk", secret="SECcli0123456789", keyword="deploy")
    assert main(["send", bot.url, "deploy finished"]) == 0
    out = capsys.readouterr().out
    assert "sent to dingtalk://***" in out or "sent to http://127.0.0.1" in out
    assert '"errcode":0' in out.replace(" ", "")
    assert bot.texts() and "deploy finished" in bot.texts()[0]
    assert bot.token not in out and "SECcli" not in out


def test_send_explains_a_refusal_and_exits_1(
    fake_platforms: FakePlatforms, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = fake_platforms.add_bot("feishu", secret="right-secret")
    assert main(["send", bot.url, "hello", "--secret", "wrong-secret"]) == 1
    err = capsys.readouterr().err
    assert "sign" in err.lower() and "wrong-secret" not in err and bot.token not in err


def test_send_with_a_bad_url_exits_2_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "slack://nope", "hello"]) == 2
    assert "e.g." in capsys.readouterr().err


def test_demo_prints_each_alert_and_exact_stats() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatlog", "demo", "--seconds", "1.5", "--records", "300"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("· accepted") >= 3 and "REFUSED" not in out
    assert "Traceback" in out and "CRITICAL" in out
    assert out.count("accepted=301, dropped=0, pending=0, delivered_records=301") == len(PLATFORM_RULES)
    for secret in ("demo-feishu-secret", "SECdemo0123456789abcdef"):
        assert secret not in out and secret not in result.stderr


def test_serve_runs_the_fake_platforms_with_an_inbox_until_interrupted() -> None:
    import json
    import signal
    import urllib.request

    server = subprocess.Popen([sys.executable, "-m", "chatlog", "serve", "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(1 + len(PLATFORM_RULES))]  # banner, one URL per bot
        base = lines[0].split(" at ")[1].split("/ ")[0]
        wecom_url = next(line.split()[1] for line in lines if line.strip().startswith("wecom"))
        assert main(["send", wecom_url, "hello inbox"]) == 0
        with urllib.request.urlopen(f"{base}/api/messages", timeout=5) as answer:
            inbox = json.load(answer)
        assert "hello inbox" in json.dumps(inbox, ensure_ascii=False)
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
