"""The fake platforms answer like Feishu/Lark, DingTalk and WeCom do, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from chatlog.testing import FakeBot, FakePlatforms, Fault, plugin
from tests.conftest import FakeClock

FEISHU_SECRET, FEISHU_TS, FEISHU_SIGN = "demo", 1599360473, "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
DING_SECRET, DING_TS_MS = "SECchatlogtestsecret0123456789abcdef", 1700000000000
DING_SIGN = "QfFIF+cK28PXCoecTMABvRDZaPE/XIsePtmbRmBvP4A="

# The project's fixture, taken into this module so the test below runs without the installed entry point.
fake_platforms = plugin.fake_platforms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(FEISHU_TS)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


def endpoint(bot: FakeBot) -> str:
    """The bot's URL without chatlog's own options, as chatlog would send it."""
    return bot.url.split("&secret=")[0].split("?secret=")[0].split("&keyword=")[0].split("?keyword=")[0]


def feishu_text(text: str, **extra: Any) -> dict[str, Any]:
    return {"msg_type": "text", "content": {"text": text}, **extra}


def feishu_signed(body: dict[str, Any], sign: str = FEISHU_SIGN, ts: int = FEISHU_TS) -> dict[str, Any]:
    return {"timestamp": str(ts), "sign": sign, **body}


def ding_text(text: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": text}}


def ding_signed_url(bot: FakeBot, ts_ms: int = DING_TS_MS, sign: str = quote_plus(DING_SIGN)) -> str:
    return f"{endpoint(bot)}&timestamp={ts_ms}&sign={sign}"


def wecom_text(text: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": text}}


def post(client: httpx.Client, url: str, body: object) -> Any:
    return client.post(url, json=body).json()


# --- Feishu / Lark -----------------------------------------------------------------------------------------


def test_feishu_signature_vector_is_accepted_with_the_current_answer(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    bot = fake.add_bot("feishu", token="t1", secret=FEISHU_SECRET)

    answer = post(client, endpoint(bot), feishu_signed(feishu_text("boom")))

    assert answer == {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}
    assert bot.texts() == ["boom"]


def test_feishu_wrong_missing_or_stale_signature_is_refused_with_19021(
    fake: FakePlatforms, client: httpx.Client, clock: FakeClock
) -> None:
    bot = fake.add_bot("feishu", secret=FEISHU_SECRET)
    wrong = post(client, endpoint(bot), feishu_signed(feishu_text("x"), sign=FEISHU_SIGN.replace("l", "L")))
    missing = post(client, endpoint(bot), feishu_text("x"))
    clock.now = FEISHU_TS + 3601
    stale = post(client, endpoint(bot), feishu_signed(feishu_text("x")))

    for answer in (wrong, missing, stale):
        assert answer["code"] == 19021
        assert answer["msg"] == "sign match fail or timestamp is not within one hour from current time"
    assert bot.messages == []
    assert [r.accepted for r in bot.received] == [False, False, False]


def test_feishu_dingtalk_style_signature_is_refused(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("feishu", secret=FEISHU_SECRET)
    key, message = FEISHU_SECRET.encode(), f"{FEISHU_TS}\n{FEISHU_SECRET}".encode()
    swapped = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()

    assert post(client, endpoint(bot), feishu_signed(feishu_text("x"), sign=swapped))["code"] == 19021


def test_feishu_keyword_must_be_in_text_not_in_links(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("feishu", keyword="alert")
    only_in_link = {
        "msg_type": "post",
        "content": {"post": {"zh_cn": {"content": [[{"tag": "a", "text": "x", "href": "https://h/alert"}]]}}},
    }

    assert post(client, endpoint(bot), only_in_link) == {
        "code": 19024,
        "msg": "Key Words Not Found",
        "data": {},
    }
    assert post(client, endpoint(bot), feishu_text("an alert"))["code"] == 0


def test_feishu_oversize_body_is_bad_request_then_19036_over_30kb(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    bot = fake.add_bot("feishu")
    just_fits = feishu_text("x" * (20 * 1024 - 60))
    assert len(json.dumps(just_fits)) <= 20 * 1024

    assert post(client, endpoint(bot), just_fits)["code"] == 0
    assert post(client, endpoint(bot), feishu_text("日" * 8000))["code"] == 9499  # 24 KB of UTF-8
    assert post(client, endpoint(bot), feishu_text("x" * 31 * 1024))["code"] == 19036


def test_feishu_malformed_bodies_get_bad_request_or_19002(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("feishu")

    assert client.post(endpoint(bot), content=b"{not json").json()["code"] == 9499
    assert post(client, endpoint(bot), ["a list"])["code"] == 9499
    assert post(client, endpoint(bot), {"content": {"text": "x"}})["code"] == 19002
    assert post(client, endpoint(bot), {"msg_type": "video", "content": {}})["code"] == 19002


def test_feishu_unknown_token_gets_19001(fake: FakePlatforms, client: httpx.Client) -> None:
    answer = post(client, f"{fake.base_url}/open-apis/bot/v2/hook/nobody", feishu_text("x"))

    assert answer == {
        "code": 19001,
        "msg": "param invalid: incoming webhook access token invalid",
        "data": {},
    }
    assert fake.all_received()[0].token == "nobody"


def test_feishu_sixth_request_in_one_second_is_rate_limited(
    fake: FakePlatforms, client: httpx.Client, clock: FakeClock
) -> None:
    bot = fake.add_bot("feishu")
    codes = [post(client, endpoint(bot), feishu_text(str(i)))["code"] for i in range(6)]
    clock.now += 1.0
    later = post(client, endpoint(bot), feishu_text("later"))

    assert codes == [0, 0, 0, 0, 0, 11232]
    assert post(client, endpoint(fake.add_bot("feishu")), feishu_text("other bot"))["code"] == 0
    assert later["code"] == 0
    assert len(bot.messages) == 6


def test_feishu_hundred_and_first_request_in_a_minute_is_rate_limited(
    fake: FakePlatforms, client: httpx.Client, clock: FakeClock
) -> None:
    bot = fake.add_bot("feishu")
    codes = []
    for i in range(101):
        clock.now += 0.5
        codes.append(post(client, endpoint(bot), feishu_text(str(i)))["code"])

    assert codes[:100] == [0] * 100
    assert codes[100] == 11232


def test_feishu_rate_limit_variants_and_switch(fake: FakePlatforms, client: httpx.Client) -> None:
    too_many = fake.add_bot("feishu", rate_code="9499")
    gateway = fake.add_bot("lark", rate_code=429)
    unlimited = fake.add_bot("feishu", rate_limit=False)
    for _ in range(5):
        client.post(endpoint(too_many), json=feishu_text("x"))
        client.post(endpoint(gateway), json=feishu_text("x"))

    answer = client.post(endpoint(too_many), json=feishu_text("x"))
    throttled = client.post(endpoint(gateway), json=feishu_text("x"))

    assert (answer.status_code, answer.json()) == (400, {"code": 9499, "msg": "too many request"})
    assert throttled.status_code == 429
    assert throttled.headers["x-ogw-ratelimit-reset"] == "2"
    assert all(post(client, endpoint(unlimited), feishu_text("x"))["code"] == 0 for _ in range(8))


def test_feishu_legacy_success_answer(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("feishu", legacy_success=True)

    assert post(client, endpoint(bot), feishu_text("x")) == {
        "Extra": None,
        "StatusCode": 0,
        "StatusMessage": "success",
    }
    assert bot.messages == [feishu_text("x")]


def test_feishu_card_2_refuses_note_and_action_but_card_1_accepts_them(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    bot = fake.add_bot("feishu")
    note = {"tag": "note", "elements": [{"tag": "plain_text", "content": "host web-1"}]}
    card_2 = {
        "schema": "2.0",
        "header": {"title": {"tag": "plain_text", "content": "t"}},
        "body": {"elements": [note]},
    }
    card_1 = {"header": {"title": {"tag": "plain_text", "content": "t"}}, "elements": [note]}

    refused = post(client, endpoint(bot), {"msg_type": "interactive", "card": card_2})
    accepted = post(client, endpoint(bot), {"msg_type": "interactive", "card": card_1})
    shapeless = post(client, endpoint(bot), {"msg_type": "interactive", "card": {"config": {}}})

    assert refused["code"] == 230099
    assert "200861" in refused["msg"]
    assert "note" in refused["msg"]
    assert accepted["code"] == 0
    assert shapeless["code"] == 9499


def test_lark_bot_uses_the_feishu_path_and_rules(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("lark", token="l1", secret="s", keyword="警告")

    assert (
        bot.url
        == f"{fake.base_url}/open-apis/bot/v2/hook/l1?secret=s&keyword=%E8%AD%A6%E5%91%8A&platform=lark"
    )
    assert post(client, endpoint(bot), feishu_text("警告"))["code"] == 19021


# --- DingTalk ----------------------------------------------------------------------------------------------


@pytest.fixture
def ding_clock(clock: FakeClock) -> FakeClock:
    clock.now = DING_TS_MS / 1000
    return clock


def test_dingtalk_signature_vector_is_accepted(
    fake: FakePlatforms, client: httpx.Client, ding_clock: FakeClock
) -> None:
    bot = fake.add_bot("dingtalk", secret=DING_SECRET)

    assert post(client, ding_signed_url(bot), ding_text("boom")) == {"errcode": 0, "errmsg": "ok"}
    assert bot.received[0].query["sign"] == DING_SIGN


def test_dingtalk_bad_signatures_get_their_310000_messages(
    fake: FakePlatforms, client: httpx.Client, ding_clock: FakeClock
) -> None:
    bot = fake.add_bot("dingtalk", secret=DING_SECRET)
    unquoted_plus = ding_signed_url(bot, sign=DING_SIGN)  # "+" arrives as a space
    feishu_style = quote_plus(
        base64.b64encode(hmac.new(f"{DING_TS_MS}\n{DING_SECRET}".encode(), b"", "sha256").digest())
    )
    cases = {
        unquoted_plus: "sign not match",
        ding_signed_url(bot, sign=feishu_style): "sign not match",
        f"{endpoint(bot)}&sign={quote_plus(DING_SIGN)}": "invalid timestamp",
        ding_signed_url(bot, ts_ms=DING_TS_MS - 3_600_001): "invalid timestamp",
        endpoint(bot): "invalid timestamp",
    }

    answers = {url: post(client, url, ding_text("x")) for url in cases}

    assert answers == {url: {"errcode": 310000, "errmsg": message} for url, message in cases.items()}
    assert bot.messages == []


def test_dingtalk_keyword_missing_is_refused(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("dingtalk", keyword="alert")
    link_only = {"msgtype": "link", "link": {"title": "t", "text": "x", "messageUrl": "https://h/alert"}}

    assert post(client, endpoint(bot), link_only) == {"errcode": 310000, "errmsg": "keywords not in content"}
    assert post(client, endpoint(bot), ding_text("alert: db down"))["errcode"] == 0


def test_dingtalk_body_over_20000_bytes_gets_460101(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("dingtalk")
    answer = post(client, endpoint(bot), ding_text("日" * 6700))  # 20,100 bytes of UTF-8

    assert answer == {
        "errcode": 460101,
        "errmsg": "description: body 大小不合法;solution:请保持大小在 20000bytes 以内;",
    }
    assert post(client, endpoint(bot), ding_text("日" * 6600))["errcode"] == 0


def test_dingtalk_unknown_token_and_unsupported_msgtype(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("dingtalk")

    unknown = post(client, f"{fake.base_url}/robot/send?access_token=nobody", ding_text("x"))
    image = post(client, endpoint(bot), {"msgtype": "image", "image": {}})

    assert unknown == {"errcode": 300001, "errmsg": "token is not exist"}
    assert image["errcode"] == 400105


def test_dingtalk_21st_message_in_a_minute_blocks_the_bot_for_ten_minutes(
    fake: FakePlatforms, client: httpx.Client, clock: FakeClock
) -> None:
    bot = fake.add_bot("dingtalk")
    codes = [post(client, endpoint(bot), ding_text(str(i)))["errcode"] for i in range(21)]
    clock.now += 61
    still_blocked = post(client, endpoint(bot), ding_text("after a minute"))
    clock.now += 600 - 61
    free_again = post(client, endpoint(bot), ding_text("after ten minutes"))

    assert codes == [0] * 20 + [410100]
    assert still_blocked["errcode"] == 410100
    assert free_again == {"errcode": 0, "errmsg": "ok"}
    assert len(bot.messages) == 21


def test_dingtalk_rate_code_130101_variant(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("dingtalk", rate_code=130101)
    for i in range(20):
        post(client, endpoint(bot), ding_text(str(i)))

    assert post(client, endpoint(bot), ding_text("x"))["errcode"] == 130101


# --- WeCom -------------------------------------------------------------------------------------------------


def test_wecom_unknown_key_gets_93000_with_the_long_message(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    answer = post(client, f"{fake.base_url}/cgi-bin/webhook/send?key=nobody", wecom_text("x"))

    assert answer["errcode"] == 93000
    assert answer["errmsg"].startswith("invalid webhook url, hint: [")
    assert answer["errmsg"].endswith("more info at https://open.work.weixin.qq.com/devtool/query?e=93000")


def test_wecom_content_checks(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("wecom", rate_limit=False)

    def code(body: object) -> int:
        return int(post(client, bot.url, body)["errcode"])

    assert code({"msgtype": "video"}) == 40008
    assert code(wecom_text("")) == 44004
    assert code(wecom_text("日" * 682 + "xx")) == 0  # 2048 bytes
    assert code(wecom_text("日" * 683)) == 45002  # 2049 bytes
    assert code({"msgtype": "markdown", "markdown": {"content": "x" * 4096}}) == 0
    too_long = post(client, bot.url, {"msgtype": "markdown", "markdown": {"content": "日" * 1366}})
    assert too_long["errcode"] == 40058
    assert too_long["errmsg"].startswith("markdown.content exceed max length 4096")
    assert len(bot.messages) == 2


def test_wecom_21st_request_in_a_minute_gets_45009_counting_failures(
    fake: FakePlatforms, client: httpx.Client, clock: FakeClock
) -> None:
    bot = fake.add_bot("wecom")
    failures = [post(client, bot.url, wecom_text(""))["errcode"] for _ in range(10)]
    successes = [post(client, bot.url, wecom_text(str(i)))["errcode"] for i in range(10)]
    limited = post(client, bot.url, wecom_text("21st"))
    clock.now += 60
    later = post(client, bot.url, wecom_text("a minute later"))

    assert failures == [44004] * 10
    assert successes == [0] * 10
    assert limited["errcode"] == 45009
    assert later == {"errcode": 0, "errmsg": "ok"}


# --- Faults ------------------------------------------------------------------------------------------------


def test_slow_fault_delays_a_normal_answer(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("wecom")
    bot.fail_next(1, Fault.slow(0.2))

    started = time.monotonic()
    answer = post(client, bot.url, wecom_text("late"))

    assert time.monotonic() - started >= 0.2
    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert bot.texts() == ["late"]


@pytest.mark.parametrize("fault", [Fault.hang(), Fault.slow(30.0)], ids=["hang", "slow"])
def test_stop_ends_hanging_and_slow_requests_within_a_second(client: httpx.Client, fault: Fault) -> None:
    fake = FakePlatforms()
    bot = fake.add_bot("feishu")
    bot.set_fault(fault)
    errors: list[Exception] = []

    def send() -> None:
        try:
            client.post(endpoint(bot), json=feishu_text("x"))
        except httpx.TransportError as error:
            errors.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    if fault.kind == "hang":
        assert len(bot.wait_received(1, timeout=2.0)) == 1
    else:
        time.sleep(0.1)  # a slow request is recorded only when it ends: give it time to arrive
    started = time.monotonic()
    fake.stop()
    fake.stop()
    sender.join(2.0)

    assert time.monotonic() - started < 1.0
    assert not sender.is_alive()
    assert len(errors) == 1
    assert [(r.accepted, r.status) for r in bot.received] in ([(False, 0)], [])
    assert bot.messages == []


def test_hang_is_ended_by_release_and_the_bot_then_answers(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("wecom")
    bot.fail_next(1, Fault.hang())
    releaser = threading.Timer(0.2, bot.release)
    releaser.start()

    with pytest.raises(httpx.TransportError):
        client.post(bot.url, json=wecom_text("x"))
    releaser.join()

    assert post(client, bot.url, wecom_text("y"))["errcode"] == 0
    assert [r.accepted for r in bot.received] == [False, True]


@pytest.mark.parametrize("fault", [Fault.garbage(), Fault.reset()], ids=["garbage", "reset"])
def test_broken_connections_make_httpx_raise(fake: FakePlatforms, client: httpx.Client, fault: Fault) -> None:
    bot = fake.add_bot("dingtalk")
    bot.fail_next(1, fault)

    with pytest.raises(httpx.TransportError):
        client.post(endpoint(bot), json=ding_text("x"))

    assert post(client, endpoint(bot), ding_text("after"))["errcode"] == 0
    broken = bot.received[0]
    assert (broken.accepted, broken.status, broken.answer) == (False, 0, None)


def test_status_fault_answers_its_code_and_headers_then_stops(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    bot = fake.add_bot("feishu")
    bot.fail_next(2, Fault.status(429, b"slow down", {"Retry-After": "3"}))

    first = client.post(endpoint(bot), json=feishu_text("1"))
    second = client.post(endpoint(bot), json=feishu_text("2"))
    third = client.post(endpoint(bot), json=feishu_text("3"))

    assert (first.status_code, first.headers["retry-after"], first.content) == (429, "3", b"slow down")
    assert second.status_code == 429
    assert third.json()["code"] == 0
    assert bot.texts() == ["3"]
    assert [r.status for r in bot.received] == [429, 429, 200]


def test_json_fault_answers_any_platform_code(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("dingtalk")
    bot.fail_next(1, Fault.json({"errcode": 310000, "errmsg": "sign not match"}))

    assert post(client, endpoint(bot), ding_text("x")) == {"errcode": 310000, "errmsg": "sign not match"}
    assert bot.received[0].answer == {"errcode": 310000, "errmsg": "sign not match"}
    assert bot.messages == []


def test_empty_fault_answers_200_without_a_body(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("wecom")
    bot.fail_next(1, Fault.empty())

    response = client.post(bot.url, json=wecom_text("x"))

    assert (response.status_code, response.content) == (200, b"")
    assert bot.received[0].accepted is False


def test_persistent_faults_per_bot_and_for_the_whole_server(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    bot = fake.add_bot("wecom")
    other = fake.add_bot("dingtalk")
    bot.set_fault(Fault.status(503))
    down = [client.post(bot.url, json=wecom_text("x")).status_code for _ in range(3)]
    bot.clear_fault()
    fake.set_fault(Fault.status(502))
    everything_down = client.post(endpoint(other), json=ding_text("x")).status_code
    fake.clear_fault()

    assert down == [503, 503, 503]
    assert everything_down == 502
    assert post(client, bot.url, wecom_text("up"))["errcode"] == 0
    assert post(client, endpoint(other), ding_text("up"))["errcode"] == 0


# --- Reading what was received -----------------------------------------------------------------------------


def test_wait_for_returns_as_soon_as_messages_arrive(fake: FakePlatforms) -> None:
    bot = fake.add_bot("wecom")
    sender = threading.Timer(0.1, lambda: httpx.post(bot.url, json=wecom_text("x")))
    sender.start()

    started = time.monotonic()
    messages = bot.wait_for(1, timeout=5.0)
    sender.join()

    assert time.monotonic() - started < 1.0
    assert messages == [wecom_text("x")]


def test_wait_for_gives_up_after_its_timeout_without_raising(fake: FakePlatforms) -> None:
    bot = fake.add_bot("wecom")

    started = time.monotonic()

    assert bot.wait_for(1, timeout=0.1) == []
    assert time.monotonic() - started < 0.5


def test_received_records_decoded_query_lowercase_headers_and_body(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    bot = fake.add_bot("dingtalk", keyword="a b")
    client.post(bot.url, json=ding_text("a b"), headers={"X-Trace": "1"})

    received = bot.received[0]
    assert received.method == "POST"
    assert received.path == "/robot/send"
    assert received.query == {"access_token": bot.token, "keyword": "a b"}
    assert received.headers["x-trace"] == "1"
    assert json.loads(received.body) == received.payload == ding_text("a b")
    assert (received.status, received.answer, received.accepted) == (
        200,
        {"errcode": 0, "errmsg": "ok"},
        True,
    )


def test_all_received_is_chronological_across_bots_and_unknown_tokens(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    feishu_bot, wecom_bot = fake.add_bot("feishu"), fake.add_bot("wecom")
    client.post(endpoint(feishu_bot), json=feishu_text("1"))
    client.post(f"{fake.base_url}/cgi-bin/webhook/send?key=nobody", json=wecom_text("2"))
    client.post(wecom_bot.url, json=wecom_text("3"))

    everything = fake.all_received()
    assert [(r.platform, r.accepted) for r in everything] == [
        ("feishu", True),
        ("wecom", False),
        ("wecom", True),
    ]
    assert [r.payload for r in everything] == [feishu_text("1"), wecom_text("2"), wecom_text("3")]


def test_texts_of_feishu_text_post_and_cards(fake: FakePlatforms, client: httpx.Client) -> None:
    bot = fake.add_bot("feishu", rate_limit=False)
    post_message = {
        "zh_cn": {
            "title": "Title",
            "content": [[{"tag": "text", "text": "see "}, {"tag": "a", "text": "link", "href": "h"}]],
        },
        "en_us": {"title": "ignored duplicate", "content": []},
    }
    card = {
        "header": {"title": {"tag": "plain_text", "content": "[ERROR] checkout"}, "template": "red"},
        "elements": [
            {"tag": "markdown", "content": "**ValueError** \u00d73"},
            {"tag": "div", "text": {"tag": "lark_md", "content": "in pay()"}},
            {"tag": "note", "elements": [{"tag": "plain_text", "content": "host web-1"}]},
        ],
    }
    for body in (
        feishu_text("plain"),
        {"msg_type": "post", "content": {"post": post_message}},
        {"msg_type": "interactive", "card": card},
    ):
        client.post(endpoint(bot), json=body)

    assert bot.texts() == [
        "plain",
        "Title\nsee link",
        "[ERROR] checkout\n**ValueError** \u00d73\nin pay()\nhost web-1",
    ]


def test_texts_of_dingtalk_and_wecom_messages(fake: FakePlatforms, client: httpx.Client) -> None:
    ding, wecom = fake.add_bot("dingtalk"), fake.add_bot("wecom")
    for body in (
        ding_text("plain"),
        {"msgtype": "markdown", "markdown": {"title": "T", "text": "#### body"}},
        {
            "msgtype": "actionCard",
            "actionCard": {"title": "A", "text": "card", "singleTitle": "Open", "singleURL": "u"},
        },
    ):
        client.post(endpoint(ding), json=body)
    client.post(wecom.url, json=wecom_text("plain"))
    client.post(wecom.url, json={"msgtype": "markdown", "markdown": {"content": "## md"}})

    assert ding.texts() == ["plain", "T\n#### body", "A\ncard"]
    assert wecom.texts() == ["plain", "## md"]


# --- Set-up ------------------------------------------------------------------------------------------------


def test_bot_urls_carry_only_configured_options_url_quoted(fake: FakePlatforms) -> None:
    base = fake.base_url

    assert fake.add_bot("feishu", token="f1").url == f"{base}/open-apis/bot/v2/hook/f1"
    assert fake.add_bot("lark", token="l1").url == f"{base}/open-apis/bot/v2/hook/l1?platform=lark"
    assert fake.add_bot("wecom", token="k1").url == f"{base}/cgi-bin/webhook/send?key=k1"
    ding = fake.add_bot("dingtalk", token="d1", secret="SEC+/=", keyword="a&b")
    assert ding.url == f"{base}/robot/send?access_token=d1&secret=SEC%2B%2F%3D&keyword=a%26b"
    assert (ding.platform, ding.token, ding.secret, ding.keyword) == ("dingtalk", "d1", "SEC+/=", "a&b")


def test_add_bot_refuses_impossible_settings(fake: FakePlatforms) -> None:
    fake.add_bot("feishu", token="same")

    with pytest.raises(ValueError, match="unknown platform"):
        fake.add_bot("matrix")
    with pytest.raises(ValueError, match="exists already"):
        fake.add_bot("lark", token="same")
    with pytest.raises(ValueError, match="no secret"):
        fake.add_bot("wecom", secret="s")
    with pytest.raises(ValueError, match="rate_code"):
        fake.add_bot("dingtalk", rate_code=11232)
    with pytest.raises(ValueError, match="token must be"):
        fake.add_bot("feishu", token="a/b")


def test_unknown_paths_get_404_and_are_not_recorded(fake: FakePlatforms, client: httpx.Client) -> None:
    assert client.post(f"{fake.base_url}/elsewhere", json={}).status_code == 404
    assert fake.all_received() == []


def test_plugin_fixture_gives_a_running_server(fake_platforms: FakePlatforms, client: httpx.Client) -> None:
    bot = fake_platforms.add_bot("wecom")

    assert post(client, bot.url, wecom_text("x"))["errcode"] == 0


def test_plugin_stops_the_server_after_the_test(client: httpx.Client) -> None:
    running = plugin.running_fake_platforms()
    fake = next(running)
    base_url = fake.base_url
    assert client.get(f"{base_url}/api/messages").status_code == 200

    running.close()

    with pytest.raises(httpx.TransportError):
        client.get(f"{base_url}/api/messages")  # also over the kept-alive connection
