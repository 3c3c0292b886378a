"""``chatlog status [--state URL]``: what a fleet store holds, per destination, for SQLite and Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatlog import cli
from chatlog.state.store import Delta, Member, open_store

SCOPE = "t" * 24
WEB1A, WEB1B, WEB2 = (Member("web-1:100:aaaa", "web-1", 100), Member("web-1:101:bbbb", "web-1", 101),
                      Member("web-2:200:cccc", "web-2", 200))


@pytest.fixture(params=["sqlite", "redis"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL: a SQLite file, or a real Redis of the test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fleet.db"
    else:
        yield request.getfixturevalue("redis_server").url


def test_status_prints_members_leader_pending_budget_last_send_and_error(
        state: str, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    store = open_store(state)
    try:
        store.describe(SCOPE, "dingtalk://***", now)
        for member in (WEB1A, WEB1B, WEB2):
            store.hand_over(SCOPE, member, [Delta("g1", 5, now, now, 40, "s")], now)
        store.hand_over(SCOPE, WEB1A, [Delta("g2", 2, now, now, 30, "s")], now)
        store.lease(SCOPE, WEB1A.id, 10.0, now)
        store.take_budget(SCOPE, [(20, 60.0)], now)
        store.settle(SCOPE, WEB1A.id, {"g2": {WEB1A.id: 2}}, now, delivered=True, shown={"g2"})
        store.note_error(SCOPE, "HTTP 500 from the platform", now)
    finally:
        store.close()
    assert cli.main(["status", "--state", state]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{state}: 1 destination\n")
    assert f"dingtalk://***  [scope {SCOPE}]" in out
    assert "members     3 live on 2 hosts: web-1 ×2, web-2 ×1" in out
    assert f"leader      {WEB1A.id}, lease" in out
    assert "pending     1 group, 15 records" in out
    assert "budget      1 send in the last 60 s" in out
    assert "last send   20" in out and " s ago)" in out
    assert "last error  HTTP 500 from the platform, 20" in out


def test_status_of_a_store_no_destination_used_says_so(state: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--state", state]) == 0
    assert "no destination has used this store yet" in capsys.readouterr().out


def test_status_with_a_bad_state_url_fails_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--state", "mysql://root:pw-is-secret@db/x"]) == 2
    err = capsys.readouterr().err
    assert "sqlite:///" in err and "redis://" in err and "pw-is-secret" not in err


def test_status_reads_the_store_chatlog_state_names_when_no_state_is_given(
        state: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHATLOG_STATE", state)
    assert cli.main(["status"]) == 0
    assert capsys.readouterr().out.startswith(f"{state}: no destination has used this store yet")


def test_status_of_memory_says_there_is_no_shared_store(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHATLOG_STATE", "memory")
    assert cli.main(["status"]) == 0
    assert "no store to read" in capsys.readouterr().out
