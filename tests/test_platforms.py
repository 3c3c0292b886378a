"""Platform plumbing: signatures, answers, destination strings, secrets kept out of sight, sending."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlog.platforms import dingtalk, feishu, wecom
from chatlog.platforms._base import Destination, Outcome, Target

Handler = Callable[[httpx.Request], httpx.Response]


def target(url: str, platform: str, **options: str) -> Target:
    """A Target as the lead's parser builds it: options taken out of the query, the rest left in it."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    options_in_query = [name for name in ("secret", "keyword", "base_url") if name in query]
    taken: dict[str, str] = {name: query.pop(name) for name in options_in_query}
    taken.update(options)
    return Target(url=parts, query=query, platform=platform, **taken)


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.Response(status, content=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


# --- signatures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("secret", "timestamp", "expected"), [
    ("demo", 1599360473, "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="),
    ("chatlog-test-secret", 1700000000, "Yukgf7rSWDjsowFeM3/zj/YjiYoG53IYiWmSnyq8wMY="),
])
def test_feishu_signature_matches_the_published_vectors(secret: str, timestamp: int, expected: str) -> None:
    assert feishu.sign(secret, timestamp) == expected


@pytest.mark.parametrize(("secret", "timestamp_ms", "expected"), [
    ("SECchatlogtestsecret0123456789abcdef", 1700000000000, "QfFIF+cK28PXCoecTMABvRDZaPE/XIsePtmbRmBvP4A="),
    ("this is secret", 1577262236757, "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="),
])
def test_dingtalk_signature_matches_the_published_vectors(secret: str, timestamp_ms: int,
                                                          expected: str) -> None:
    assert dingtalk.sign(secret, timestamp_ms) == expected


def test_dingtalk_url_quoted_signature_matches_the_published_vector() -> None:
    signature = dingtalk.sign("SECchatlogtestsecret0123456789abcdef", 1700000000000)
    assert urllib.parse.quote_plus(signature) == "QfFIF%2BcK28PXCoecTMABvRDZaPE%2FXIsePtmbRmBvP4A%3D"


# --- sending (a MockTransport at the edge; the fake platforms come later) -------------------------------


class Recorder:
    """Answers requests in turn and keeps what was sent."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def body(self, index: int = -1) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.requests[index].content)
        return loaded


FEISHU_OK = {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}
FEISHU_BAD_SIGN = {"code": 19021,
                   "msg": "sign match fail or timestamp is not within one hour from current time"}


def test_feishu_send_signs_in_the_body_at_the_clock_time() -> None:
    bot = feishu.Feishu("TOKEN", secret="chatlog-test-secret", clock=lambda: 1700000000.9)
    recorder = Recorder(answer(FEISHU_OK))
    outcome = bot.send(recorder.client(), {"msg_type": "text", "content": {"text": "hi"}})
    assert outcome.ok
    sent = recorder.body()
    assert sent["timestamp"] == "1700000000"
    assert sent["sign"] == "Yukgf7rSWDjsowFeM3/zj/YjiYoG53IYiWmSnyq8wMY="
    assert sent["content"] == {"text": "hi"}
    assert str(recorder.requests[0].url) == "https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN"


def test_feishu_send_leaves_the_callers_payload_unsigned() -> None:
    bot = feishu.Feishu("TOKEN", secret="s3cret")
    payload = {"msg_type": "text", "content": {"text": "hi"}}
    bot.send(Recorder(answer(FEISHU_OK)).client(), payload)
    assert payload == {"msg_type": "text", "content": {"text": "hi"}}


def test_feishu_signature_rejection_is_signed_again_once_then_succeeds() -> None:
    times = iter([1000.0, 2000.0])
    bot = feishu.Feishu("TOKEN", secret="s3cret", clock=lambda: next(times))
    recorder = Recorder(answer(FEISHU_BAD_SIGN), answer(FEISHU_OK))
    outcome = bot.send(recorder.client(), {"msg_type": "text", "content": {"text": "hi"}})
    assert outcome.ok
    assert [recorder.body(i)["timestamp"] for i in (0, 1)] == ["1000", "2000"]


def test_feishu_signature_rejected_twice_is_permanent_and_points_at_secret_and_clock() -> None:
    bot = feishu.Feishu("TOKEN", secret="s3cret")
    recorder = Recorder(answer(FEISHU_BAD_SIGN))
    outcome = bot.send(recorder.client(), {"msg_type": "text", "content": {"text": "hi"}})
    assert outcome.kind == "permanent"
    assert "secret=" in outcome.reason and "clock" in outcome.reason
    assert len(recorder.requests) == 2


def test_feishu_without_a_secret_does_not_resend_on_a_signature_rejection() -> None:
    recorder = Recorder(answer(FEISHU_BAD_SIGN))
    outcome = feishu.Feishu("TOKEN").send(recorder.client(), {"msg_type": "text"})
    assert outcome.kind == "permanent"
    assert len(recorder.requests) == 1
    assert "timestamp" not in recorder.body()


def test_dingtalk_send_puts_token_timestamp_and_quoted_sign_in_the_query() -> None:
    bot = dingtalk.DingTalk("TOKEN", secret="SECchatlogtestsecret0123456789abcdef",
                            clock=lambda: 1700000000.0)
    recorder = Recorder(answer({"errcode": 0, "errmsg": "ok"}))
    assert bot.send(recorder.client(), {"msgtype": "text", "text": {"content": "hi"}}).ok
    url = recorder.requests[0].url
    assert url.path == "/robot/send"
    query = url.query.decode()
    assert "access_token=TOKEN" in query
    assert "timestamp=1700000000000" in query
    assert "sign=QfFIF%2BcK28PXCoecTMABvRDZaPE%2FXIsePtmbRmBvP4A%3D" in query
    assert "sign" not in recorder.body()


@pytest.mark.parametrize("errmsg", ["sign not match", "invalid timestamp"])
def test_dingtalk_signature_rejected_twice_is_permanent_and_points_at_secret_and_clock(errmsg: str) -> None:
    bot = dingtalk.DingTalk("TOKEN", secret="SECabc")
    recorder = Recorder(answer({"errcode": 310000, "errmsg": errmsg}))
    outcome = bot.send(recorder.client(), {"msgtype": "text"})
    assert outcome.kind == "permanent"
    assert "SEC" in outcome.reason and "clock" in outcome.reason
    assert len(recorder.requests) == 2


def test_dingtalk_keyword_rejection_is_not_resent() -> None:
    bot = dingtalk.DingTalk("TOKEN", secret="SECabc")
    recorder = Recorder(answer({"errcode": 310000, "errmsg": "keywords not in content"}))
    outcome = bot.send(recorder.client(), {"msgtype": "text"})
    assert outcome.kind == "permanent" and "keyword=" in outcome.reason
    assert len(recorder.requests) == 1


def test_wecom_send_puts_the_key_in_the_query() -> None:
    recorder = Recorder(answer({"errcode": 0, "errmsg": "ok"}))
    assert wecom.WeCom("KEY-1").send(recorder.client(), {"msgtype": "text", "text": {"content": "x"}}).ok
    assert str(recorder.requests[0].url) == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY-1"


SENDERS: list[Callable[[], Destination]] = [
    lambda: feishu.Feishu("TOKEN-abcdef", secret="s3cret-value"),
    lambda: dingtalk.DingTalk("TOKEN-abcdef", secret="SECs3cret-value"),
    lambda: wecom.WeCom("TOKEN-abcdef"),
]


@pytest.mark.parametrize("make", SENDERS, ids=["feishu", "dingtalk", "wecom"])
@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                   RuntimeError("client closed")])
def test_send_never_raises_and_asks_for_a_retry(make: Callable[[], Destination], error: Exception) -> None:
    outcome = make().send(Recorder(error).client(), {"msgtype": "text"})
    assert outcome.kind == "retry"


@pytest.mark.parametrize("make", SENDERS, ids=["feishu", "dingtalk", "wecom"])
def test_send_keeps_secrets_out_of_reasons_and_answers(make: Callable[[], Destination]) -> None:
    bot = make()
    said = "bad credentials " + " ".join(bot.secrets)
    echo = {"code": 12345, "msg": said, "errcode": 12345, "errmsg": said}
    outcome = bot.send(Recorder(answer(echo)).client(), {"msgtype": "text"})
    assert outcome.kind == "permanent"
    assert "bad credentials ***" in outcome.reason
    for secret in bot.secrets:
        assert secret not in outcome.reason and secret not in outcome.answer
    assert "***" in outcome.answer


# --- answers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "kind", "wait", "words"), [
    ({"code": 0, "msg": "success", "data": {}}, 200, "ok", 0, ""),
    (FEISHU_OK, 200, "ok", 0, ""),
    ({"Extra": None, "StatusCode": 0, "StatusMessage": "success"}, 200, "ok", 0, ""),
    ({"StatusCode": 0, "StatusMessage": "", "code": 9499, "msg": "too many request"}, 400, "retry", 5,
     "too fast"),
    ({"code": 9499, "msg": "Bad Request", "data": {}}, 200, "rejected", 0, "chatlog bug"),
    ({"StatusCode": 9499, "StatusMessage": "Bad Request"}, 200, "rejected", 0, "chatlog bug"),
    ({"code": 11232, "msg": "create message service trigger rate limit"}, 200, "retry", 10, "throttling"),
    ({"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}, 200, "permanent", 0,
     "removed"),
    ({"code": 19002, "msg": "params error, msg_type need"}, 200, "permanent", 0, "msg_type"),
    ({"code": 19007, "msg": "Bot Not Enabled"}, 200, "permanent", 0, "not enabled"),
    (FEISHU_BAD_SIGN, 200, "permanent", 0, "clock"),
    ({"code": 19022, "msg": "Ip Not Allowed"}, 200, "permanent", 0, "allow-list"),
    ({"code": 19024, "msg": "Key Words Not Found"}, 200, "permanent", 0, "set keyword="),
    ({"code": 19036, "msg": "The message exceeds the size limit of 30KB"}, 200, "rejected", 0, "too large"),
    ({"code": 4242, "msg": "something new"}, 200, "permanent", 0, "4242: something new"),
    ({"code": "0", "msg": "success"}, 200, "ok", 0, ""),
    ({"code": [0], "msg": "odd"}, 200, "retry", 0, "unexpected answer"),
    ({"code": None}, 200, "retry", 0, "unexpected answer"),
    ({"code": True}, 200, "retry", 0, "unexpected answer"),
    ({"msg": "no code at all"}, 200, "retry", 0, "unexpected answer"),
    ({"code": 0, "msg": "success"}, 400, "retry", 0, "HTTP 400"),
    ({"code": 19024, "msg": ["not", "a", "string"]}, 200, "permanent", 0, "keyword"),
])
def test_feishu_answers(body: Any, status: int, kind: str, wait: float, words: str) -> None:
    outcome = feishu.classify(answer(body, status))
    assert (outcome.kind, outcome.retry_after) == (kind, wait)
    assert words in outcome.reason


@pytest.mark.parametrize(("body", "kind", "wait", "words"), [
    ({"errcode": 0, "errmsg": "ok"}, "ok", 0, ""),
    ({"errcode": "0", "errmsg": "ok"}, "ok", 0, ""),
    ({"errcode": 410100, "errmsg": "send too fast"}, "retry", 600, "10 minutes"),
    ({"errcode": 410101, "errmsg": "send too fast"}, "retry", 600, "10 minutes"),
    ({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}, "retry", 600, "10 minutes"),
    ({"errcode": -1, "errmsg": "system busy"}, "retry", 5, "busy"),
    ({"errcode": 310000, "errmsg": "keywords not in content"}, "permanent", 0, "set keyword="),
    ({"errcode": 310000, "errmsg": "ip 203.0.113.9 not in whitelist"}, "permanent", 0, "203.0.113.9"),
    ({"errcode": 310000, "errmsg": "sign not match"}, "permanent", 0, "starts with SEC"),
    ({"errcode": 310000, "errmsg": "invalid timestamp"}, "permanent", 0, "clock"),
    ({"errcode": 310000, "errmsg": "something else"}, "permanent", 0, "security settings"),
    ({"errcode": 300001, "errmsg": "token is not exist"}, "permanent", 0, "access token does not exist"),
    ({"errcode": 300005, "errmsg": "token is not exist"}, "permanent", 0, "access token does not exist"),
    ({"errcode": 400101, "errmsg": "access_token不存在"}, "permanent", 0, "access token does not exist"),
    ({"errcode": 400102, "errmsg": "机器人已停用"}, "permanent", 0, "disabled"),
    ({"errcode": 400106, "errmsg": "机器人不存在"}, "permanent", 0, "does not exist"),
    ({"errcode": 400013, "errmsg": "群已被解散"}, "permanent", 0, "dissolved"),
    ({"errcode": 40035, "errmsg": "缺少参数 access_token"}, "permanent", 0, "missing"),
    ({"errcode": 400105, "errmsg": "不支持的消息类型"}, "permanent", 0, "chatlog bug"),
    ({"errcode": 460101, "errmsg": "body 大小不合法"}, "rejected", 0, "too large (a chatlog bug)"),
    ({"errcode": 101002, "errmsg": "markdown is too long"}, "rejected", 0, "too large (a chatlog bug)"),
    ({"errcode": 430101, "errmsg": "含有不安全的外链"}, "rejected", 0, "rejected the content"),
    ({"errcode": 430104, "errmsg": "消息内容不合适"}, "rejected", 0, "rejected the content"),
    ({"errcode": 400199, "errmsg": "new robot problem"}, "permanent", 0, "token or robot"),
    ({"errcode": 777, "errmsg": "new"}, "permanent", 0, "777"),
    ({"errcode": {"nested": 1}}, "retry", 0, "unexpected answer"),
])
def test_dingtalk_answers(body: Any, kind: str, wait: float, words: str) -> None:
    outcome = dingtalk.classify(answer(body))
    assert (outcome.kind, outcome.retry_after) == (kind, wait)
    assert words in outcome.reason


@pytest.mark.parametrize(("body", "kind", "wait", "words"), [
    ({"errcode": 0, "errmsg": "ok"}, "ok", 0, ""),
    ({"errcode": 45009, "errmsg": "api freq out of limit"}, "retry", 60, "too fast"),
    ({"errcode": 45033, "errmsg": "api concurrent out of limit"}, "retry", 5, "concurrent"),
    ({"errcode": -1, "errmsg": "system busy"}, "retry", 5, "busy"),
    ({"errcode": 93000, "errmsg": "invalid webhook url, hint: [x], from ip: 1.2.3.4"}, "permanent", 0,
     "the webhook key is invalid or the bot was removed"),
    ({"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}, "rejected", 0, "chatlog bug"),
    ({"errcode": 45002, "errmsg": "content too large"}, "rejected", 0, "chatlog bug"),
    ({"errcode": 44004, "errmsg": "empty content"}, "rejected", 0, "chatlog bug"),
    ({"errcode": 40008, "errmsg": "invalid message type"}, "permanent", 0, "chatlog bug"),
    ({"errcode": 48002, "errmsg": "api forbidden"}, "permanent", 0, "48002"),
    ({"errcode": "x"}, "retry", 0, "unexpected answer"),
])
def test_wecom_answers(body: Any, kind: str, wait: float, words: str) -> None:
    outcome = wecom.classify(answer(body))
    assert (outcome.kind, outcome.retry_after) == (kind, wait)
    assert words in outcome.reason


CLASSIFIERS = [feishu.classify, dingtalk.classify, wecom.classify]
NAMES = ["feishu", "dingtalk", "wecom"]


@pytest.mark.parametrize("classify", CLASSIFIERS, ids=NAMES)
@pytest.mark.parametrize(("status", "body", "kind"), [
    (200, b"", "retry"),
    (200, b"<html>gateway</html>", "retry"),
    (200, b"[1, 2]", "retry"),
    (204, b"", "retry"),
    (404, b"not found", "retry"),
    (400, b"bad", "retry"),
    (302, b"", "retry"),
    (429, b"", "retry"),
    (502, b"bad gateway", "retry"),
])
def test_answers_without_a_result_code(classify: Callable[[httpx.Response], Outcome], status: int,
                                       body: bytes, kind: str) -> None:
    outcome = classify(answer(body, status))
    assert outcome.kind == kind
    if status == 200:
        assert "unexpected answer" in outcome.reason


@pytest.mark.parametrize("classify", CLASSIFIERS, ids=NAMES)
def test_rate_limit_headers_set_the_wait(classify: Callable[[httpx.Response], Outcome]) -> None:
    outcome = classify(answer({}, 429, {"x-ogw-ratelimit-reset": "7"}))
    assert (outcome.kind, outcome.retry_after) == ("retry", 7.0)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["code", "msg", "StatusCode", "StatusMessage", "errcode", "errmsg"])


@settings(max_examples=100, deadline=None)
@given(body=st.dictionaries(FIELDS, JSON, max_size=4) | JSON,
       status=st.sampled_from([200, 400, 403, 429, 500]))
def test_classify_never_raises_on_any_json(body: Any, status: int) -> None:
    for classify in CLASSIFIERS:
        assert classify(answer(body, status)).kind in ("ok", "retry", "permanent")


@settings(max_examples=50, deadline=None)
@given(raw=st.binary(max_size=200))
def test_classify_never_raises_on_any_bytes(raw: bytes) -> None:
    for classify in CLASSIFIERS:
        assert classify(answer(raw)).kind in ("retry", "permanent", "ok")


# --- destination strings ------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "platform", "endpoint", "masked"), [
    ("feishu://TOKEN", "feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN", "feishu://***"),
    ("lark://TOKEN", "lark", "https://open.larksuite.com/open-apis/bot/v2/hook/TOKEN", "lark://***"),
    ("https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN", "feishu",
     "https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN", "feishu://***"),
    ("https://open.larksuite.com/open-apis/bot/v2/hook/TOKEN", "lark",
     "https://open.larksuite.com/open-apis/bot/v2/hook/TOKEN", "lark://***"),
    ("http://127.0.0.1:8080/open-apis/bot/v2/hook/TOKEN", "feishu",
     "http://127.0.0.1:8080/open-apis/bot/v2/hook/TOKEN", "http://127.0.0.1:8080/open-apis/bot/v2/hook/***"),
    ("feishu://TOKEN?base_url=http://127.0.0.1:9000", "feishu",
     "http://127.0.0.1:9000/open-apis/bot/v2/hook/TOKEN", "http://127.0.0.1:9000/open-apis/bot/v2/hook/***"),
])
def test_feishu_destination_strings(url: str, platform: str, endpoint: str, masked: str) -> None:
    bot = feishu.Feishu.from_target(target(url + ("&" if "?" in url else "?") + "secret=SIG", platform))
    assert (bot.platform, bot.endpoint, bot.masked()) == (platform, endpoint, masked)
    assert bot.secrets == ("TOKEN", "SIG")
    assert "TOKEN" not in repr(bot) and "SIG" not in repr(bot)


@pytest.mark.parametrize(("url", "endpoint", "masked"), [
    ("dingtalk://TOKEN", "https://oapi.dingtalk.com/robot/send", "dingtalk://***"),
    ("https://oapi.dingtalk.com/robot/send?access_token=TOKEN", "https://oapi.dingtalk.com/robot/send",
     "dingtalk://***"),
    ("http://127.0.0.1:8080/robot/send?access_token=TOKEN", "http://127.0.0.1:8080/robot/send",
     "http://127.0.0.1:8080/robot/send?access_token=***"),
    ("dingtalk://TOKEN?base_url=https://proxy.example:8443/", "https://proxy.example:8443/robot/send",
     "https://proxy.example:8443/robot/send?access_token=***"),
])
def test_dingtalk_destination_strings(url: str, endpoint: str, masked: str) -> None:
    parsed = target(url + ("&" if "?" in url else "?") + "secret=SECsig", "dingtalk")
    bot = dingtalk.DingTalk.from_target(parsed)
    assert (bot.token, bot.endpoint, bot.masked()) == ("TOKEN", endpoint, masked)
    assert bot.secrets == ("TOKEN", "SECsig")
    assert parsed.query == {}
    assert "TOKEN" not in repr(bot) and "SECsig" not in repr(bot)


@pytest.mark.parametrize(("url", "endpoint", "masked"), [
    ("wecom://KEY", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", "wecom://***"),
    ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
     "wecom://***"),
    ("http://localhost:8080/cgi-bin/webhook/send?key=KEY", "http://localhost:8080/cgi-bin/webhook/send",
     "http://localhost:8080/cgi-bin/webhook/send?key=***"),
])
def test_wecom_destination_strings(url: str, endpoint: str, masked: str) -> None:
    parsed = target(url, "wecom")
    bot = wecom.WeCom.from_target(parsed)
    assert (bot.key, bot.endpoint, bot.masked()) == ("KEY", endpoint, masked)
    assert bot.secrets == ("KEY",)
    assert parsed.query == {}
    assert "KEY" not in repr(bot)


def test_options_a_platform_does_not_know_are_left_for_the_parser_to_report() -> None:
    parsed = target("https://oapi.dingtalk.com/robot/send?access_token=T&colour=red", "dingtalk")
    dingtalk.DingTalk.from_target(parsed)
    assert parsed.query == {"colour": "red"}


def test_keyword_from_the_destination_string_is_kept() -> None:
    bot = feishu.Feishu.from_target(target("feishu://TOKEN?keyword=alert", "feishu"))
    assert bot.keyword == "alert"


@pytest.mark.parametrize(("cls", "url", "platform", "words"), [
    (feishu.Feishu, "feishu://", "feishu", "no webhook token"),
    (feishu.Feishu, "https://open.feishu.cn/open-apis/bot/v2/hook/", "feishu", "no webhook token"),
    (feishu.Feishu, "https://open.feishu.cn/open-apis/bot/v2/other/TOKEN", "feishu", "looks like"),
    (feishu.Feishu, "feishu://TOKEN?base_url=ftp://127.0.0.1", "feishu", "base_url must be http(s)://host"),
    (feishu.Feishu, "feishu://TOKEN?base_url=http://127.0.0.1:8080/inbox", "feishu", "base_url must be"),
    (feishu.Feishu, "feishu://TOKEN?base_url=http://", "feishu", "base_url must be"),
    (dingtalk.DingTalk, "dingtalk://", "dingtalk", "no access token"),
    (dingtalk.DingTalk, "https://oapi.dingtalk.com/robot/send", "dingtalk", "no access token"),
    (dingtalk.DingTalk, "http://u:pw@127.0.0.1/robot/send?access_token=T", "dingtalk", "no user or password"),
    (wecom.WeCom, "wecom://", "wecom", "no webhook key"),
    (wecom.WeCom, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", "wecom", "no webhook key"),
])
def test_malformed_destinations_name_the_problem_and_show_an_example(
    cls: type[Destination], url: str, platform: str, words: str
) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. \w+://") as caught:
        cls.from_target(target(url, platform))
    assert words in str(caught.value)


def test_dingtalk_secret_must_start_with_sec_and_is_not_shown() -> None:
    with pytest.raises(ValueError) as caught:
        dingtalk.DingTalk.from_target(target("dingtalk://tok-9f8e7d?secret=hunter2-secret", "dingtalk"))
    message = str(caught.value)
    assert "DingTalk signing secrets start with SEC; copy it from the robot's security settings" in message
    assert "hunter2-secret" not in message and "tok-9f8e7d" not in message


def test_wecom_refuses_a_signing_secret_without_showing_it() -> None:
    with pytest.raises(ValueError) as caught:
        wecom.WeCom.from_target(target("wecom://KEY?secret=hunter2-secret", "wecom"))
    message = str(caught.value)
    assert "WeCom bots have no signing secret: the key is the secret" in message
    assert "hunter2-secret" not in message


def test_a_token_with_a_space_is_refused_without_being_shown() -> None:
    with pytest.raises(ValueError) as caught:
        feishu.Feishu("tok en-value")
    assert "tok en-value" not in str(caught.value)


def test_an_empty_secret_means_no_signing() -> None:
    bot = dingtalk.DingTalk.from_target(target("dingtalk://TOKEN", "dingtalk", secret=""))
    assert bot.secret is None and bot.secrets == ("TOKEN",)


# --- plain text messages (chatlog send) ----------------------------------------------------------------


def test_text_message_gets_the_keyword_once() -> None:
    bot = feishu.Feishu("TOKEN", keyword="alert")
    assert bot.render_text("deploy finished")["content"]["text"] == "deploy finished\nalert"
    assert bot.render_text("alert: deploy finished")["content"]["text"] == "alert: deploy finished"


def test_text_message_of_a_megabyte_is_cut_visibly_within_limits() -> None:
    text = "日志" * 500_000
    cases: list[tuple[Destination, Callable[[dict[str, Any]], str]]] = [
        (feishu.Feishu("T", keyword="kw"), lambda p: p["content"]["text"]),
        (dingtalk.DingTalk("T", keyword="kw"), lambda p: p["text"]["content"]),
        (wecom.WeCom("T", keyword="kw"), lambda p: p["text"]["content"]),
    ]
    for bot, content in cases:
        payload = bot.render_text(text)
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        assert len(body) <= bot.limits.body_bytes
        assert "… (truncated)" in content(payload) and content(payload).endswith("kw")
    assert len(wecom.WeCom("T").render_text(text)["text"]["content"].encode()) <= 2_048


def test_text_message_cannot_mention_anyone() -> None:
    hostile = '<at user_id="all">所有人</at> <@all>'
    assert "<" not in feishu.Feishu("T").render_text(hostile)["content"]["text"]
    assert "<" not in wecom.WeCom("T").render_text(hostile)["text"]["content"]
    assert "at" not in dingtalk.DingTalk("T").render_text("@13800000000 hi")


# --- the registry drives everything that iterates over platforms ------------------------------------------


def test_every_platform_declares_its_parts_and_has_a_fake() -> None:
    from chatlog.testing import PLATFORM_RULES
    from tests import registry

    bot_names = {name for rules in PLATFORM_RULES for name in rules.names}
    for module in registry.MODULES:
        cls = registry.class_of(module)
        assert cls.names and cls.example and cls.forms, cls
        assert cls.escape("<at id=all></at>") != "<at id=all></at>", cls
        assert isinstance(module.LIMITS.body_bytes, int) and callable(module.render), module
        fake = registry.fake_of(module)
        assert callable(fake.text_of) and callable(fake.notified) and callable(fake.live_markup), fake
        assert registry.rules_of(module) is None or set(cls.names) <= bot_names, cls


def test_demo_and_serve_create_a_bot_for_every_group_bot_fake() -> None:
    import chatlog.cli
    from chatlog.testing import PLATFORM_RULES, FakePlatforms

    with FakePlatforms() as fake:
        bots = chatlog.cli._demo_bots(fake)
    assert {bot.platform for bot in bots} == {rules.names[0] for rules in PLATFORM_RULES}


def test_readme_platform_table_is_the_registrys() -> None:
    from pathlib import Path

    from chatlog.destinations import platform_table

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert platform_table() in readme


def test_platform_options_reach_the_platform_without_the_handler_naming_them() -> None:
    import inspect

    from chatlog import ChatHandler

    handler_source = inspect.getsource(ChatHandler)
    for option in ("app_id", "app_secret", "receive_id_type", "receive_ids"):
        assert option not in handler_source.split('"""', 2)[2]  # only the docstring may mention them
    handler = ChatHandler("feishu-app://cli_a:S3CRETVALUE@open_id/ou_a", receive_ids=["ou_b", "ou_c"])
    try:
        assert "ou_b,ou_c" in repr(handler)
    finally:
        handler.close()


def test_an_option_no_platform_has_fails_naming_the_valid_ones() -> None:
    from chatlog import ChatHandler

    with pytest.raises(TypeError, match=r"recieve_ids.*group_wait.*receive_ids"):
        ChatHandler("feishu-app://cli_a:S@open_id/ou_a", recieve_ids=["ou_b"])


def test_an_option_of_another_platform_fails_naming_this_platforms() -> None:
    from chatlog import ChatHandler

    with pytest.raises(ValueError, match=r"app_id\. Known options: .*access_token"):
        ChatHandler("dingtalk://TOKEN", app_id="cli_a")


def test_sink_takes_the_handlers_options_with_the_same_signature() -> None:
    import inspect

    from chatlog import ChatHandler
    from chatlog.loguru import sink

    assert inspect.signature(sink).parameters == inspect.signature(ChatHandler).parameters
    made = sink("feishu-app://cli_a:S3CRETVALUE@open_id/ou_a", receive_ids="ou_z", group_wait=1.0)
    try:
        assert "ou_z" in repr(made)
    finally:
        made.stop()
