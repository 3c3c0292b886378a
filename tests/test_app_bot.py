"""Feishu / Lark app bot: one digest to each person or chat, over real HTTP against the fake app."""

from __future__ import annotations

import json
import logging
import logging.config
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from chatlog import ChatHandler, destinations
from chatlog.cli import main
from chatlog.digest import Context, Digest, GroupSummary
from chatlog.entry import Entry
from chatlog.platforms import feishu, feishu_app
from chatlog.platforms._base import Outcome
from chatlog.platforms.feishu_app import FeishuApp
from chatlog.testing import FakeApp, FakePlatforms, Fault
from tests.conftest import FakeClock, assert_accounting

RECIPIENTS = {"open_id": ["ou_alice", "ou_bob"]}
T0 = 1_700_000_000.0


def send_digest(handler: ChatHandler, logger: logging.Logger, message: str) -> None:
    logger.error(message)
    assert handler.flush(timeout=5.0), handler.stats()


def codes(app: FakeApp) -> list[object]:
    """The ``code`` of each answer the send API gave (None when no answer was given)."""
    return [r.answer.get("code") if r.answer else None for r in app.message_requests]


def chatlog_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("chatlog:")]


def a_digest(message: str = "order 42 failed", batch: str = "batch-1") -> Digest:
    sample = Entry(created=T0, level=logging.ERROR, level_name="ERROR", logger="app.orders", message=message,
                   pathname="app/orders.py", lineno=42, func="place", exc_type=None, traceback=None)
    group = GroupSummary(sample=sample, count=3, total=3, first_seen=T0, last_seen=T0 + 60)
    return Digest(groups=(group,), level_counts=(("ERROR", 3),), window_start=T0, window_end=T0 + 60,
                  context=Context(service="checkout", environment="prod", host="web-1", pid=42), batch=batch)


# --- delivery ------------------------------------------------------------------------------------------


def test_one_digest_reaches_every_recipient_once_as_an_interactive_card(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    app = fake_platforms.add_app(recipients=RECIPIENTS)
    handler = make_handler(app.url("open_id"), service="checkout")
    app_logger.addHandler(handler)
    for order in range(3):
        app_logger.error("order %s failed", order)
    assert handler.flush(timeout=5.0)

    for person in ("ou_alice", "ou_bob"):
        [message] = app.messages_to(person)
        assert message.msg_type == "interactive"
        assert message.content["header"]["template"] == "red"
        assert "×3" in message.text and "order 0 failed" in message.text and "checkout" in message.text
    assert len(app.message_requests) == 2 and app.duplicates == 0
    assert handler.stats().delivered_records == 3 and handler.stats().messages_sent == 1


def test_the_app_card_is_the_group_bots_card() -> None:
    digest = a_digest()
    app = FeishuApp("cli_a", "app-secret-1", "open_id", ["ou_a", "ou_b"])
    sent = app.render(digest)

    assert sent["msg_type"] == "interactive"
    assert json.loads(sent["content"]) == feishu.render(digest)["card"]
    bodies = app.render_all(digest)  # the request bodies: one per recipient, no key of chatlog's own
    assert [set(body) for body in bodies] == [{"receive_id", "msg_type", "content", "uuid"}] * 2
    assert [body["uuid"] for body in bodies] == [
        feishu_app.message_uuid("cli_a", "open_id", rid, "batch-1") for rid in ("ou_a", "ou_b")]


def test_a_large_digest_is_trimmed_to_fit_the_app_apis_30_kb_card_limit(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    app = fake_platforms.add_app(recipients={"open_id": ["ou_alice"]})
    handler = make_handler(app.url("open_id"))
    app_logger.addHandler(handler)
    for i in range(40):  # 40 groups of quotes and Chinese text: the card is JSON inside a JSON string
        try:
            raise ValueError('"订单" ' + '失败 "x" ' * 300)
        except ValueError:
            part = logging.getLogger(f"{app_logger.name}.part{i}")
            part.exception('payment "%s" 失败 %s', i, "原因 " * 200)
    assert handler.flush(timeout=5.0)

    [request] = app.message_requests
    assert request.accepted and 20 * 1024 < len(request.body) <= 30 * 1024
    assert app.texts("ou_alice")[0].count("**×1** · ERROR") >= 3


# --- tokens --------------------------------------------------------------------------------------------


def test_two_handlers_of_one_app_share_one_token_fetch(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    app = fake_platforms.add_app(recipients={"open_id": ["ou_alice"], "chat_id": ["oc_ops"]})
    people = make_handler(app.url("open_id"))
    chats = make_handler(app.url("chat_id"))
    app_logger.addHandler(people)
    app_logger.addHandler(chats)
    app_logger.error("disk full")
    flushes = [threading.Thread(target=handler.flush, args=(5.0,)) for handler in (people, chats)]
    for flush in flushes:
        flush.start()
    for flush in flushes:
        flush.join(6.0)

    assert len(app.token_requests) == 1
    assert len(app.messages_to("ou_alice")) == 1 and len(app.messages_to("oc_ops")) == 1
    assert {r.headers["authorization"] for r in app.message_requests} == {
        f"Bearer {app.token_requests[0].answer['tenant_access_token']}"  # type: ignore[index]
    }


def test_token_is_refreshed_shortly_before_it_expires(
    fake: FakePlatforms, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
    make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
) -> None:
    monkeypatch.setattr(feishu_app.TOKENS, "clock", clock)
    app = fake.add_app(recipients=RECIPIENTS, expire_s=7200)
    handler = make_handler(app.url("open_id"))
    app_logger.addHandler(handler)
    send_digest(handler, app_logger, "first")
    clock.now += 7200 - 240  # 4 minutes left: chatlog refreshes 5 minutes before the end
    send_digest(handler, app_logger, "second")

    assert len(app.token_requests) == 2
    first, second = (r.answer["tenant_access_token"] for r in app.token_requests)  # type: ignore[index]
    assert first != second
    assert codes(app) == [0, 0, 0, 0]  # the old token was never refused
    assert [len(app.messages_to(person)) for person in ("ou_alice", "ou_bob")] == [2, 2]


@pytest.mark.parametrize("how", ["revoked", "expired on the server's clock"])
@pytest.mark.parametrize("auth_status", [400, 200])
def test_refused_token_is_fetched_again_once_and_the_message_resent_without_duplicates(
    fake: FakePlatforms, clock: FakeClock, make_handler: Callable[..., ChatHandler],
    app_logger: logging.Logger, capsys: pytest.CaptureFixture[str], how: str, auth_status: int,
) -> None:
    app = fake.add_app(recipients=RECIPIENTS, auth_status=auth_status)
    handler = make_handler(app.url("open_id"))
    app_logger.addHandler(handler)
    send_digest(handler, app_logger, "first")
    if how == "revoked":
        app.revoke_tokens()
    else:
        clock.now += 7201  # e.g. the machine slept: chatlog's monotonic clock did not see the time pass
    send_digest(handler, app_logger, "second")

    assert len(app.token_requests) == 2
    assert codes(app) == [0, 0, 99991663, 0, 0]
    assert [r.status for r in app.message_requests][2] == auth_status
    assert [len(app.messages_to(person)) for person in ("ou_alice", "ou_bob")] == [2, 2]
    assert handler.stats().messages_failed == 0 and app.duplicates == 0
    assert chatlog_lines(capsys.readouterr().err) == []  # handled quietly


# --- retries never deliver twice ----------------------------------------------------------------------


def test_lost_answer_is_resent_with_the_same_uuid_and_delivered_once(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    app = fake_platforms.add_app(recipients=RECIPIENTS)
    handler = make_handler(app.url("open_id"))
    app_logger.addHandler(handler)
    app.lose_next_answers(1, receive_id="ou_bob")  # Bob gets the message, but chatlog never hears so
    send_digest(handler, app_logger, "once only")

    to_alice = [r for r in app.message_requests if r.payload and r.payload["receive_id"] == "ou_alice"]
    to_bob = [r for r in app.message_requests if r.payload and r.payload["receive_id"] == "ou_bob"]
    assert len(to_alice) == 1 and len(to_bob) == 2  # the retry skips Alice, served in the first attempt
    assert to_bob[0].payload["uuid"] == to_bob[1].payload["uuid"]  # type: ignore[index]
    assert [len(app.messages_to(person)) for person in ("ou_alice", "ou_bob")] == [1, 1]
    assert app.duplicates == 1
    assert handler.stats().messages_sent == 1 and handler.stats().delivered_records == 1


def test_uuid_differs_per_recipient_and_per_batch() -> None:
    uuids = {feishu_app.message_uuid("cli_a", "open_id", person, batch)
             for person in ("ou_a", "ou_b") for batch in ("b-1", "b-2")}
    assert len(uuids) == 4 and all(len(u) <= 50 for u in uuids)


def test_app_rate_limit_answer_pauses_as_told_then_delivers(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = fake_platforms.add_app(recipients=RECIPIENTS)
    handler = make_handler(app.url("open_id"))
    app_logger.addHandler(handler)
    send_digest(handler, app_logger, "first")  # a token is cached: the next request is a message
    body = json.dumps({"code": 99991400, "msg": "request trigger frequency limit"}).encode()
    app.fail_next(1, Fault.status(429, body, {"x-ogw-ratelimit-reset": "1"}))
    send_digest(handler, app_logger, "second")

    refused, *resent = app.message_requests[2:]
    assert refused.status == 429
    assert [r.payload["receive_id"] for r in resent] == ["ou_alice", "ou_bob"]  # type: ignore[index]
    assert resent[0].at - refused.at >= 0.9
    assert [len(app.messages_to(person)) for person in ("ou_alice", "ou_bob")] == [2, 2]
    [line] = chatlog_lines(capsys.readouterr().err)
    assert ("sending failed: Feishu says the app sends too fast (99991400 request trigger frequency limit); "
            "1 records kept, retrying in 1 s") in line


def test_too_many_messages_to_one_recipient_ask_for_a_retry_in_a_second(fake: FakePlatforms) -> None:
    app = fake.add_app(recipients={"open_id": ["ou_alice"]})
    destination = destinations.resolve(app.url("open_id")).destination
    with httpx.Client(timeout=5.0) as client:
        outcomes = [destination.send_all(client, destination.render_all(a_digest(batch=f"b{i}")))
                    for i in range(6)]

    assert [o.kind for o in outcomes] == ["ok"] * 5 + ["retry"]
    assert outcomes[-1].retry_after == 1.0
    assert "Feishu asks to send to open_id ou_alice later (230020" in outcomes[-1].reason


# --- destination strings -----------------------------------------------------------------------------


@pytest.mark.parametrize(("receive_id_type", "receive_id"), [
    ("open_id", "ou_7d8a6e6df7621556ce0d21922b676706ccs"),
    ("user_id", "5d9bdxxx"),
    ("union_id", "on_94a1ee5551019f18cd73d9f111898cf2"),
    ("email", "ops.lead@example.com"),
    ("chat_id", "oc_a0553eda9014c201e6969b478895c230"),
])
def test_every_receive_id_type_is_sent_as_given(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    receive_id_type: str, receive_id: str,
) -> None:
    app = fake_platforms.add_app(recipients={receive_id_type: [receive_id]},
                                 permissions=["im:message:send_as_bot", "contact:user.employee_id:readonly"])
    handler = make_handler(app.url(receive_id_type))
    app_logger.addHandler(handler)
    send_digest(handler, app_logger, "checkout down")

    [request] = app.message_requests
    assert request.query == {"receive_id_type": receive_id_type}
    assert request.payload is not None and request.payload["receive_id"] == receive_id
    assert "checkout down" in app.texts(receive_id)[0]


def test_dictconfig_keeps_the_app_credentials_in_separate_keys(fake_platforms: FakePlatforms) -> None:
    app = fake_platforms.add_app(recipients={"chat_id": ["oc_ops", "oc_sre"]})
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"chat": {
            "class": "chatlog.ChatHandler", "level": "ERROR", "group_wait": 0.05,
            "url": f"feishu-app://?base_url={fake_platforms.base_url}",
            "app_id": app.app_id, "app_secret": app.app_secret,
            "receive_id_type": "chat_id", "receive_ids": ["oc_ops", "oc_sre"],
        }},
        "loggers": {"shop.app": {"handlers": ["chat"], "level": "INFO", "propagate": False}},
    })
    logger = logging.getLogger("shop.app")
    handler = logger.handlers[0]
    assert isinstance(handler, ChatHandler)
    try:
        logger.error("payment provider down")
        assert handler.flush(timeout=5.0)
        for chat in ("oc_ops", "oc_sre"):
            assert "payment provider down" in app.texts(chat)[0]
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "loggers": {"shop.app": {"handlers": [], "propagate": True}}})
        handler.close()
        assert_accounting(handler.stats())


def test_keyword_options_win_over_the_url(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    app = fake_platforms.add_app(recipients={"open_id": ["ou_alice", "ou_bob"]})
    stale = app.url("open_id", ["ou_nobody"]).replace(app.app_secret, "an-old-app-secret")
    handler = make_handler(stale, app_secret=app.app_secret, receive_ids=["ou_bob"])
    app_logger.addHandler(handler)
    send_digest(handler, app_logger, "options win")

    assert [m.receive_id for m in app.messages] == ["ou_bob"]


@pytest.mark.parametrize(("platform", "host"), [("feishu-app", "open.feishu.cn"),
                                                ("lark-app", "open.larksuite.com")])
def test_lark_app_talks_to_larks_domain(fake_platforms: FakePlatforms, platform: str, host: str) -> None:
    app = fake_platforms.add_app(platform, recipients={"open_id": ["ou_alice"]})
    destination = destinations.resolve(f"{platform}://{app.app_id}:{app.app_secret}@open_id/ou_alice").destination
    transport = ToFake(fake_platforms.base_url)
    with httpx.Client(transport=transport, timeout=5.0) as client:
        outcome = destination.send_all(client, destination.render_text_all("deploy finished"))

    assert outcome.ok, outcome.reason
    assert transport.origins == [f"https://{host}", f"https://{host}"]  # the token, then the message
    assert [r.headers["host"] for r in app.received] == [host, host]
    assert app.texts("ou_alice") == ["deploy finished"]


class ToFake(httpx.BaseTransport):
    """Sends every request to the fake server instead, keeping its Host header and noting its origin."""

    def __init__(self, base_url: str) -> None:
        self.target = httpx.URL(base_url)
        self.origins: list[str] = []
        self._http = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.origins.append(f"{request.url.scheme}://{request.url.host}")
        url = request.url.copy_with(scheme=self.target.scheme, host=self.target.host, port=self.target.port)
        return self._http.handle_request(httpx.Request(request.method, url, headers=request.headers,
                                                       content=request.read()))

    def close(self) -> None:
        self._http.close()


@pytest.mark.parametrize(("url", "options", "masked", "endpoint", "ids"), [
    ("feishu-app://cli_a1:app%2Fsecret@open_id/ou_a,ou_b", {}, "feishu-app://cli_a1:***@open_id/ou_a,ou_b",
     "https://open.feishu.cn/open-apis/im/v1/messages", ("ou_a", "ou_b")),
    ("lark-app://cli_a1:app-secret@chat_id/oc_1", {}, "lark-app://cli_a1:***@chat_id/oc_1",
     "https://open.larksuite.com/open-apis/im/v1/messages", ("oc_1",)),
    ("feishu-app://cli_a1:app-secret@email/a@example.com,b@example.com", {},
     "feishu-app://cli_a1:***@email/a@example.com,b@example.com",
     "https://open.feishu.cn/open-apis/im/v1/messages", ("a@example.com", "b@example.com")),
    ("feishu-app://", {"app_id": "cli_a1", "app_secret": "app-secret", "receive_id_type": "union_id",
                       "receive_ids": "on_1,on_2,on_3,on_4"},
     "feishu-app://cli_a1:***@union_id/on_1,on_2,on_3,…+1", "https://open.feishu.cn/open-apis/im/v1/messages",
     ("on_1", "on_2", "on_3", "on_4")),
    ("http://127.0.0.1:8750/open-apis/im/v1/messages?receive_id_type=user_id&receive_ids=u1&app_id=cli_a1"
     "&app_secret=app-secret", {}, "feishu-app://cli_a1:***@user_id/u1?base_url=http://127.0.0.1:8750",
     "http://127.0.0.1:8750/open-apis/im/v1/messages", ("u1",)),
    ("https://open.feishu.cn/open-apis/im/v1/messages?platform=feishu-app&receive_id_type=open_id"
     "&receive_ids=ou_a&app_id=cli_a1&app_secret=app-secret", {}, "feishu-app://cli_a1:***@open_id/ou_a",
     "https://open.feishu.cn/open-apis/im/v1/messages", ("ou_a",)),
])
def test_destination_strings(url: str, options: dict[str, str], masked: str, endpoint: str,
                             ids: tuple[str, ...]) -> None:
    destination = destinations.resolve(url, options=options).destination
    assert isinstance(destination, FeishuApp)
    assert (destination.masked(), destination.endpoint, destination.receive_ids) == (masked, endpoint, ids)
    assert destination.secrets[0] in ("app/secret", "app-secret")
    assert "secret" not in repr(destination).replace("app_secret", "")


@pytest.mark.parametrize(("url", "options", "words"), [
    ("feishu-app://:hunter2-secret@open_id/ou_a", {}, "no app id"),
    ("feishu-app://cli_a1@open_id/ou_a", {}, "no app secret"),
    ("feishu-app://cli_a1:hunter2-secret@open_ids/ou_a", {},
     "unknown receive_id_type 'open_ids': use one of open_id, user_id, union_id, email, chat_id"),
    ("feishu-app://cli_a1:hunter2-secret@/ou_a", {}, "no receive_id_type"),
    ("feishu-app://cli_a1:hunter2-secret@open_id/", {}, "names no recipients"),
    ("feishu-app://cli_a1:hunter2/secret@open_id/ou_a", {}, "URL-quote an app secret"),
    ("feishu-app://cli_a1:hunter2-secret@open_id/ou_a?secret=hunter2-secret", {}, "no signing secret"),
    ("feishu-app://cli_a1:hunter2-secret@open_id/ou_a", {"receive_id_type": "phone"},
     "unknown receive_id_type 'phone'"),
])
def test_malformed_app_destinations_name_the_problem_without_the_secret(
    url: str, options: dict[str, str], words: str
) -> None:
    with pytest.raises(ValueError) as caught:
        destinations.resolve(url, options=options)
    message = str(caught.value)
    assert words in message and "e.g. feishu-app://APP_ID:APP_SECRET@open_id/ou_xxx" in message
    assert "hunter2" not in message


# --- chatlog send -------------------------------------------------------------------------------------


def test_chatlog_send_delivers_the_text_to_every_recipient(
    fake_platforms: FakePlatforms, capsys: pytest.CaptureFixture[str]
) -> None:
    app = fake_platforms.add_app(recipients=RECIPIENTS)
    assert main(["send", app.url("open_id"), "deploy finished"]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"sent to feishu-app://{app.app_id}:***@open_id/ou_alice,ou_bob")
    assert out.replace(" ", "").count('"code":0') == 2 and app.app_secret not in out
    assert app.texts("ou_alice") == app.texts("ou_bob") == ["deploy finished"]
    assert [m.msg_type for m in app.messages] == ["text", "text"]


def test_chatlog_send_of_the_same_text_twice_delivers_twice(fake_platforms: FakePlatforms) -> None:
    app = fake_platforms.add_app(recipients={"open_id": ["ou_alice"]})
    assert main(["send", app.url("open_id"), "deploy finished"]) == 0
    assert main(["send", app.url("open_id"), "deploy finished"]) == 0
    assert app.texts("ou_alice") == ["deploy finished", "deploy finished"]


# --- what stderr says ---------------------------------------------------------------------------------


def test_unreachable_recipients_are_reported_once_and_the_others_still_get_alerts(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = fake_platforms.add_app(recipients={"open_id": ["ou_alice"]}, hidden={"open_id": ["ou_intern"]})
    handler = make_handler(app.url("open_id", ["ou_alice", "ou_intern", "ou_typo"]))
    app_logger.addHandler(handler)
    send_digest(handler, app_logger, "first")
    send_digest(handler, app_logger, "second")

    lines = chatlog_lines(capsys.readouterr().err)
    assert len(lines) == 2, lines
    assert ("Feishu cannot deliver to open_id ou_intern (230013 Bot has NO availability to this user): "
            "add the user to the app's availability range") in lines[0]
    assert "chatlog skips it from now on, the other recipients still get alerts" in lines[0]
    assert ("Feishu cannot deliver to open_id ou_typo (230034 The receive_id is invalid): "
            "check the id") in lines[1]
    assert all(app.app_secret not in line and f"{app.app_id}:***@" in line for line in lines)
    assert len(app.messages_to("ou_alice")) == 2
    assert [r.payload["receive_id"] for r in app.message_requests[3:]] == ["ou_alice"]  # type: ignore[index]
    assert handler.stats().delivered_records == 2 and handler.stats().dropped == 0


def test_bot_not_in_a_chat_is_reported_with_how_to_add_it(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = fake_platforms.add_app(recipients={"chat_id": ["oc_ops"]})
    handler = make_handler(app.url("chat_id", ["oc_ops", "oc_finance"]))
    app_logger.addHandler(handler)
    send_digest(handler, app_logger, "first")

    [line] = chatlog_lines(capsys.readouterr().err)
    assert ("Feishu cannot deliver to chat_id oc_finance (230002 The bot can not be outside the group): "
            "add the bot to the group (group settings → Bots → Add Bot)") in line
    assert len(app.messages_to("oc_ops")) == 1


def test_when_no_recipient_can_be_reached_the_destination_stops_with_the_fix(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = fake_platforms.add_app(hidden={"open_id": ["ou_intern"]})
    handler = make_handler(app.url("open_id", ["ou_intern"]))
    app_logger.addHandler(handler)
    for i in range(3):
        app_logger.error("lost %s", i)
        handler.flush(timeout=5.0)

    lines = chatlog_lines(capsys.readouterr().err)
    assert len(lines) == 2, lines
    assert "Feishu cannot deliver to open_id ou_intern (230013" in lines[0]
    assert "other recipients" not in lines[0]
    assert "no recipient of this app bot can be reached" in lines[1]
    assert "Alerts to this destination wait (kept as a summary) until it is fixed" in lines[1]
    assert len(app.message_requests) == 1 and handler.stats().pending == 3


@pytest.mark.parametrize(("receive_id_type", "granted", "app_options", "words"), [
    ("open_id", [], {}, "Feishu says the app lacks a permission (99991672): grant one of "
     "im:message:send_as_bot, im:message, im:message:send under Permissions & Scopes in the developer "
     "console, then publish a new app version"),
    ("user_id", ["im:message:send_as_bot"], {}, "Feishu says the app lacks a permission (99991672): grant "
     "contact:user.employee_id:readonly under Permissions & Scopes"),
    ("open_id", ["im:message"], {"bot_enabled": False}, "Feishu says the app's bot is not enabled (230006): "
     "turn on Features → Bot in the developer console and publish a new app version"),
])
def test_app_wide_problems_stop_the_destination_naming_what_to_grant(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str], receive_id_type: str, granted: list[str], app_options: dict[str, Any],
    words: str,
) -> None:
    app = fake_platforms.add_app(recipients={receive_id_type: ["u_1"]}, permissions=granted, **app_options)
    handler = make_handler(app.url(receive_id_type))
    app_logger.addHandler(handler)
    for i in range(2):
        app_logger.error("lost %s", i)
        handler.flush(timeout=5.0)

    [line] = chatlog_lines(capsys.readouterr().err)
    assert words in line and app.app_secret not in line
    assert len(app.message_requests) == 1 and handler.stats().pending == 2


def test_wrong_app_secret_is_reported_without_the_secret(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = fake_platforms.add_app(recipients=RECIPIENTS)
    handler = make_handler(app.url("open_id").replace(app.app_secret, "a-wrong-app-secret"))
    app_logger.addHandler(handler)
    app_logger.error("never arrives")
    handler.flush(timeout=5.0)

    [line] = chatlog_lines(capsys.readouterr().err)
    assert ("Feishu refused the app credentials (10014 app secret invalid): check the app id and app secret "
            "(developer console → Credentials & Basic Info)") in line
    assert "a-wrong-app-secret" not in line and app.app_id in line
    assert app.message_requests == [] and handler.stats().pending == 1


def test_chatlog_send_explains_an_unreachable_recipient_and_exits_1(
    fake_platforms: FakePlatforms, capsys: pytest.CaptureFixture[str]
) -> None:
    app = fake_platforms.add_app(hidden={"open_id": ["ou_intern"]})
    assert main(["send", app.url("open_id", ["ou_intern"]), "hello"]) == 1
    err = capsys.readouterr().err
    assert "Feishu cannot deliver to open_id ou_intern (230013" in err
    assert "did not take the message: no recipient of this app bot can be reached" in err
    assert app.app_secret not in err


# --- the fake app answers like Feishu ----------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


def token_for(client: httpx.Client, fake: FakePlatforms, app: FakeApp) -> dict[str, Any]:
    answer = client.post(f"{fake.base_url}{feishu_app.TOKEN_PATH}",
                         json={"app_id": app.app_id, "app_secret": app.app_secret})
    body: dict[str, Any] = answer.json()
    return body


def post_message(client: httpx.Client, fake: FakePlatforms, token: str, body: dict[str, Any],
                 receive_id_type: str = "open_id") -> httpx.Response:
    return client.post(f"{fake.base_url}{feishu_app.MESSAGES_PATH}?receive_id_type={receive_id_type}",
                       json=body, headers={"Authorization": f"Bearer {token}"})


def text_body(receive_id: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"receive_id": receive_id, "msg_type": "text", "content": json.dumps({"text": text}), **extra}


def test_fake_token_endpoint_reuses_a_token_until_30_minutes_are_left(
    fake: FakePlatforms, clock: FakeClock, client: httpx.Client
) -> None:
    app = fake.add_app(expire_s=7200)
    first = token_for(client, fake, app)
    clock.now += 3600
    same = token_for(client, fake, app)
    clock.now += 1900
    fresh = token_for(client, fake, app)
    wrong = client.post(f"{fake.base_url}{feishu_app.TOKEN_PATH}",
                        json={"app_id": app.app_id, "app_secret": "not-the-secret"})

    assert (first["code"], first["expire"], first["tenant_access_token"][:2]) == (0, 7200, "t-")
    assert (same["tenant_access_token"], same["expire"]) == (first["tenant_access_token"], 3600)
    assert (fresh["tenant_access_token"] != first["tenant_access_token"], fresh["expire"]) == (True, 7200)
    assert (wrong.status_code, wrong.json()) == (400, {"code": 10014, "msg": "app secret invalid"})
    assert len(app.token_requests) == 4


def test_fake_send_api_checks_token_content_and_uuid(fake: FakePlatforms, client: httpx.Client) -> None:
    app = fake.add_app(recipients={"open_id": ["ou_alice"]})
    token = token_for(client, fake, app)["tenant_access_token"]
    no_token = client.post(f"{fake.base_url}{feishu_app.MESSAGES_PATH}?receive_id_type=open_id",
                           json=text_body("ou_alice"))
    bad_token = post_message(client, fake, "t-forged", text_body("ou_alice"))
    bad_type = post_message(client, fake, token, text_body("ou_alice"), receive_id_type="phone")
    not_a_string = post_message(client, fake, token, {**text_body("ou_alice"), "content": {"text": "hi"}})
    long_uuid = post_message(client, fake, token, text_body("ou_alice", uuid="u" * 51))
    first = post_message(client, fake, token, text_body("ou_alice", "once", uuid="u-1"))
    again = post_message(client, fake, token, text_body("ou_alice", "once", uuid="u-1"))

    assert (no_token.status_code, no_token.json()["code"]) == (400, 99991661)
    assert (bad_token.status_code, bad_token.json()["code"]) == (400, 99991663)
    for refused in (bad_type, not_a_string, long_uuid):
        assert (refused.status_code, refused.json()["code"]) == (400, 230001)
    assert first.json()["data"]["message_id"] == again.json()["data"]["message_id"]
    assert first.json()["data"]["body"]["content"] == json.dumps({"text": "once"})
    assert app.texts("ou_alice") == ["once"] and app.duplicates == 1


def test_fake_send_api_refuses_schema_2_leftovers_and_oversized_cards(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    app = fake.add_app(recipients={"open_id": ["ou_alice"]}, rate_limit=False)
    token = token_for(client, fake, app)["tenant_access_token"]
    note = {"schema": "2.0", "header": {"title": {"tag": "plain_text", "content": "x"}},
            "body": {"elements": [{"tag": "note", "elements": []}]}}
    huge = {"header": {"title": {"tag": "plain_text", "content": "x"}},
            "elements": [{"tag": "markdown", "content": "x" * 31_000}]}
    answers = [post_message(client, fake, token, {"receive_id": "ou_alice", "msg_type": "interactive",
                                                  "content": json.dumps(card)}) for card in (note, huge)]

    assert [(a.status_code, a.json()["code"]) for a in answers] == [(400, 230099), (400, 230025)]
    assert "200861" in answers[0].json()["msg"]
    assert app.messages == []


def test_fake_send_api_rate_limits_per_app_and_per_recipient(
    fake: FakePlatforms, client: httpx.Client
) -> None:
    people = [f"ou_{i}" for i in range(60)]
    app = fake.add_app(recipients={"open_id": people})
    token = token_for(client, fake, app)["tenant_access_token"]
    to_alice = [post_message(client, fake, token, text_body("ou_0")) for _ in range(6)]
    to_all = [post_message(client, fake, token, text_body(person)) for person in people[1:50]]

    assert [a.json()["code"] for a in to_alice] == [0] * 5 + [230020]
    assert to_alice[-1].status_code == 400
    assert [a.json()["code"] for a in to_all] == [0] * 44 + [99991400] * 5  # 50 a second per app, 6 + 44
    limited = to_all[-1]
    assert limited.status_code == 429
    assert (limited.headers["x-ogw-ratelimit-limit"], limited.headers["x-ogw-ratelimit-reset"]) == ("50", "1")


def test_fake_recipient_errors_use_feishus_codes(fake: FakePlatforms, client: httpx.Client) -> None:
    app = fake.add_app(recipients={"open_id": ["ou_alice"], "chat_id": ["oc_ops"]},
                       hidden={"open_id": ["ou_intern"]})
    token = token_for(client, fake, app)["tenant_access_token"]
    answers = [post_message(client, fake, token, text_body("ou_intern")),
               post_message(client, fake, token, text_body("ou_typo")),
               post_message(client, fake, token, text_body("oc_other"), receive_id_type="chat_id")]

    assert [(a.status_code, a.json()) for a in answers] == [
        (400, {"code": 230013, "msg": "Bot has NO availability to this user"}),
        (400, {"code": 230034, "msg": "The receive_id is invalid"}),
        (400, {"code": 230002, "msg": "The bot can not be outside the group"}),
    ]


def test_fake_add_app_refuses_impossible_settings(fake: FakePlatforms) -> None:
    fake.add_app(app_id="cli_same")
    with pytest.raises(ValueError, match="exists already"):
        fake.add_app(app_id="cli_same")
    with pytest.raises(ValueError, match="'feishu-app' or 'lark-app'"):
        fake.add_app("feishu")
    with pytest.raises(ValueError, match="maps a receive_id_type"):
        fake.add_app(recipients={"phone": ["1"]})
    with pytest.raises(ValueError, match="maps a receive_id_type"):
        fake.add_app(recipients={"open_id": "ou_a"})


# --- answers, unit level ------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "kind", "scope", "words"), [
    ({"code": 0, "msg": "success", "data": {}}, 200, "ok", "recipient", ""),
    ({"code": 99991663, "msg": "Invalid access token"}, 200, "retry", "token", "invalid or expired"),
    ({"code": 99991677, "msg": "token expired"}, 401, "retry", "token", "invalid or expired"),
    ({"code": 99991400, "msg": "request trigger frequency limit"}, 429, "retry", "app", "too fast"),
    ({"code": 230020, "msg": "This operation triggers the frequency limit"}, 400, "retry", "recipient",
     "later"),
    ({"code": 230049, "msg": "The message is being sent"}, 400, "retry", "recipient", "later"),
    ({"code": 230013, "msg": "Bot has NO availability to this user"}, 400, "permanent", "recipient",
     "availability range"),
    ({"code": 99992351, "msg": "open_id(s) not existed"}, 400, "permanent", "recipient", "check the id"),
    ({"code": 230027, "msg": "Lack of necessary permissions"}, 400, "permanent", "app",
     "im:message:send_as_bot"),
    ({"code": 230099, "msg": "Failed to create card content"}, 400, "rejected", "app", "chatlog bug"),
    ({"code": 99991401, "msg": "IP denied"}, 400, "permanent", "app", "allow-list"),
    ({"code": 4242, "msg": "something new"}, 400, "permanent", "recipient", "4242 something new"),
    ({"code": 1500, "msg": "internal error"}, 500, "retry", "recipient", "later"),
    ({"code": "x"}, 502, "retry", "app", "HTTP 502"),
    ({"msg": "no code"}, 404, "retry", "app", "HTTP 404"),
])
def test_send_api_answers(body: dict[str, Any], status: int, kind: str, scope: str, words: str) -> None:
    found = feishu_app.verdict(httpx.Response(status, json=body), "open_id ou_a", "open_id")
    assert (found.outcome.kind, found.scope) == (kind, scope)
    assert words in found.outcome.reason


def test_token_answers() -> None:
    fetched = feishu_app.token_of(httpx.Response(200, json={"code": 0, "tenant_access_token": "t-1",
                                                            "expire": 7200}))
    refused = feishu_app.token_of(httpx.Response(400, json={"code": 10015, "msg": "wrong app secret"}))
    assert fetched == ("t-1", 7200.0)
    assert isinstance(refused, Outcome) and refused.kind == "permanent"
    assert "10015 wrong app secret" in refused.reason


def test_shared_tokens_refresh_before_expiry_and_keep_a_valid_token_when_a_refresh_fails() -> None:
    clock = FakeClock(0.0)
    tokens = feishu_app.TenantTokens(clock)
    key = feishu_app.token_key("https://open.feishu.cn", "cli_a", "secret")
    answers: list[tuple[str, float] | Outcome] = [("t-1", 7200.0), Outcome("retry", reason="down"),
                                                  ("t-2", 7200.0)]

    def fetch() -> tuple[str, float] | Outcome:
        return answers.pop(0)

    assert tokens.get(key, fetch) == "t-1"
    clock.now = 6899.0
    assert tokens.get(key, fetch) == "t-1" and len(answers) == 2  # not fetched: 5 minutes and 1 s left
    clock.now = 6901.0
    assert tokens.get(key, fetch) == "t-1" and len(answers) == 1  # refresh failed, t-1 still valid
    tokens.invalidate(key, "t-other")
    assert tokens.get(key, fetch) == "t-2"
    tokens.invalidate(key, "t-2")
    assert isinstance(tokens.get(key, lambda: Outcome("permanent", reason="bad secret")), Outcome)


def test_app_secret_stays_out_of_urls_in_masked_form() -> None:
    destination = destinations.resolve("feishu-app://cli_a1:" + urllib.parse.quote("s3cr/et@x", safe="") +
                          "@open_id/ou_a").destination
    assert destination.secrets == ("s3cr/et@x",)
    assert "s3cr" not in destination.masked() and "s3cr" not in repr(destination)


def test_an_app_bot_behind_a_relay_path_sends_to_the_api_paths_under_it(
    fake_platforms: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    app = fake_platforms.add_app(recipients={"open_id": ["ou_alice"]})
    relay = fake_platforms.relay("/relay/feishu-app", "")
    handler = make_handler(relay, platform="feishu-app", app_id=app.app_id, app_secret=app.app_secret,
                           receive_id_type="open_id", receive_ids=["ou_alice"])
    app_logger.addHandler(handler)
    send_digest(handler, app_logger, "through the relay")
    assert [m.receive_id for m in app.messages] == ["ou_alice"]
    assert "through the relay" in app.texts("ou_alice")[0]
