"""Links to the logs (issue 14, item 4, the checked part): templates are checked at construction and
log values can only ever be one URL-encoded value."""

from __future__ import annotations

import urllib.parse

import pytest

from chatlog.links import expand, parse_links

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
