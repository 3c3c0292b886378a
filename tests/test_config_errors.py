"""Bad configuration fails at construction, with a message that names the problem and shows an example."""

from __future__ import annotations

import logging
import logging.config
import urllib.parse

import pytest

from chatlog import ChatHandler
from chatlog.testing import FakePlatforms

SECRET = "SECdonotshow0123456789"


@pytest.mark.parametrize(
    ("url", "options", "expected"),
    [
        ("", {}, "destination URL"),
        ("matrix://T", {}, "unknown destination matrix://"),
        ("https://example.com/hooks/abc", {}, "cannot tell which platform"),
        ("dingtalk://TOKEN", {"secret": "notsec"}, "start with SEC"),
        ("dingtalk://TOKEN?colour=red", {}, "unknown option(s)"),
        ("dingtalk://TOKEN", {"platform": "teams"}, "unknown platform"),
        ("wecom://KEY", {"secret": "x"}, "no signing secret"),
        ("dingtalk://TOKEN?base_url=ftp://x", {}, "base_url="),
        ("dingtalk://TOKEN", {"group_wait": 0}, "group_wait must be a positive"),
        ("dingtalk://TOKEN", {"group_interval": -1}, "group_interval"),
        ("dingtalk://TOKEN", {"max_queue": 0}, "max_queue must be positive"),
        ("dingtalk://TOKEN", {"mentions": {"ERROR": "ou_x"}}, "list of ids"),
        ("dingtalk://TOKEN", {"mentions": {"LOUD": ["all"]}}, "unknown level"),
    ],
)
def test_bad_configuration_fails_at_construction_with_an_example(
    url: str, options: dict[str, object], expected: str
) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        ChatHandler(url, **options)  # type: ignore[arg-type]
    message = str(caught.value)
    assert expected in message
    assert "e.g." in message or "use one of" in message


def test_error_messages_and_repr_never_show_secrets() -> None:
    with pytest.raises(ValueError) as caught:
        ChatHandler(f"dingtalk://TOKEN123?secret={SECRET}&bogus=1")
    assert SECRET not in str(caught.value) and "TOKEN123" not in str(caught.value)
    handler = ChatHandler(f"dingtalk://TOKEN123?secret={SECRET}")
    try:
        assert SECRET not in repr(handler) and "TOKEN123" not in repr(handler)
        assert "dingtalk://***" in repr(handler)
    finally:
        handler.close()


def test_dictconfig_error_names_the_problem() -> None:
    with pytest.raises(ValueError) as caught:
        logging.config.dictConfig({
            "version": 1,
            "handlers": {
                "chat": {"class": "chatlog.ChatHandler", "url": "dingtalk://T", "group_wait": "soon"},
            },
        })
    assert "group_wait must be a number of seconds" in str(caught.value.__cause__)


def test_unknown_keyword_argument_is_a_type_error_not_swallowed() -> None:
    with pytest.raises(TypeError, match="group_wiat"):
        ChatHandler("dingtalk://T", group_wiat=1)  # type: ignore[call-arg]


def test_closed_handler_flushes_and_closes_at_once_and_starts_again_for_late_records(
    fake_platforms: FakePlatforms,
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    handler = ChatHandler(bot.url, group_wait=60)
    handler.close()
    assert handler.flush() is True
    handler.close()
    logger = logging.getLogger("late")
    logger.propagate = False
    logger.addHandler(handler)
    logger.error("after close")
    logger.removeHandler(handler)
    stats = handler.stats()
    assert stats.accepted == stats.pending == 1 and stats.dropped == 0
    handler.close()
    assert "after close" in bot.texts()[0]


@pytest.mark.parametrize(("url", "options", "hidden"), [
    # a quoted '=' makes the whole "secret=SEC…" an option name
    (f"dingtalk://TOKEN123?secret%3D{SECRET}", {}, SECRET),
    # an unquoted '&' inside a secret: its tail must not be printed as an option name
    ("dingtalk://TOKEN123?secret=SECfirstpart&tailofthesecret", {}, "tailofthesecret"),
    ("dingtalk://TOKEN123?secret=SECfirstpart&tailofthe=secretvalue", {}, "tailofthe"),
    ("dingtalk://TOKEN123", {"secret": SECRET, "base_url": "ftp://admin:hunter2pass@proxy"}, "hunter2pass"),
    ("dingtalk://TOKEN123?base_url=ftp://admin:hunter2pass@proxy", {}, "hunter2pass"),
    ("feishu-app://cli_a:APPSECRETVALUE@open_id/ou_a?colour=red", {}, "APPSECRETVALUE"),
    ("https://example.com/hook/TOKEN123?secret=SEChidden", {}, "SEChidden"),
])
def test_construction_errors_name_options_never_secrets(url: str, options: dict[str, str],
                                                        hidden: str) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        ChatHandler(url, **options)  # type: ignore[arg-type]
    message = f"{caught.value}\n{caught.value!r}"
    assert hidden not in message and "TOKEN123" not in message
    assert "e.g." in message


@pytest.mark.parametrize("padded", [f"{SECRET}\n", f" {SECRET}", f"{SECRET}\t", "SEC12\n34"])
def test_a_secret_with_surrounding_whitespace_or_a_line_break_is_refused_saying_so(padded: str) -> None:
    with pytest.raises(ValueError, match="whitespace or holds a line break") as caught:
        ChatHandler("dingtalk://TOKEN123", secret=padded)
    assert SECRET not in str(caught.value)
    quoted = urllib.parse.quote(padded, safe="")
    with pytest.raises(ValueError, match="whitespace or holds a line break"):
        ChatHandler(f"dingtalk://TOKEN123?secret={quoted}")
    with pytest.raises(ValueError, match="whitespace or holds a line break"):
        ChatHandler("feishu-app://cli_a@open_id/ou_a", app_secret=padded)


def test_an_unknown_option_is_named_unless_it_may_be_the_tail_of_a_secret() -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) for a dingtalk destination: colour\. "):
        ChatHandler(f"dingtalk://TOKEN123?colour=red&secret={SECRET}")
    with pytest.raises(ValueError, match=r"1 after a secret or not shaped like a name, not shown"):
        ChatHandler(f"dingtalk://TOKEN123?secret={SECRET}&colour=red")
