"""Feishu/Lark events over the long connection (no public URL): the frame codec, and a whoami round trip
through the fake platform's WebSocket endpoint."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatlog.chatops import Receiver, frames
from chatlog.testing import FakeApp, FakePlatforms


@given(seq=st.integers(0, 2**64 - 1), service=st.integers(-2**31, 2**31 - 1), method=st.integers(0, 1),
       headers=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=6),
       payload=st.binary(max_size=300))
def test_frames_round_trip(seq: int, service: int, method: int, headers: list[tuple[str, str]],
                           payload: bytes) -> None:
    frame = frames.Frame(seq_id=seq, log_id=seq // 3, service=service, method=method, headers=headers,
                         payload=payload)
    assert frames.decode(frames.encode(frame)) == frame


@given(st.binary(max_size=200))
def test_garbage_is_a_frame_error_or_a_frame(data: bytes) -> None:
    with contextlib.suppress(frames.FrameError):
        frames.decode(data)


def test_a_known_sdk_frame_decodes() -> None:
    # Frame(SeqID=0, LogID=0, service=7, method=0, headers=[type: ping]) by protobuf's proto2 wire rules
    sdk = bytes.fromhex("08001000180720002a0c0a04747970651204") + b"ping"
    assert frames.decode(sdk) == frames.Frame(service=7, method=0, headers=[("type", "ping")])


@pytest.fixture
def fake() -> Iterator[FakePlatforms]:
    with FakePlatforms() as platforms:
        yield platforms


def app_url(fake: FakePlatforms, app: FakeApp, secret: str | None = None) -> str:
    return f"{app.platform}://{app.app_id}:{secret or app.app_secret}?base_url={fake.base_url}"


def test_whoami_over_the_long_connection(fake: FakePlatforms) -> None:
    app = fake.add_app()
    chat = fake.add_chat("feishu", "", {}, app=app, chat_id="oc_ops", transport="ws")
    receiver = Receiver(feishu_ws=app_url(fake, app), state="memory")
    assert receiver.routes == [] and receiver.long_connection is not None
    receiver.start()
    try:
        assert receiver.long_connection.connected.wait(10)
        answer = chat.say("ou_alice", "whoami")
        assert answer.status == 200 and answer.json() == {"code": 200}
        replies = chat.wait_replies(1)
    finally:
        receiver.close()
    assert replies and "open_id: ou_alice" in replies[0] and "chat_id: oc_ops" in replies[0]
    assert fake._callbacks.ws.pings >= 1


def test_wrong_app_secret_never_connects_and_says_why(fake: FakePlatforms,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    app = fake.add_app()
    fake.add_chat("feishu", "", {}, app=app, transport="ws")
    receiver = Receiver(feishu_ws=app_url(fake, app, secret="wrong-secret-123"), state="memory")
    receiver.start()
    try:
        assert receiver.long_connection is not None
        assert not receiver.long_connection.connected.wait(1.5)
    finally:
        receiver.close()
    err = capfd.readouterr().err
    assert "long connection" in err and "refused the app credentials" in err
    assert "wrong-secret-123" not in err


def test_chatlog_listen_feishu_ws_needs_no_port(fake: FakePlatforms) -> None:
    app = fake.add_app("lark-app")
    chat = fake.add_chat("lark", "", {}, app=app, chat_id="oc_lark", transport="ws")
    env = {**os.environ, "CHATLOG_FEISHU_WS": app_url(fake, app)}
    process = subprocess.Popen([sys.executable, "-m", "chatlog", "listen", "--state", "memory"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("chatlog listen: lark long connection")
        assert chat.say("ou_bob", "whoami").status == 200
        assert "open_id: ou_bob" in chat.wait_replies(1)[0]
    finally:
        process.terminate()
        process.wait(10)
