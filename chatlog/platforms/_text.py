"""What the platform modules share beyond `_base`: clean text, UTF-8 sizes, the lines of a digest,
and fitting text within a byte limit (a group's pieces and fitting by budget: `_groups`).

Every piece of text that comes from a log record or the environment (messages, logger names, paths,
tracebacks, extra values, service, environment, host) goes through `clean` and then the platform's
`escape` before it reaches a payload; mentions, links and tags come only from the platform module.
Sizes are UTF-8 bytes, as the platforms count them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chatlog._lazy import lazy_pattern
from chatlog.digest import Digest, GroupSummary, MutedNote
from chatlog.platforms._base import Payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime

MARKER = "… (truncated)"
"""Ends every text that chatlog had to cut, so a reader knows there was more."""

Escape = Callable[[str], str]
"""A platform's way of making cleaned user text inert in its markup (no mention, link, tag or font)."""

_MARKER_BYTES = len(MARKER.encode("utf-8"))
# Bidirectional overrides are dropped with the control characters: they can make text read differently
# from what it says.
_CONTROL = lazy_pattern("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = lazy_pattern("[\ud800-\udfff]")
_LINE_SEPARATORS = str.maketrans({"\u2028": "\n", "\u2029": "\n"})
_INERT = str.maketrans({"<": "＜", ">": "＞", "`": "ˋ"})
# "](" opens a link or image target, "][" a reference link, "]:" a link definition.
_LINK = lazy_pattern(r"\](?=[(\[:])")
_MENTION_ID = lazy_pattern(r"[\w.@+-]{1,128}")
_WHITESPACE_RUN = lazy_pattern(r"[ \t]*\n[ \t\n]*")


# --- text --------------------------------------------------------------------------------------------


def clean(text: str) -> str:
    """`text` safe to encode and show: control characters dropped (but ``\\n`` and ``\\t``), Unicode
    line separators made ``\\n``, lone surrogates and undecodable bytes (``surrogateescape``) replaced
    by U+FFFD; valid surrogate pairs become the character they encode."""
    text = _CONTROL.sub("", text).translate(_LINE_SEPARATORS)
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def inert(text: str) -> str:
    """Cleaned text that no markdown dialect of the three platforms turns into markup.

    ``<`` and ``>`` become full-width ``＜＞`` (no ``<at>``, ``<@id>``, ``<font>``, ``<a>``, autolink),
    backticks become ``ˋ`` (no code span or fence ends early), and a ``]`` that would close a link,
    image or link definition becomes ``］``. Entities are not used: they show literally inside code.
    """
    return _LINK.sub("］", text.translate(_INERT))


def no_tags(text: str) -> str:
    """`text` cleaned, with ``<`` and ``>`` full-width: enough for plain text messages, where only
    mention tags (``<at user_id=..>``, ``<@id>``) are markup."""
    return clean(text).replace("<", "＜").replace(">", "＞")


def utf8_len(text: str) -> int:
    """Length of `text` in UTF-8 bytes (a lone surrogate counts as the 3 bytes U+FFFD takes)."""
    return len(text.encode("utf-8", "surrogatepass"))


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` within `max_bytes` UTF-8 bytes, cut on a character boundary and ending with `MARKER`."""
    if len(text) * 4 <= max_bytes:
        return text
    head = text[: max_bytes + 1]  # every character takes at least one byte
    data = head.encode("utf-8", "surrogatepass")
    if len(head) == len(text) and len(data) <= max_bytes:
        return text
    if max_bytes < _MARKER_BYTES:
        return MARKER.encode("utf-8")[: max(max_bytes, 0)].decode("utf-8", "ignore")
    return data[: max_bytes - _MARKER_BYTES].decode("utf-8", "ignore") + MARKER


def clip(text: str, max_chars: int) -> str:
    """At most `max_chars` characters of `text`, then `MARKER` when something was cut."""
    return text if len(text) <= max_chars else text[:max_chars] + MARKER


def inline(text: str, max_chars: int, escape: Escape) -> str:
    """User text as one escaped line: cut to `max_chars`, cleaned, line breaks shown as `` ⏎ ``."""
    one_line = _WHITESPACE_RUN.sub(" ⏎ ", clean(clip(text, max_chars)).strip())
    return escape(one_line.replace("\t", " "))


def with_keyword(text: str, keyword: str | None, separator: str = " · ") -> str:
    """`text` ending with `keyword` when one is configured and `text` does not already contain it."""
    if not keyword or keyword in text:
        return text
    return f"{text}{separator}{clean(keyword)}" if text else clean(keyword)


def mention_ids(mentions: Sequence[str]) -> tuple[str, ...]:
    """The mention ids worth rendering, in order, without duplicates; ``@all`` is spelled ``all``.

    Ids come from configuration, not from records; still, one with characters no platform id has
    (``<``, ``>``, quotes, spaces) is left out rather than allowed to break the markup.
    """
    ids: list[str] = []
    for raw in mentions:
        value = "all" if raw.strip() in ("all", "@all") else raw.strip()
        if _MENTION_ID.fullmatch(value) and value not in ids:
            ids.append(value)
    return tuple(ids)


def is_mobile(mention: str) -> bool:
    """True for an id made of ASCII digits only (a phone number)."""
    return mention.isascii() and mention.isdigit()


# --- numbers and times ---------------------------------------------------------------------------------


def count(n: int) -> str:
    """``5000`` → ``"5,000"``."""
    return f"{n:,}"


def plural(n: int, word: str) -> str:
    """``"1 record"``, ``"5,000 records"``."""
    return f"{count(n)} {word}" if n == 1 else f"{count(n)} {word}s"


def _utc(ts: float) -> datetime | None:
    # Imported here, not at module level: chatlog's thread pays for it, not `import chatlog`.
    from datetime import datetime, timezone

    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def moment(ts: float, digest: Digest) -> str:
    """UTC ``HH:MM:SS``; with the date when the digest's window spans days or `ts` is on another day."""
    when, end, start = _utc(ts), _utc(digest.window_end), _utc(digest.window_start)
    if when is None:
        return "?"
    dated = end is None or start is None or start.date() != end.date() or when.date() != end.date()
    return when.strftime("%Y-%m-%d %H:%M:%S" if dated else "%H:%M:%S")


def duration(seconds: float) -> str:
    """``127.4`` → ``"2m 7s"``; ``""`` for a span under a second (or not a number)."""
    if not seconds >= 1 or seconds > 1e9:
        return ""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return " ".join(part for part in parts if part)


# --- the lines of a digest -------------------------------------------------------------------------------


def header_line(digest: Digest, escape: Escape) -> str:
    """``"CRITICAL · 893 records · checkout · prod"``: the highest severity, the total of every level,
    service, environment (when set). `summary_line` splits the total by level."""
    records = plural(digest.total if digest.groups else digest.dropped, "record")
    parts = [inline(digest.level_name, 40, escape), records if digest.groups else f"{records} dropped"]
    for value in (digest.context.service, digest.context.environment):
        if value:
            parts.append(inline(value, 60, escape))
    return " · ".join(parts)


def summary_line(digest: Digest, escape: Escape) -> str:
    """``"1 CRITICAL, 892 ERROR · 3 groups within 7m 2s"``: the header's total split by level (most
    severe first), the groups and the window; ``""`` without groups."""
    if not digest.groups:
        return ""
    levels = ", ".join(f"{count(n)} {inline(name, 40, escape)}" for name, n in digest.level_counts[:6])
    if len(digest.level_counts) > 6:
        levels += ", …"
    groups = sum(group.merged_groups or 1 for group in digest.groups)
    text = f"{levels} · {plural(groups, 'group')}" if levels else plural(groups, "group")
    span = duration(digest.window_end - digest.window_start)
    if span:
        text += f" within {span}"
    for note in digest.muted[:5]:
        text += f" · {muted_note(note, escape)}"
    return text


def muted_note(note: MutedNote, escape: Escape) -> str:
    """``"#a3f2 ×120 muted by ou_alice until 15:00 UTC"``: a muted group's records since the last
    message."""
    # Imported here, not at module level: chatlog's thread pays for it, not `import chatlog`.
    from datetime import datetime, timezone

    until = datetime.fromtimestamp(note.until, timezone.utc).strftime("%H:%M")
    by = inline(note.by, 64, escape)
    return f"#{inline(note.group_id, 8, escape)} ×{count(note.count)} muted by {by} until {until} UTC"


def footer_line(digest: Digest, escape: Escape) -> str:
    """``"09:12:03–09:14:10 UTC · web-1 · pid 4242"``: the window, host and process."""
    parts = []
    if digest.groups:
        start, end = moment(digest.window_start, digest), moment(digest.window_end, digest)
        parts.append(f"{start} UTC" if start == end else f"{start}–{end} UTC")
    if digest.context.workers:
        parts.append(workers_phrase(digest.context.workers, escape))
        return " · ".join(parts)
    if digest.context.host:
        parts.append(inline(digest.context.host, 80, escape))
    if digest.context.pid:
        parts.append(f"pid {digest.context.pid}")
    return " · ".join(parts)


def workers_phrase(workers: Sequence[tuple[str, int]], escape: Escape) -> str:
    """``"16 workers on web-1"``, ``"20 workers on web-1, web-2"``, ``"64 workers on 9 hosts"``."""
    total = sum(n for _, n in workers)
    hosts = [inline(host, 80, escape) for host, _ in workers]
    where = ", ".join(hosts) if len(hosts) <= 3 else f"{len(hosts)} hosts"
    return f"{plural(total, 'worker')} on {where}"


def count_phrase(group: GroupSummary, escape: Escape) -> str:
    """``"×1,204"``; ``"×1,204 from 16 workers on web-1"`` when more than one process counted them."""
    phrase = f"×{count(group.count)}"
    if sum(n for _, n in group.sources) > 1:
        phrase += f" from {workers_phrase(group.sources, escape)}"
    return phrase


def more_line(hidden: Sequence[GroupSummary]) -> str:
    """``"+8 more groups (120 records)"`` for the groups a message leaves out; ``""`` for none."""
    if not hidden:
        return ""
    groups = sum(group.merged_groups or 1 for group in hidden)
    records = sum(group.count for group in hidden)
    return f"+{count(groups)} more {'group' if groups == 1 else 'groups'} ({plural(records, 'record')})"


def bold(text: str) -> str:
    """``**text**`` (markdown bold), or ``""`` for no text."""
    return f"**{text}**" if text else ""


def dropped_line(dropped: int) -> str:
    """``"120 records dropped: buffer full"``; ``""`` when nothing was dropped."""
    return f"{plural(dropped, 'record')} dropped: buffer full" if dropped > 0 else ""


def plain_summary(digest: Digest, escape: Escape) -> str:
    """The digest as a few plain lines (header, summary, the top groups, dropped, footer), for text-only
    messages and for the last fallback."""
    top = digest.groups[:3]
    lines = [header_line(digest, escape), summary_line(digest, escape)]
    for group in top:
        message = inline(group.sample.message, 200, escape)
        lines.append(f"{count_phrase(group, escape)} {inline(group.sample.logger, 60, escape)}: {message}")
    lines += [more_line(digest.groups[len(top) :]), dropped_line(digest.dropped), footer_line(digest, escape)]
    return "\n".join(line for line in lines if line)


# --- fitting -----------------------------------------------------------------------------------------


def payload_bytes(payload: Payload) -> int:
    """Size of the request body as the platforms count it: UTF-8 JSON, non-ASCII kept as is."""
    # Imported here, not at module level: chatlog's thread pays for it, not `import chatlog`.
    import json

    return len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def fit_text(make: Callable[[str], Payload], text: str, limit_bytes: int) -> Payload:
    """`make(text)` with `text` cut (visibly) until the body is within `limit_bytes`: the last fallback.

    JSON escaping at most doubles the bytes of cleaned text, so the second cut always fits when
    ``make("")`` does.
    """
    room = limit_bytes - payload_bytes(make(""))
    for attempt in (room, room // 2):
        payload = make(truncate_utf8(text, max(attempt, 0)))
        if payload_bytes(payload) <= limit_bytes:
            return payload
    return make("")


def answer_message(value: object) -> str:
    """A platform's message field as one short clean line (``""`` when it is not a string)."""
    return inline(value, 200, str) if isinstance(value, str) else ""
