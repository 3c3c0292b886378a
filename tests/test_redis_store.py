"""What only the Redis store has: URLs and their masking, the lazy import, keys that expire, a Redis that
goes away, hangs or comes back empty, fork. All against a real redis-server on a unix socket (the
`redis_server` fixture of chatlog's pytest plugin); the protocol's semantics are tests/test_store.py's,
run on Redis too.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator

import pytest

from chatlog import cli
from chatlog.state.redis_store import RedisStore, prefix
from chatlog.state.store import Delta, Member, StoreError, open_store
from chatlog.testing.redis_server import RedisServer

SCOPE = "r" * 24
A = Member("web-1:100:aaaa", "web-1", 100)
PASSWORD = "hunter2-redis-password"


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStore]:
    """A RedisStore on the test's own redis-server."""
    opened = open_store(redis_server.url)
    assert isinstance(opened, RedisStore)
    yield opened
    opened.close()


def test_every_key_of_a_scope_is_namespaced_and_expires(store: RedisStore, redis_server: RedisServer) -> None:
    store.describe(SCOPE, "dingtalk://***", 100.0)
    store.hand_over(SCOPE, A, [Delta("g1", 2, 100.0, 100.0, 40, "sample")], 100.0)
    store.lease(SCOPE, A.id, 10.0, 100.0)
    store.take_budget(SCOPE, [(20, 60.0)], 100.0)
    store.settle(SCOPE, A.id, {"g1": {A.id: 1}}, 101.0, delivered=True, shown={"g1"})
    store.count_sent(SCOPE, "2026-12-01")
    store.note_error(SCOPE, "HTTP 500", 101.0)
    client = store._client
    keys = sorted(k.decode() for k in client.keys("*"))
    scoped = [k for k in keys if k != "chatlog:scopes"]
    assert scoped and all(k.startswith(prefix(SCOPE)) for k in scoped), keys
    assert {k: client.pttl(k) > 0 for k in keys} == dict.fromkeys(keys, True)  # none lives forever
    assert prefix(SCOPE) == f"chatlog:{{{SCOPE}}}:"  # one cluster slot per scope


def test_text_utf8_cannot_hold_is_stored_escaped_not_a_failure(store: RedisStore) -> None:
    store.hand_over(SCOPE, A, [Delta("g1", 1, 100.0, 100.0, 40, "bad \udce2 byte")], 100.0)
    store.note_error(SCOPE, "HTTP 500: \udce2", 100.0)
    assert store.pending(SCOPE)[0].sample == "bad \\udce2 byte"
    assert store.status(SCOPE, 100.0).last_error == "HTTP 500: \\udce2"


def test_the_password_is_masked_in_the_repr_errors_and_status(find_secrets: Callable[[str], list[str]],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:1/0"  # nothing listens on port 1: refused at once
    store = open_store(url)
    assert repr(store) == "RedisStore('redis://:***@127.0.0.1:1/0')"
    with pytest.raises(StoreError) as caught:
        store.hand_over(SCOPE, A, [], 100.0)
    assert "redis://:***@127.0.0.1:1/0" in str(caught.value) and PASSWORD not in str(caught.value)
    assert cli.main(["status", "--state", url]) == 1
    err = capsys.readouterr().err
    assert "cannot read the store" in err and PASSWORD not in err


def test_a_missing_redis_package_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # "import redis" now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'chatlog-alerts\[redis\]'") as caught:
        open_store(f"redis://:{PASSWORD}@cache:6379/0")
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(("url", "problem"), [
    ("redis://:pw-is-secret@:6379/0", "names no host"),
    ("unix://:pw-is-secret@", "names no socket path"),
    ("redis://:pw-is-secret@cache:99999/0", "not a valid Redis URL"),
])
def test_a_bad_redis_url_is_refused_with_an_example(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        open_store(url)
    assert "pw-is-secret" not in str(caught.value) and "redis://" in str(caught.value)


def test_redis_going_away_is_a_store_error_and_coming_back_empty_is_a_new_epoch(
        store: RedisStore, redis_server: RedisServer) -> None:
    before = store.hand_over(SCOPE, A, [Delta("g1", 3, 100.0, 100.0, 40, "s")], 100.0)
    redis_server.stop()
    for call in (lambda: store.hand_over(SCOPE, A, [], 101.0), lambda: store.pending(SCOPE),
                 lambda: store.take_budget(SCOPE, [(20, 60.0)], 101.0), lambda: store.status(SCOPE, 101.0)):
        with pytest.raises(StoreError, match="Redis at unix://"):
            call()
    redis_server.start()  # nothing was saved: the data is gone
    after = store.hand_over(SCOPE, A, [], 102.0)
    assert after.epoch != before.epoch
    assert (after.outstanding, after.pending_records) == ({}, 0)


def test_a_redis_that_hangs_is_a_store_error_after_the_socket_timeout_not_a_hang(
        store: RedisStore, redis_server: RedisServer) -> None:
    store.hand_over(SCOPE, A, [], 100.0)  # connected
    assert redis_server.pid is not None
    os.kill(redis_server.pid, signal.SIGSTOP)  # alive, accepting nothing: a Redis stuck on a slow disk
    try:
        with pytest.raises(StoreError, match="Timeout"):
            store.hand_over(SCOPE, A, [Delta("g1", 1, 101.0, 101.0, 40, "s")], 101.0)
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    assert store.hand_over(SCOPE, A, [], 102.0).live_members == 1  # and it works again


def test_a_forked_child_uses_the_store_on_connections_of_its_own(store: RedisStore) -> None:
    store.hand_over(SCOPE, A, [Delta("g1", 2, 100.0, 100.0, 40, "s")], 100.0)
    pid = os.fork()
    if pid == 0:  # the child: the parent's connection must not be shared
        code = 0
        try:
            child = Member("web-1:101:cccc", "web-1", 101)
            code = 0 if store.hand_over(SCOPE, child, [Delta("g1", 3, 100.0, 100.0, 40, None)],
                                        100.5).pending_records == 5 else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.hand_over(SCOPE, A, [], 101.0).pending_records == 5
