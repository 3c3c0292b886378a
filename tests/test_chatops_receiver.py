"""The receiver over real HTTP in all three hosting forms (uvicorn/ASGI, wsgiref/WSGI, ``chatlog listen``),
fed by the fake platforms' signed and encrypted callbacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
import uvicorn

from chatlog.chatops import ASGIApp, HTTPReceiver, Receiver, WSGIApp, asgi_app, wsgi_app
from chatlog.testing import FakeApp, FakePlatforms

FEISHU = {"encrypt_key": "chatlog-encrypt-key", "verification_token": "vtoken-abc"}
WECOM = {"token": "QDG6eK", "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}
DINGTALK = {"app_secret": "chatlog-app-secret"}
QQ = {"app_id": "102012345", "secret": "DG5g3B4j9X2KOErG"}

class _QuietWSGI(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def under_uvicorn(receiver: Receiver) -> Iterator[str]:
    try:
        with under_uvicorn_app(ASGIApp(receiver)) as url:
            yield url
    finally:
        receiver.close()


@contextmanager
def under_wsgiref(receiver: Receiver) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, WSGIApp(receiver), handler_class=_QuietWSGI)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        receiver.close()


@contextmanager
def under_listen(receiver: Receiver) -> Iterator[str]:
    server = HTTPReceiver(receiver)
    server.serve_in_thread()
    try:
        yield server.url
    finally:
        server.stop()


HOSTS = {"asgi-uvicorn": under_uvicorn, "wsgi-wsgiref": under_wsgiref, "listen-http.server": under_listen}


@pytest.fixture
def fake() -> Iterator[FakePlatforms]:
    with FakePlatforms() as platforms:
        yield platforms


def app_option(fake: FakePlatforms, app: FakeApp) -> str:
    return f"{app.platform}://{app.app_id}:{app.app_secret}?base_url={fake.base_url}"


@pytest.mark.parametrize("host", list(HOSTS))
def test_feishu_challenge_and_whoami_round_trip_in_every_hosting_form(fake: FakePlatforms, host: str) -> None:
    app = fake.add_app(recipients={"chat_id": ["oc_ops"]})
    receiver = Receiver(feishu={**FEISHU, "app": app_option(fake, app)}, state="memory")
    with HOSTS[host](receiver) as url:
        chat = fake.add_chat("feishu", f"{url}/feishu", FEISHU, app=app, chat_id="oc_ops")
        challenge = chat.verify_url()
        assert challenge.verified
        answer = chat.say("ou_alice", "whoami")
        assert answer.status == 200 and answer.json() == {"msg": "success"}
        replies = chat.wait_replies(1)
    assert replies and "open_id: ou_alice" in replies[0] and "chat_id: oc_ops" in replies[0]
    assert "user_id: alice" in replies[0] and "union_id: on_alice" in replies[0]


@pytest.mark.parametrize("host", list(HOSTS))
def test_unconfigured_route_is_404_and_huge_body_is_413(fake: FakePlatforms, host: str) -> None:
    receiver = Receiver(dingtalk=DINGTALK, state="memory")
    with HOSTS[host](receiver) as url, httpx.Client(trust_env=False) as client:
        assert client.post(f"{url}/qq", content=b"{}").status_code == 404
        assert client.post(f"{url}/feishu", content=b"{}").status_code == 404
        assert client.post(f"{url}/dingtalk", content=b"x" * (1024 * 1024 + 1)).status_code == 413


def test_wecom_url_check_and_command_reply_through_the_webhook(fake: FakePlatforms) -> None:
    bot = fake.add_bot("wecom")
    with under_listen(Receiver(wecom=WECOM, state="memory")) as url:
        chat = fake.add_chat("wecom", f"{url}/wecom", WECOM, bot=bot, chat_id="wrkSFfCgAAtest")
        check = chat.verify_url()
        assert check.verified
        assert chat.say("zhangsan", "whoami").status == 200
        replies = chat.wait_replies(1)
    assert replies == ["userid: zhangsan\nchat_id: wrkSFfCgAAtest"]


def test_dingtalk_command_is_answered_through_the_session_webhook(fake: FakePlatforms) -> None:
    with under_listen(Receiver(dingtalk=DINGTALK, state="memory")) as url:
        chat = fake.add_chat("dingtalk", f"{url}/dingtalk", DINGTALK, chat_id="cid-ops")
        assert chat.say("staff-7", "help").status == 200
        replies = chat.wait_replies(1)
    assert replies and replies[0].startswith("Commands: status")


def test_qq_validation_and_passive_reply(fake: FakePlatforms) -> None:
    with under_listen(Receiver(qq={**QQ, "base_url": fake.base_url}, state="memory")) as url:
        chat = fake.add_chat("qq", f"{url}/qq", QQ, chat_id="G_OPS")
        check = chat.verify_url()
        assert check.verified
        answer = chat.say("M_ALICE", "whoami")
        assert answer.json() == {"op": 12, "d": 0}
        replies = chat.wait_replies(1)
    assert replies == ["member_openid: M_ALICE\nchat_id: G_OPS"]


def test_lark_route_uses_its_own_keys(fake: FakePlatforms) -> None:
    lark = {"encrypt_key": "lark-key", "verification_token": "lark-token"}
    app = fake.add_app("lark-app")
    receiver = Receiver(feishu=FEISHU, lark={**lark, "app": app_option(fake, app)}, state="memory")
    with under_listen(receiver) as url:
        wrong = fake.add_chat("lark", f"{url}/lark", FEISHU, app=app)
        assert wrong.say("ou_bob", "whoami").status == 401
        right = fake.add_chat("lark", f"{url}/lark", lark, app=app)
        assert right.say("ou_bob", "whoami").status == 200
        assert "open_id: ou_bob" in right.wait_replies(1)[0]


def test_malformed_bodies_are_400_without_traceback_or_secret(fake: FakePlatforms,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    with under_listen(Receiver(feishu=FEISHU, wecom=WECOM, state="memory")) as url, \
            httpx.Client(trust_env=False) as client:
        bodies = (b"{", b'{"encrypt":"!!"}', b"\xff")
        answers = [client.post(f"{url}/feishu", content=body) for body in bodies]
        answers.append(client.post(f"{url}/wecom", content=b"<xml><Encrypt>", params={"timestamp": "1"}))
    assert [a.status_code for a in answers[:3]] == [400, 400, 400]
    assert answers[3].status_code in (400, 401)
    seen = "".join(a.text for a in answers) + "".join(capfd.readouterr())
    assert "Traceback" not in seen
    for secret in (*FEISHU.values(), *WECOM.values()):
        assert secret not in seen


def test_a_failing_custom_command_is_answered_as_an_error_and_the_receiver_goes_on(
        fake: FakePlatforms) -> None:
    from chatlog.chatops import Commands

    commands = Commands()

    @commands.command("deploy")
    def deploy(ctx: object, args: list[str]) -> str:
        if args == ["boom"]:
            raise RuntimeError("secret-internal-detail")
        return f"deploying {args[0]}"

    with under_listen(Receiver(dingtalk=DINGTALK, state="memory", allow=["staff-7"],
                               commands=commands)) as url:
        chat = fake.add_chat("dingtalk", f"{url}/dingtalk", DINGTALK)
        chat.say("staff-7", "deploy boom")
        chat.say("staff-7", "deploy v2")
        chat.say("intruder", "deploy v3")
        replies = chat.wait_replies(3)
    assert replies[0] == "⚠ deploy failed: RuntimeError"
    assert replies[1] == "deploying v2"
    assert "allow-list" in replies[2]


def test_options_are_checked_at_construction_with_examples() -> None:
    with pytest.raises(ValueError, match=r"encrypt_key.*feishu="):
        asgi_app(feishu={"verification_token": "v"})
    with pytest.raises(ValueError, match="at least one platform"):
        wsgi_app()
    with pytest.raises(ValueError, match="unknown option"):
        asgi_app(wecom={**WECOM, "tokn": "x"})
    with pytest.raises(ValueError, match="sqlite:///"):
        asgi_app(dingtalk=DINGTALK, state="redis://nope")
    with pytest.raises(ValueError, match="allow="):
        asgi_app(dingtalk=DINGTALK, allow="ou_single_string")


def test_chatlog_listen_serves_the_routes_from_environment_variables(fake: FakePlatforms) -> None:
    env = {**os.environ, "CHATLOG_WECOM_TOKEN": WECOM["token"],
           "CHATLOG_WECOM_ENCODING_AES_KEY": WECOM["encoding_aes_key"]}
    command = [sys.executable, "-m", "chatlog", "listen", "--port", "0", "--state", "memory"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("chatlog listen: http://127.0.0.1:"), line
        url = line.split()[2]
        chat = fake.add_chat("wecom", f"{url}/wecom", WECOM, bot=fake.add_bot("wecom"))
        assert chat.verify_url().verified
        assert httpx.post(f"{url}/dingtalk", content=b"{}", trust_env=False).status_code == 404
    finally:
        process.terminate()
        process.wait(10)
    assert WECOM["encoding_aes_key"] not in (process.stderr.read() if process.stderr else "")


def test_chatlog_listen_refuses_a_bad_option_with_exit_code_2() -> None:
    done = subprocess.run([sys.executable, "-m", "chatlog", "listen", "--port", "0", "--wecom-token", "x"],
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.returncode == 2
    assert "wecom=" in done.stderr and "encoding_aes_key" in done.stderr


def test_feishu_card_button_is_answered_in_the_callback_with_a_toast(fake: FakePlatforms) -> None:
    app = fake.add_app(recipients={"chat_id": ["oc_ops"]})
    receiver = Receiver(feishu={**FEISHU, "app": app_option(fake, app)}, state="memory",
                        allow=["ou_alice"])
    with under_listen(receiver) as url:
        chat = fake.add_chat("feishu", f"{url}/feishu", FEISHU, app=app, chat_id="oc_ops")
        answer = chat.press("ou_alice", "whoami")
    toast = answer.json()["toast"]
    assert toast["type"] == "success" and "open_id: ou_alice" in toast["content"]
    assert json.loads(answer.body)  # a JSON answer, within the same request


def test_readme_talk_back_example_builds_a_receiver() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text.split("## Talk back", 1)[1], re.S)
    assert block is not None
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    receiver = namespace["receiver"]
    assert isinstance(receiver, ASGIApp)
    assert receiver.receiver.routes == ["/dingtalk", "/feishu", "/qq", "/wecom"]


def test_mounted_in_fastapi_and_flask_the_routes_keep_their_names(fake: FakePlatforms) -> None:
    import fastapi
    import flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    api = fastapi.FastAPI()
    api.mount("/chatlog", asgi_app(dingtalk=DINGTALK, state="memory"))
    flask_app = flask.Flask("host")
    mounted = DispatcherMiddleware(flask_app, {"/chatlog": wsgi_app(dingtalk=DINGTALK, state="memory")})
    server = make_server("127.0.0.1", 0, mounted, handler_class=_QuietWSGI)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with under_uvicorn_app(api) as asgi_url:
            for base in (f"{asgi_url}/chatlog", f"http://127.0.0.1:{server.server_port}/chatlog"):
                chat = fake.add_chat("dingtalk", f"{base}/dingtalk", DINGTALK)
                assert chat.say("staff-1", "whoami").status == 200, base
                assert "staff_id: staff-1" in chat.wait_replies(1)[0]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def under_uvicorn_app(app: object) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start within 10 s"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
