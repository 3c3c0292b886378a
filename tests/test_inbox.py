"""The inbox's JSON API and event stream: every request with who it was for, who it notifies, and why a
refused one was refused — over real HTTP against the fake platforms."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatlog import ChatHandler
from chatlog.testing import FakePlatforms
from chatlog.testing.inbox import notified

STATIC_DIR = Path(__file__).resolve().parent.parent / "chatlog" / "testing" / "inbox_static"


@pytest.fixture
def fake() -> Iterator[FakePlatforms]:
    with FakePlatforms() as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


def inbox(client: httpx.Client, fake: FakePlatforms, since: int = 0) -> dict[str, Any]:
    answer = client.get(f"{fake.base_url}/api/messages", params={"since": since})
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def log_one_error(make_handler: Callable[..., ChatHandler], app_logger: logging.Logger, *urls: str,
                  **options: Any) -> None:
    handlers = [make_handler(url, **options) for url in urls]
    for handler in handlers:
        app_logger.addHandler(handler)
    app_logger.error("payment failed for order 4711")
    for handler in handlers:
        handler.close()


def test_inbox_lists_every_request_with_its_receiver_and_unknown_tokens_too(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    bot = fake.add_bot("wecom")
    client.post(bot.url, json={"msgtype": "text", "text": {"content": "first"}})
    client.post(f"{fake.base_url}/robot/send?access_token=nobody", json={"msgtype": "text",
                                                                        "text": {"content": "lost"}})

    shown = inbox(client, fake)

    assert [m["text"] for m in shown["messages"]] == ["first", ""]
    first, lost = shown["messages"]
    assert (first["receiver"], first["accepted"], first["known"]) == (f"wecom/{bot.token}", True, True)
    assert (lost["receiver"], lost["accepted"], lost["known"]) == ("dingtalk/nobody", False, False)
    assert lost["answer"]["errcode"] == 300001 and "robot's webhook URL" in lost["explanation"]
    kinds = {r["key"]: r["kind"] for r in shown["receivers"]}
    assert kinds == {f"wecom/{bot.token}": "bot", "dingtalk/nobody": "unknown"}
    assert len(fake.all_received()) == 2  # reading the inbox is not recorded as a request


def test_refused_messages_carry_the_platform_answer_and_chatlogs_explanation(
    fake: FakePlatforms, client: httpx.Client, make_handler: Callable[..., ChatHandler],
    app_logger: logging.Logger,
) -> None:
    feishu = fake.add_bot("feishu", secret="right-secret")
    ding = fake.add_bot("dingtalk", keyword="alert")
    log_one_error(make_handler, app_logger, feishu.url.replace("right-secret", "wrong-secret"),
                  ding.url.split("&keyword=")[0] + "&keyword=other")

    refused = {m["platform"]: m for m in inbox(client, fake)["messages"]}

    assert refused["feishu"]["answer"]["code"] == 19021
    assert "signature does not match" in refused["feishu"]["explanation"]
    assert "stops sending to this destination" in refused["feishu"]["explanation"]
    assert refused["dingtalk"]["answer"]["errcode"] == 310000
    assert "keyword" in refused["dingtalk"]["explanation"]
    assert not any(m["accepted"] for m in refused.values())


def test_rate_limited_message_is_explained_as_sent_again_later(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    bot = fake.add_bot("wecom")
    for _ in range(21):  # WeCom takes 20 a minute
        client.post(bot.url, json={"msgtype": "text", "text": {"content": "x"}})

    last = inbox(client, fake)["messages"][-1]

    assert (last["accepted"], last["answer"]["errcode"]) == (False, 45009)
    assert "sends them again later" in last["explanation"]


def test_app_messages_are_listed_per_recipient_without_the_app_secret(
    fake: FakePlatforms, client: httpx.Client, make_handler: Callable[..., ChatHandler],
    app_logger: logging.Logger,
) -> None:
    app = fake.add_app(recipients={"open_id": ["ou_a", "ou_b"]}, hidden={"open_id": ["ou_out"]})
    log_one_error(make_handler, app_logger, app.url("open_id", ["ou_a", "ou_b", "ou_out"]))

    shown = inbox(client, fake)

    sent = [m for m in shown["messages"] if m["kind"] == "message" and m["accepted"]]
    assert sorted(m["recipient"] for m in sent) == ["ou_a", "ou_b"]
    outside = [m for m in shown["messages"] if m["recipient"] == "ou_out"]
    assert outside and not any(m["accepted"] for m in outside)
    assert all(m["answer"]["code"] == 230013 for m in outside)
    assert all("availability range" in m["explanation"] and "other recipients still get alerts"
               in m["explanation"] for m in outside)
    assert all(m["content"]["header"]["template"] == "red" for m in sent)  # the card, decoded
    assert all("payment failed for order 4711" in m["text"] for m in sent)
    app_entry = next(r for r in shown["receivers"] if r["kind"] == "app")
    assert app_entry["recipients"] == ["ou_a", "ou_b"]
    assert app.app_secret not in json.dumps([m for m in shown["messages"]])


def test_since_returns_only_the_newer_messages(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("wecom")
    for text in ("one", "two", "three"):
        client.post(bot.url, json={"msgtype": "text", "text": {"content": text}})

    newer = inbox(client, fake, since=2)

    assert newer["last"] == 3 and [m["text"] for m in newer["messages"]] == ["three"]


def test_event_stream_pushes_a_new_message_as_it_arrives(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("dingtalk")
    deadline = time.monotonic() + 10
    with client.stream("GET", f"{fake.base_url}/api/events", params={"since": 0}) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        client.post(bot.url, json={"msgtype": "text", "text": {"content": "live one"}})
        data = ""
        for line in events.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: "):]
                break
            assert time.monotonic() < deadline, "no event within 10 s"
    update = json.loads(data)
    assert [m["text"] for m in update["messages"]] == ["live one"] and update["last"] == 1


def test_page_is_bundled_and_allows_only_its_own_scripts(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("wecom")
    client.post(bot.url, json={"msgtype": "text", "text": {"content": "<script>alert(1)</script>"}})

    page = client.get(f"{fake.base_url}/")
    linked = re.findall(r'(?:src|href)="(/inbox/[^"]+)"', page.text)
    served = {path: client.get(f"{fake.base_url}{path}") for path in linked}

    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "alert(1)" not in page.text  # received text reaches the page only as JSON
    assert sorted(path.rpartition("/")[2] for path in linked) == sorted(
        file.name for file in STATIC_DIR.iterdir() if file.name != "index.html")
    for path, answer in served.items():
        assert answer.status_code == 200
        assert answer.text == (STATIC_DIR / path.rpartition("/")[2]).read_text(encoding="utf-8")
    for file in STATIC_DIR.iterdir():
        text = file.read_text(encoding="utf-8")
        remote = re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)
        assert not remote, f"{file.name} loads something remote"
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "eval(" not in text
    style = served["/inbox/inbox.css"].text
    assert '"Noto Sans CJK SC"' in style and '"Microsoft YaHei"' in style


@pytest.mark.parametrize(
    ("platform", "payload", "who"),
    [
        ("feishu", {"msg_type": "interactive", "card": {"elements": [
            {"tag": "markdown", "content": "<at id=all></at> <at id=ou_x></at>"}]}}, ["all", "ou_x"]),
        ("feishu", {"msg_type": "text", "content": {"text": '<at user_id="ou_y"></at> hi'}}, ["ou_y"]),
        ("dingtalk", {"msgtype": "markdown", "markdown": {"title": "t", "text": "x @13800000000"},
                      "at": {"atMobiles": ["13800000000", "13900000000"], "isAtAll": False}},
         ["13800000000"]),
        ("dingtalk", {"msgtype": "text", "text": {"content": "x"}, "at": {"isAtAll": True}}, ["all"]),
        ("wecom", {"msgtype": "markdown", "markdown": {"content": "x <@zhangsan>"}}, ["zhangsan"]),
        ("wecom", {"msgtype": "text", "text": {"content": "x", "mentioned_list": ["@all"]}}, ["all"]),
        ("wecom", {"msgtype": "markdown", "markdown": {"content": "x <@all> <@13800000000>"}}, []),
        ("no-such-platform", {"text": "<@all>"}, []),
        ("feishu-app", {"msg_type": "interactive", "content": json.dumps({"elements": [
            {"tag": "markdown", "content": "<at id=all></at>"}]})}, ["all"]),
    ],
)
def test_notified_is_what_each_platforms_fake_decides(
    platform: str, payload: dict[str, Any], who: list[str]
) -> None:
    assert notified(platform, payload) == who
