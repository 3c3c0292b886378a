"""The ``chatlog`` command: its help and version, send one message, list destinations, run the demo."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys

import pytest

import chatlog
from chatlog._demo import Logged, one_per_record
from chatlog.cli import main
from chatlog.destinations import platform_classes
from chatlog.platforms._base import COMMON_OPTIONS, Destination, Option
from chatlog.testing import PLATFORM_RULES, FakePlatforms


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.strip() == f"chatlog {chatlog.__version__}"
    assert chatlog.__version__ == importlib.metadata.version("chatlog-alerts")


def test_help_is_plain_text_with_every_command_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and "`" not in out
    for command in ("send", "urls", "demo", "serve"):
        assert re.search(rf"^    {command} ", out, re.M), command
    assert "chatlog urls" in out and "--version" in out


def test_urls_lists_every_form_and_option_of_every_registered_platform(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["urls"]) == 0
    out = capsys.readouterr().out
    classes = platform_classes()
    assert len(classes) >= 4
    for cls in classes:
        assert cls.example in out
        for title, forms in cls.forms:
            assert title in out and all(form in out for form in forms)
        for option in cls.options:
            assert f"{option.name}=" in out and option.help in out
    for option in COMMON_OPTIONS:
        assert f"{option.name}=" in out and option.help in out


def test_urls_shows_a_newly_registered_platform_without_a_cli_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Pigeon(Destination):  # registers itself, as a module under chatlog/platforms/ would
        names = ("pigeon",)
        example = "pigeon://COOP?secret=S"
        forms = (("Pigeon loft", ("https://loft.example/coop/COOP", "pigeon://COOP")),)
        options = (Option("coop", "which coop, e.g. coop=north"),)

    try:
        assert main(["urls"]) == 0
    finally:
        Destination.registry.remove(Pigeon)
    out = capsys.readouterr().out
    section = out.split("Pigeon loft\n", 1)[1].split("\n\n", 1)[0]
    assert section.splitlines() == [
        "  https://loft.example/coop/COOP",
        "  pigeon://COOP",
        "  e.g. pigeon://COOP?secret=S",
        "  coop=              which coop, e.g. coop=north",
    ]


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


def _demo(*options: str) -> str:
    result = subprocess.run([sys.executable, "-m", "chatlog", "demo", *options],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for rules in PLATFORM_RULES:  # the demo's bots are set up as each fake declares
        for secret in (rules.demo.get("secret"), rules.demo.get("keyword")):
            if isinstance(secret, str) and len(secret) > 6:
                assert secret not in result.stdout and secret not in result.stderr
    return result.stdout


def test_demo_prints_one_line_per_message_and_a_summary_that_adds_up() -> None:
    out = _demo("--seconds", "1.5", "--records", "300")
    assert "300 records over 1.5 s" in out.splitlines()[0]
    log = [line for line in out.splitlines() if re.match(r"  \d\d:\d\d:\d\d  ", line)]
    platforms = [rules.names[0] for rules in PLATFORM_RULES]
    for platform in platforms:
        sent = [line for line in log if line.split()[1] == platform]
        assert 1 <= len(sent) <= 6 and all(" accepted " in line for line in sent), sent
    assert "CRITICAL" in out and "REFUSED" not in out
    # the last message of each bot: the most severe level, then the total of every level, then the split
    assert re.search(r"CRITICAL · [\d,]+ records · checkout · demo — 1 CRITICAL, [\d,]+ ERROR", out), out
    assert "Traceback" not in out and "**" not in out and "<font" not in out  # bodies only with --verbose
    assert len(out.splitlines()) <= 45  # one screen
    # platform, records in, messages out, refused, then one message per record: sent / refused
    rows = {m[0]: m for m in re.findall(r"^  (\S+) +300 +(\d+) +0   300 / (\d+)", out, re.M)}
    assert sorted(rows) == sorted(platforms), out
    for platform, messages, naive_refused in rows.values():
        # refused for sending too fast, not for what a message holds: the first ones get through
        assert int(messages) <= 6 and 200 < int(naive_refused) < 300, (platform, out)
    # DingTalk and WeCom take 20 messages a minute; DingTalk then blocks the bot for 10 minutes.
    assert rows["dingtalk"][2] == "280" and rows["wecom"][2] == "280"
    assert re.search(r"^  dingtalk .* then blocked 10 more min$", out, re.M)
    assert "Every record was delivered" in out
    assert 'export CHATLOG_URL="' in out and "chatlog urls" in out
    # one mute round trip: alert → "mute #id 1h" typed in the chat → the bot's answer → the group quiet
    typed = re.search(r"^  ou_alice  types: mute #([0-9a-f]{4}) 1h$", out, re.M)
    assert typed is not None, out
    group = typed.group(1)
    assert re.search(rf"^  alert     #{group} payment pay_000123 declined by the provider$", out, re.M)
    answered = rf"^  bot       Muted #{group} until .* \(by ou_alice\)\. Undo: unmute #{group}$"
    assert re.search(answered, out, re.M)
    quiet = rf"^  alert     #([0-9a-f]{{4}}) cache miss storm .* and #{group} ×3 muted by ou_alice"
    later = re.search(quiet, out, re.M)
    assert later is not None and later.group(1) != group and "payment" not in later.group(0)
    assert "presses Ack; the card now says: ✅ Acknowledged by @ou_alice" in out
    assert "stats()   accepted 5 = delivered 2 + dropped 0 + pending 0 + muted 3" in out


def test_demo_verbose_prints_each_message_in_full() -> None:
    out = _demo("--seconds", "0.5", "--records", "40", "--verbose")
    assert out.count("· accepted") >= 3
    assert "Traceback" in out and "ConnectionError" in out
    assert re.search(r"^  wecom +40 ", out, re.M)


def test_serve_runs_the_fake_platforms_with_an_inbox_until_interrupted() -> None:
    import json
    import signal
    import urllib.request

    server = subprocess.Popen([sys.executable, "-m", "chatlog", "serve", "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline()]
        while "export CHATLOG_URL" not in lines[-1] and len(lines) < 40:  # the banner ends with it
            lines.append(server.stdout.readline())
        base = lines[0].split(" at ")[1].split("/ ")[0]
        wecom_url = next(line.split()[1] for line in lines if line.strip().startswith("wecom"))
        assert main(["send", wecom_url, "hello inbox"]) == 0
        with urllib.request.urlopen(f"{base}/api/messages", timeout=5) as answer:
            inbox = json.load(answer)
        assert "hello inbox" in json.dumps(inbox, ensure_ascii=False)
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0


def test_one_message_per_record_is_judged_by_each_platforms_rate_limits(
    fake_platforms: FakePlatforms,
) -> None:
    dingtalk = fake_platforms.add_bot("dingtalk", secret="SECjudge0123456789")
    feishu = fake_platforms.add_bot("feishu")
    burst = [Logged(1000.0 + i, f"ERROR demo: order {i} failed") for i in range(30)]  # 1 a second
    calm = [Logged(1000.0 + 4 * i, f"ERROR demo: order {i} failed") for i in range(30)]  # 15 a minute
    at_dingtalk = one_per_record(dingtalk, burst)
    assert (at_dingtalk.sent, at_dingtalk.refused) == (30, 10)  # 20 a minute, then blocked
    assert 500 <= at_dingtalk.blocked_s <= 600
    assert one_per_record(dingtalk, calm).refused == 0
    assert one_per_record(feishu, burst).refused == 0  # 5 a second and 100 a minute
    assert one_per_record(feishu, [Logged(1000.0, "ERROR x")] * 8).refused == 3
