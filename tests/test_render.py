"""What on-call people read: one message per digest, readable, complete in its counts, within the
platform's limits, and unable to mention, link or break anything through text from a log record."""

from __future__ import annotations

import json
import logging
import re
import string
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlog.digest import Context, Digest, GroupSummary
from chatlog.entry import Entry
from chatlog.platforms import _text, dingtalk, feishu, wecom
from chatlog.platforms._base import Limits, Payload
from tests import registry

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "app/orders.py", line 42, in place\n'
    "    charge(order)\n"
    '  File "app/payments.py", line 7, in charge\n'
    "    raise ValueError(reason)\n"
    "ValueError: card declined\n"
)
PLATFORMS = registry.MODULES
IDS = registry.IDS


def entry(message: str = "order 42 failed", *, level: int = logging.ERROR, logger: str = "app.orders",
          traceback: str | None = None, pathname: str = "app/orders.py", func: str = "place",
          extra: tuple[tuple[str, str], ...] = ()) -> Entry:
    return Entry(created=T0, level=level, level_name=logging.getLevelName(level), logger=logger,
                 message=message, pathname=pathname, lineno=42, func=func,
                 exc_type="ValueError" if traceback else None, traceback=traceback, extra=extra)


def group(message: str = "order 42 failed", *, count: int = 1, total: int | None = None, repeat: bool = False,
          first: float = T0, last: float = T0 + 60, merged: int = 0, **fields: Any) -> GroupSummary:
    return GroupSummary(sample=entry(message, **fields), count=count, total=count if total is None else total,
                        first_seen=first, last_seen=last, repeat=repeat, merged_groups=merged)


def digest(*groups: GroupSummary, service: str | None = "checkout", environment: str | None = "prod",
           mentions: tuple[str, ...] = (), dropped: int = 0,
           host: str = "web-1", pid: int = 4242) -> Digest:
    levels: dict[int, int] = {}
    for summary in groups:
        levels[summary.sample.level] = levels.get(summary.sample.level, 0) + summary.count
    return Digest(
        groups=groups,
        level_counts=tuple((logging.getLevelName(lv), n) for lv, n in sorted(levels.items(), reverse=True)),
        window_start=min((g.first_seen for g in groups), default=0.0),
        window_end=max((g.last_seen for g in groups), default=0.0),
        context=Context(service=service, environment=environment, host=host, pid=pid),
        dropped=dropped,
        mentions=mentions,
    )


def strings(value: Any) -> Iterator[str]:
    """Every string in a payload, keys excluded."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def shown(payload: Payload) -> str:
    """All the text a reader (or a keyword check) can see."""
    return "\n".join(strings(payload))


def markup(payload: Payload) -> list[str]:
    """The strings the platform parses as markup (markdown, mention tags)."""
    if payload.get("msg_type") == "interactive":
        return [e["content"] for e in payload["card"]["elements"] if e["tag"] == "markdown"]
    if payload.get("msg_type") == "text":
        return [payload["content"]["text"]]
    kind = payload["msgtype"]
    return [payload[kind].get("text") or payload[kind].get("content")]


def body_bytes(payload: Payload) -> int:
    return len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def assert_within_limits(module: ModuleType, payload: Payload) -> None:
    assert body_bytes(payload) <= module.LIMITS.body_bytes
    assert registry.refusal(module, payload) == ""


# --- what the message says -----------------------------------------------------------------------------


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_header_shows_severity_count_service_and_environment(module: ModuleType) -> None:
    payload = module.render(digest(group(count=57)))
    assert "ERROR · 57 records · checkout · prod" in shown(payload)


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_header_leaves_out_what_is_not_set(module: ModuleType) -> None:
    payload = module.render(digest(group(count=3), service=None, environment=None))
    assert re.search(r"ERROR · 3 records(?! ·)", shown(payload))


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_a_storm_of_one_template_reads_as_one_counted_group(module: ModuleType) -> None:
    payload = module.render(digest(group("order 42 not found", count=5000, last=T0 + 127)))
    text = shown(payload)
    assert "ERROR · 5,000 records" in text
    assert "order 42 not found" in text
    assert "app/orders.py:42 in place" in text
    assert "first 22:13:20 · last 22:15:27" in text


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_group_seen_before_shows_its_total_since_first_seen(module: ModuleType) -> None:
    payload = module.render(digest(group(count=57, total=5000, first=T0 - 3600, last=T0 + 10)))
    assert "5,000 since 21:13:20" in shown(payload)


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_new_group_shows_its_traceback_and_repeat_shows_one_line(module: ModuleType) -> None:
    new = group("payment failed", count=2, traceback=TRACEBACK)
    repeat = group("cache stale", count=9, repeat=True, traceback=TRACEBACK.replace("ValueError", "KeyError"),
                   logger="app.cache")
    text = shown(module.render(digest(new, repeat)))
    assert "ValueError: card declined" in text
    assert "raise ValueError(reason)" in text
    assert "KeyError" not in text
    assert "×9 more since last alert" in text
    assert "cache stale" in text


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_long_traceback_keeps_its_innermost_frames(module: ModuleType) -> None:
    frames = "".join(f'  File "app/deep.py", line {n}, in f{n}\n    f{n + 1}()\n' for n in range(200))
    text = shown(module.render(digest(group(traceback="Traceback (most recent call last):\n" + frames
                                             + "RecursionError: too deep\n"))))
    assert "RecursionError: too deep" in text
    assert "line 199, in f199" in text
    assert "line 3, in f3" not in text


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_thousand_groups_end_with_an_account_of_the_rest(module: ModuleType) -> None:
    groups = tuple(group(f"failure kind {n}", count=n + 1, logger=f"app.part{n}") for n in range(1000))
    payload = module.render(digest(*groups))
    text = shown(payload)
    found = re.search(r"\+([\d,]+) more groups \(([\d,]+) records\)", text)
    assert found is not None
    more, records = (int(value.replace(",", "")) for value in found.groups())
    visible = [g for g in groups if re.search(rf"failure kind {g.count - 1}\b", text)]
    assert more + len(visible) == 1000
    assert records + sum(g.count for g in visible) == sum(g.count for g in groups)
    assert_within_limits(module, payload)


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_thousand_groups_render_fast(module: ModuleType) -> None:
    groups = tuple(group("日志 " * 400 + str(n), count=n + 1, traceback=TRACEBACK * 20) for n in range(1000))
    many = digest(*groups)
    best = min(_timed(lambda: module.render(many)) for _ in range(3))
    assert best < 0.05


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_dropped_records_are_reported(module: ModuleType) -> None:
    assert "120 records dropped: buffer full" in shown(module.render(digest(group(), dropped=120)))
    only_drops = module.render(digest(dropped=7))
    assert "7 records dropped" in shown(only_drops)


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_overflow_bucket_says_how_many_groups_it_holds(module: ModuleType) -> None:
    bucket = group("records of further groups", count=800, merged=37, level=logging.WARNING, logger="chatlog")
    text = shown(module.render(digest(group(count=5), bucket)))
    assert "×800" in text and "37 other groups" in text
    assert "38 groups" in text


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_footer_shows_window_host_and_pid(module: ModuleType) -> None:
    text = shown(module.render(digest(group(first=T0, last=T0 + 127))))
    assert "22:13:20–22:15:27 UTC · web-1 · pid 4242" in text


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_window_across_midnight_shows_dates(module: ModuleType) -> None:
    text = shown(module.render(digest(group(first=T0, last=T0 + 6 * 3600))))
    assert "2023-11-14 22:13:20–2023-11-15 04:13:20 UTC" in text


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_keyword_is_in_the_message_when_configured(module: ModuleType) -> None:
    payload = module.render(digest(group()), module.LIMITS, "chatlog-alert")
    assert "chatlog-alert" in registry.shown(module, payload)


def test_the_destinations_keyword_is_in_its_messages() -> None:
    for bot in (feishu.Feishu("T", keyword="kw-1"), dingtalk.DingTalk("T", keyword="kw-1"),
                wecom.WeCom("T", keyword="kw-1")):
        assert "kw-1" in shown(bot.render(digest(group())))


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_render_is_a_pure_function_of_the_digest(module: ModuleType) -> None:
    one = digest(group(count=3, traceback=TRACEBACK), mentions=("all",))
    assert module.render(one, module.LIMITS, "kw") == module.render(one, module.LIMITS, "kw")


@pytest.mark.parametrize(("level", "colour"), [
    (logging.CRITICAL, "carmine"), (logging.ERROR, "red"), (logging.WARNING, "orange"),
    (logging.INFO, "blue"), (logging.DEBUG, "grey"),
])
def test_feishu_card_colour_follows_severity(level: int, colour: str) -> None:
    assert feishu.render(digest(group(level=level)))["card"]["header"]["template"] == colour


def test_feishu_card_is_json_1_0() -> None:
    payload = feishu.render(digest(group(traceback=TRACEBACK)))
    assert payload["msg_type"] == "interactive"
    card = payload["card"]
    assert card["config"] == {"wide_screen_mode": True}
    assert card["header"]["title"]["tag"] == "plain_text"
    assert "schema" not in card and "body" not in card
    assert "```\nTraceback (most recent call last):" in "\n".join(markup(payload))


def test_dingtalk_markdown_has_the_header_as_its_title() -> None:
    payload = dingtalk.render(digest(group(count=57)))
    assert payload["msgtype"] == "markdown"
    assert payload["markdown"]["title"] == "ERROR · 57 records · checkout · prod"


# --- mentions come from the configuration only --------------------------------------------------------


def test_feishu_mentions_render_as_card_at_tags() -> None:
    text = "\n".join(markup(feishu.render(digest(group(), mentions=("all", "ou_abc")))))
    assert "<at id=all></at>" in text and "<at id=ou_abc></at>" in text


def test_dingtalk_mentions_fill_at_and_the_text() -> None:
    payload = dingtalk.render(digest(group(), mentions=("all", "13800000001", "user-7")))
    assert payload["at"] == {"atMobiles": ["13800000001"], "atUserIds": ["user-7"], "isAtAll": True}
    assert "@13800000001" in payload["markdown"]["text"] and "@user-7" in payload["markdown"]["text"]


def test_wecom_markdown_mentions_userids_and_a_text_message_notifies_all_and_phones() -> None:
    one = digest(group(count=3), mentions=("all", "zhangsan", "13800000001"))
    markdown, text = wecom.WeCom("KEY").render_all(one)
    assert "<@zhangsan>" in markdown["markdown"]["content"]
    content = markdown["markdown"]["content"]
    assert "<@all>" not in content and "13800000001" not in content
    assert text["text"]["mentioned_list"] == ["@all"]
    assert text["text"]["mentioned_mobile_list"] == ["13800000001"]
    assert "ERROR · 3 records" in text["text"]["content"]
    assert wecom.WeCom("KEY").render_all(digest(group(), mentions=("zhangsan",)))[1:] == ()


def test_mention_ids_that_could_break_markup_are_left_out() -> None:
    text = "\n".join(markup(feishu.render(digest(group(), mentions=("ou_ok", "x></at><at id=all")))))
    assert text.count("<at ") == 1


# --- text from log records is inert ---------------------------------------------------------------------

HOSTILE = [
    '<at user_id="all">所有人</at>',
    "<at id=all></at>",
    "@13800000000",
    "<@all>",
    '<font color="warning">evil</font>',
    "[x](http://evil)",
    "![i](http://evil/a.png)",
    '"},{"tag":"action","actions":[{"tag":"button","url":"http://evil"}]},{"tag":"markdown","content":"',
    "```\n# heading\n```",
    "[ref]: http://evil\n[ref]",
    "\u202eevil\x00\x1b[31m\ud800",
]
HOSTILE_TEXT = " ".join(HOSTILE)


def hostile_digest(mentions: tuple[str, ...] = ()) -> Digest:
    nasty = group(
        HOSTILE_TEXT, count=3, traceback="\n".join(HOSTILE), logger=HOSTILE[0], pathname=HOSTILE[5],
        func=HOSTILE[3], extra=(("note", HOSTILE[1]), (HOSTILE[6], HOSTILE[4])),
    )
    repeat = group(HOSTILE_TEXT, count=2, repeat=True, logger=HOSTILE[2])
    return digest(nasty, repeat, service=HOSTILE[4], environment=HOSTILE[2], host=HOSTILE[6],
                  mentions=mentions)


_OWN_TAGS = re.compile(r'<font color="(?:warning|comment|info)">|</font>')


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_log_text_creates_no_mention_link_image_or_tag(module: ModuleType) -> None:
    payload = module.render(hostile_digest())
    assert registry.live_markup(module, payload) == []
    assert registry.notified(module, payload) == []
    assert "\ufffd" in registry.shown(module, payload)


def test_feishu_card_holds_only_the_elements_chatlog_emits() -> None:
    payload = feishu.render(hostile_digest())
    assert set(payload) == {"msg_type", "card"}
    assert set(payload["card"]) == {"config", "header", "elements"}

    def tags(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            if "tag" in value:
                yield value["tag"]
            for item in value.values():
                yield from tags(item)
        elif isinstance(value, list):
            for item in value:
                yield from tags(item)

    assert set(tags(payload["card"])) <= {"markdown", "hr", "note", "plain_text"}
    elements = [element["tag"] for element in payload["card"]["elements"]]
    assert elements == ["markdown", "hr", "markdown", "markdown", "hr", "note"]
    for markdown in markup(payload):
        assert markdown.count("```") in (0, 2)


def test_hostile_text_cannot_add_to_configured_mentions() -> None:
    text = "\n".join(markup(feishu.render(hostile_digest(mentions=("ou_abc",)))))
    assert text.count("<at ") == 1
    payload = dingtalk.render(hostile_digest(mentions=("13800000000",)))
    assert payload["markdown"]["text"].count("@13800000000") == 1
    assert payload["at"]["atMobiles"] == ["13800000000"]
    content = wecom.render(hostile_digest(mentions=("zhangsan",)))["markdown"]["content"]
    assert content.count("<@") == 1


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_multi_line_messages_stay_on_their_line(module: ModuleType) -> None:
    message = "first line\n# Resolved, ignore\r\n---\u2028last line"
    text = registry.shown(module, module.render(digest(group(message))))
    assert "first line ⏎ # Resolved, ignore ⏎ --- ⏎ last line" in text


# --- sizes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_megabyte_message_is_cut_visibly_within_limits(module: ModuleType) -> None:
    huge = group("数据库连接失败" * 150_000, traceback=("x" * 10_000 + "\n") * 100, count=2)
    payload = module.render(digest(huge), module.LIMITS, "kw")
    assert_within_limits(module, payload)
    assert "… (truncated)" in shown(payload)
    assert "kw" in shown(payload)


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_lone_surrogates_and_control_characters_never_reach_the_payload(module: ModuleType) -> None:
    odd = group("bad \ud800 bytes \udcff here\x00\x07", logger="app\udc80", traceback="tb \ud83d\x1b[0m")
    payload = module.render(digest(odd, service="svc\ud800", host="h\x00"))
    text = json.dumps(payload, ensure_ascii=False)
    text.encode("utf-8")
    assert "bad \ufffd bytes \ufffd here" in text
    assert "\\u0000" not in text and "\\u0007" not in text and "\\u001b" not in text


def test_wecom_falls_back_to_text_when_markdown_cannot_fit() -> None:
    tight = Limits(body_bytes=5_000, per_minute=18, text_bytes=200)
    payload = wecom.render(digest(group(count=57), mentions=("all", "zhangsan", "13800000001")), tight)
    assert payload["msgtype"] == "text"
    body = payload["text"]
    assert "ERROR · 57 records · checkout · prod" in body["content"]
    assert len(body["content"].encode()) <= 2_048
    assert body["mentioned_list"] == ["zhangsan", "@all"]
    assert body["mentioned_mobile_list"] == ["13800000001"]


@pytest.mark.parametrize("module", PLATFORMS, ids=IDS)
def test_hard_fallback_still_fits_and_keeps_the_header(module: ModuleType) -> None:
    tiny = Limits(body_bytes=900, per_minute=18, text_bytes=100)
    many = digest(*(group("x" * 500, count=n + 1, traceback=TRACEBACK) for n in range(20)))
    payload = module.render(many, tiny)
    assert body_bytes(payload) <= 900
    assert "ERROR · 210 records · checkout · prod" in shown(payload)


# --- shared pieces --------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.characters(categories=["L", "N", "P", "S", "Cs", "Zs"]), max_size=200),
       limit=st.integers(0, 300))
def test_truncate_utf8_cuts_on_a_character_boundary_and_says_so(text: str, limit: int) -> None:
    cut = _text.truncate_utf8(_text.clean(text), limit)
    assert len(cut.encode("utf-8")) <= limit
    if cut != _text.clean(text) and limit >= len(_text.MARKER.encode()):
        assert cut.endswith(_text.MARKER)
        assert _text.clean(text).startswith(cut[: -len(_text.MARKER)])


def test_clean_keeps_newlines_and_tabs_and_pairs_surrogates() -> None:
    assert _text.clean("a\tb\nc\x00\x1b\x7f\u202e") == "a\tb\nc"
    assert _text.clean("\ud83d\ude00 \ud800") == "😀 \ufffd"
    assert _text.utf8_len("数据") == 6


# --- every digest, every platform ------------------------------------------------------------------------

CHARS = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.sampled_from(list("<>[]()!@`*_#~|\\\"\n\t\x00\u2028")),
)
FRAGMENTS = st.text(alphabet=CHARS, max_size=12) | st.sampled_from(["<at id=all></at>", "@all", "](x)", "库"])
TEXT = st.builds(lambda parts, times: "".join(parts) * times, st.lists(FRAGMENTS, max_size=4),
                 st.sampled_from([1, 1, 1, 5, 300]))
TIMES = st.floats(min_value=0, max_value=4e9)
LEVELS = st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL,
                          5, 60])


@st.composite
def summaries(draw: st.DrawFn) -> GroupSummary:
    count = draw(st.integers(1, 10**9))
    level = draw(LEVELS)
    extra = tuple(draw(st.lists(st.tuples(TEXT, TEXT), max_size=4)))
    sample = Entry(created=T0, level=level, level_name=logging.getLevelName(level), logger=draw(TEXT),
                   message=draw(TEXT), pathname=draw(TEXT), lineno=draw(st.integers(0, 10**6)),
                   func=draw(TEXT), traceback=draw(st.none() | TEXT), extra=extra)
    first, last = sorted((draw(TIMES), draw(TIMES)))
    return GroupSummary(sample=sample, count=count, total=count + draw(st.integers(0, 10**6)),
                        first_seen=first, last_seen=last, repeat=draw(st.booleans()),
                        merged_groups=draw(st.sampled_from([0, 0, 0, 3, 10**5])))


@st.composite
def digests(draw: st.DrawFn) -> Digest:
    groups = tuple(draw(st.lists(summaries(), max_size=50)))
    start, end = sorted((draw(TIMES), draw(TIMES)))
    context = Context(service=draw(st.none() | TEXT), environment=draw(st.none() | TEXT), host=draw(TEXT),
                      pid=draw(st.integers(0, 2**22)))
    mentions = draw(st.lists(st.sampled_from(["all", "ou_abc", "13800000000", "user-1"]) | TEXT, max_size=4))
    return Digest(groups=groups, level_counts=(("ERROR", sum(g.count for g in groups)),),
                  window_start=start, window_end=end, context=context,
                  dropped=draw(st.integers(0, 10**6)), mentions=tuple(mentions))


@settings(max_examples=100, deadline=None)
@given(one=digests(), keyword=st.none() | st.text(string.ascii_letters, min_size=1, max_size=20))
def test_every_digest_renders_valid_utf8_within_limits_with_its_header(one: Digest,
                                                                       keyword: str | None) -> None:
    for module in PLATFORMS:
        payload = module.render(one, module.LIMITS, keyword)
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
        assert_within_limits(module, payload)
        text = registry.shown(module, payload)
        assert _text.header_line(one, registry.class_of(module).escape) in text
        if keyword:
            assert keyword in text
