"""Links to the logs (issue 14, item 4, the checked part): templates are checked at construction and
log values can only ever be one URL-encoded value."""

from __future__ import annotations

import html
import inspect
import json
import logging
import re
import urllib.parse
from types import ModuleType
from typing import Any

import pytest

import chatlog.loguru
from chatlog import ChatHandler
from chatlog._record import replace
from chatlog.digest import Digest
from chatlog.links import expand, parse_links
from chatlog.platforms import feishu
from tests import registry
from tests.test_render import digest, group

KIBANA = "https://kibana.example/app/discover#/?q={group_id}&from={first_ms}&to={last_ms}"


def test_a_template_with_documented_placeholders_is_accepted() -> None:
    (link,) = parse_links({"Logs": KIBANA})
    assert link.label == "Logs" and link.per_group
    assert not parse_links({"Dashboard": "https://grafana.example/d/x?var-svc={service}"})[0].per_group


@pytest.mark.parametrize("template", ["https://x.example/?q={message}", "https://x.example/{level!r}",
                                      "https://x.example/{level:>10}"])
def test_an_unknown_placeholder_fails_naming_it_with_an_example(template: str) -> None:
    with pytest.raises(ValueError, match=r"links\['Logs'\].*e\.g\. links=") as failure:
        parse_links({"Logs": template})
    assert "{group_id}" in str(failure.value)


@pytest.mark.parametrize("template", ["javascript:alert(1)//{level}", "ftp://x.example/{level}",
                                      "//x.example/{level}", "kibana.example/{level}", "https:/x"])
def test_a_template_that_is_not_http_fails(template: str) -> None:
    with pytest.raises(ValueError, match="http\\(s\\) URL template"):
        parse_links({"Logs": template})


def test_a_broken_template_fails_with_an_example() -> None:
    with pytest.raises(ValueError, match="not a valid template"):
        parse_links({"Logs": "https://x.example/{level"})


@pytest.mark.parametrize("hostile", ["a&admin=1#frag", "../../etc", "x\" onclick=\"y", "<script>", "a b/c?d",
                                     "javascript:alert(1)", "\u202eevil", "%2F", "){level}("])
def test_hostile_values_stay_one_encoded_value(hostile: str) -> None:
    (link,) = parse_links({"Logs": "https://kibana.example/search?q={logger}&env={environment}"})
    url = expand(link, {"logger": hostile, "environment": "prod"})
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "kibana.example", "/search")
    assert parts.fragment == ""
    assert urllib.parse.parse_qs(parts.query) == {"q": [hostile], "env": ["prod"]}
    assert not any(char in url for char in "<>\" ")


# --- rendered on every platform ---------------------------------------------------------------------------

HOSTILE_LOGGER = 'pay&admin=1#x") [a](http://evil) <a href="http://evil">'


def linked_digest() -> Digest:
    context_links = parse_links({"Logs": "https://kibana.example/search?q={logger}&from={first_ms}",
                                 "Board": "https://grafana.example/d/checkout?env={environment}"})
    base = digest(replace(group("order 7 failed", count=3, logger=HOSTILE_LOGGER), group_id="a3f2"),
                  replace(group("cache stale", count=2, logger="app.cache", level=logging.WARNING),
                          group_id="07bc"))
    return replace(base, context=replace(base.context, links=context_links))


def urls_in(payload: Any) -> list[str]:
    text = json.dumps(payload, ensure_ascii=False)
    found = re.findall(r'https://(?:kibana|grafana)\.example/[^\s)"<>|\]\\]*', text)
    return [html.unescape(url) for url in found]


@pytest.mark.parametrize("module", registry.MODULES, ids=registry.IDS)
def test_links_render_per_group_and_per_message_with_log_values_encoded(module: ModuleType) -> None:
    payload = module.render(linked_digest())
    urls = urls_in(payload)
    kibana = [urllib.parse.urlsplit(url) for url in urls if "kibana" in url]
    queries = sorted(urllib.parse.parse_qs(url.query)["q"][0] for url in kibana)
    assert queries == sorted([HOSTILE_LOGGER, "app.cache"])
    assert all(url.path == "/search" and url.fragment == "" for url in kibana)
    assert [url for url in urls if "grafana" in url] == ["https://grafana.example/d/checkout?env=prod"]
    assert len(urls) == 3  # one per group, one per message: nothing else became a link
    assert registry.refusal(module, payload) == ""


def test_feishu_links_are_buttons_that_open_their_url() -> None:
    card = feishu.render(linked_digest())["card"]
    buttons = [action for element in card["elements"] if element["tag"] == "action"
               for action in element["actions"]]
    assert [button["text"]["content"] for button in buttons] == ["Board", "Logs", "Logs"]
    assert all(button["url"].startswith("https://") for button in buttons)


def test_no_links_configured_adds_nothing() -> None:
    for module in registry.MODULES:
        assert urls_in(module.render(digest(group()))) == []


def test_the_handler_and_the_sink_refuse_a_bad_template_at_construction() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{message\}"):
        ChatHandler("wecom://KEY", links={"Logs": "https://kibana.example/?q={message}"})
    with pytest.raises(ValueError, match="http\\(s\\)"):
        chatlog.loguru.sink("wecom://KEY", links={"Logs": "file:///etc/{level}"})
    assert "links" in inspect.signature(chatlog.loguru.sink).parameters
