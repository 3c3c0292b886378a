"""Bad configuration fails at construction, with a message that names the problem and shows an example."""

from __future__ import annotations

import logging
import logging.config

import pytest

from chatlog import ChatHandler

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


def test_closed_handler_flushes_and_closes_at_once_and_counts_late_records() -> None:
    handler = ChatHandler("dingtalk://T")
    handler.close()
    assert handler.flush() is True
    handler.close()
    logger = logging.getLogger("late")
    logger.propagate = False
    logger.addHandler(handler)
    logger.error("after close")
    logger.removeHandler(handler)
    stats = handler.stats()
    assert stats.accepted == stats.dropped == 1
