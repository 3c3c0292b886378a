"""Links to where the logs are (issue 14, item 4): ``links={"Logs": "https://kibana.example/...?q={fingerprint}"}``.

`parse_links` checks the templates at construction (only `PLACEHOLDERS`, only http(s)); `expand`
fills one template with values, each URL-encoded, so no log text can add a query parameter, a
fragment, a path or another scheme. The handler keeps the links in the digest's `Context`;
`message_links` and `group_links` give each renderer ``(label, url)`` pairs to lay out in its markup.
"""

from __future__ import annotations

import string
import urllib.parse
from collections.abc import Callable, Mapping

from chatlog._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatlog.digest import Digest, GroupSummary

PLACEHOLDERS: tuple[str, ...] = (
    "service", "environment", "host", "level", "logger", "fingerprint", "group_id",
    "first", "last", "first_ms", "last_ms",
)
"""``{first}``/``{last}``: ISO 8601 UTC (``2026-12-01T21:12:03Z``); ``{first_ms}``/``{last_ms}``: Unix
milliseconds (Kibana's and Grafana's ``from``/``to``)."""
PER_GROUP = frozenset({"level", "logger", "fingerprint", "group_id"})
"""A template naming one of these gives one link per group; otherwise one link per message."""
EXAMPLE = 'links={"Logs": "https://kibana.example/app/discover#/?q={group_id}&from={first}&to={last}"}'


class Link(Record):
    """One configured link: its label and its template, checked."""

    label: str
    template: str
    names: frozenset[str]

    @property
    def per_group(self) -> bool:
        """True when the template names a group's own value (one link per group)."""
        return bool(self.names & PER_GROUP)


def parse_links(links: Mapping[str, str] | None) -> tuple[Link, ...]:
    """The checked links; ValueError/TypeError naming the bad label or placeholder, with `EXAMPLE`."""
    if links is None:
        return ()
    if not isinstance(links, Mapping):
        raise TypeError(f"links must map a label to a URL template, e.g. {EXAMPLE}")
    return tuple(_link(label, template) for label, template in links.items())


def _link(label: object, template: object) -> Link:
    if not isinstance(label, str) or not label.strip() or not isinstance(template, str):
        raise TypeError(f"links maps a label (text) to a URL template (text), e.g. {EXAMPLE}; got {label!r}")
    scheme = urllib.parse.urlsplit(template).scheme.lower()
    if scheme not in ("http", "https") or not template.lower().startswith(f"{scheme}://"):
        raise ValueError(f"links[{label!r}] must be an http(s) URL template, e.g. {EXAMPLE}")
    names: set[str] = set()
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"links[{label!r}] is not a valid template ({exc}); e.g. {EXAMPLE}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"links[{label!r}] uses the unknown placeholder {{{name}}}: the placeholders "
                             f"are {known}; e.g. {EXAMPLE}")
        names.add(name)
    return Link(label.strip(), template, frozenset(names))


def expand(link: Link, values: Mapping[str, str]) -> str:
    """The URL of `link` with each placeholder's value URL-encoded (every reserved character quoted)."""
    quoted = {name: urllib.parse.quote(values.get(name, ""), safe="") for name in link.names}
    return link.template.format_map(quoted)


def message_links(digest: Digest) -> tuple[tuple[str, str], ...]:
    """``(label, url)`` of the links that name no group's own value: one each per message, over the
    digest's window."""
    values = _common(digest, digest.window_start, digest.window_end)
    return tuple((link.label, expand(link, values)) for link in digest.context.links if not link.per_group)


def group_links(digest: Digest, group: GroupSummary) -> tuple[tuple[str, str], ...]:
    """``(label, url)`` of the per-group links for `group` (none for an "other groups" bucket)."""
    if group.merged_groups:
        return ()
    values = _common(digest, group.first_seen, group.last_seen)
    values.update(level=group.sample.level_name, logger=group.sample.logger, group_id=group.group_id,
                  fingerprint=group.template or group.sample.message)
    return tuple((link.label, expand(link, values)) for link in digest.context.links if link.per_group)


def _common(digest: Digest, first: float, last: float) -> dict[str, str]:
    context = digest.context
    return {"service": context.service or "", "environment": context.environment or "",
            "host": context.host, "first": _iso(first), "last": _iso(last),
            "first_ms": str(int(first * 1000)), "last_ms": str(int(last * 1000)),
            "level": digest.level_name}


def _iso(ts: float) -> str:
    from datetime import datetime, timezone  # here: `import chatlog` stays cheap (tests/test_import_cost.py)

    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    except (OverflowError, OSError, ValueError):
        return ""


def markdown_links(links: tuple[tuple[str, str], ...], escape: Callable[[str], str]) -> str:
    """``[Logs](https://…) · [Trace](https://…)``: the links as markdown, labels escaped, and the
    characters that would end a markdown link target (space, parentheses) quoted in the URL."""
    return " · ".join(f"[{escape(label)}]({url_for_markup(url)})" for label, url in links)


def url_for_markup(url: str) -> str:
    """`url` with the characters that end a link in some markup quoted (they are never in a value)."""
    return url.translate(_MARKUP_QUOTES)


_MARKUP_QUOTES = str.maketrans({" ": "%20", "(": "%28", ")": "%29", "<": "%3C", ">": "%3E", "|": "%7C",
                                '"': "%22", "`": "%60", "[": "%5B", "]": "%5D"})
