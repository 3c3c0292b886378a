"""One group of a digest, within a budget: the pieces a platform lays out (`group_view`), its text
lines (`group_lines`), and `fit`, which tries `BUDGETS` from the fullest to the smallest until a
platform's payload is within its byte limit. Every piece is cleaned and escaped (`chatlog.platforms._text`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chatlog._lazy import lazy_pattern
from chatlog._record import Record
from chatlog.digest import Digest, GroupSummary
from chatlog.platforms._base import Payload
from chatlog.platforms._text import (
    Escape,
    clean,
    clip,
    count,
    count_phrase,
    inline,
    moment,
    payload_bytes,
    plural,
)


class Budget(Record):
    """How much of a digest one render shows; `fit` tries `BUDGETS` from the first to the last."""

    groups: int
    traceback_lines: int
    message_chars: int
    extras: int


BUDGETS: tuple[Budget, ...] = (
    Budget(groups=10, traceback_lines=12, message_chars=500, extras=5),
    Budget(groups=10, traceback_lines=6, message_chars=300, extras=3),
    Budget(groups=10, traceback_lines=0, message_chars=300, extras=3),
    Budget(groups=5, traceback_lines=0, message_chars=200, extras=0),
    Budget(groups=3, traceback_lines=0, message_chars=120, extras=0),
    Budget(groups=1, traceback_lines=0, message_chars=80, extras=0),
)


class GroupView(Record):
    """One group's pieces, cleaned and escaped, for a platform to lay out in its markup."""

    count: str
    """``"×57"``."""
    level: str
    logger: str
    message: str
    since: str
    """``"5,000 since 09:12:03"`` when the group has more records than this digest shows, else ``""``."""
    where: str
    """``"app/pay.py:42 in charge · first 09:12:03 · last 09:14:10"``."""
    extras: str
    traceback: tuple[str, ...]
    repeat: bool
    merged_groups: int
    template: str = ""
    """``"template: order <*> failed"`` when the group's records varied from its sample, else ``""``."""
    group_id: str = ""
    """``"#a3f2"``: what a person types to mute or acknowledge the group; "" for a merged bucket."""
    command: str = ""
    """``"to silence, type: mute #a3f2 1h · ack #a3f2"`` with ``Digest.commands``, else ``""``."""


def group_view(group: GroupSummary, digest: Digest, budget: Budget, escape: Escape) -> GroupView:
    """The pieces of `group` within `budget`; no traceback for a repeat or a merged bucket."""
    sample = group.sample
    full = not group.repeat and not group.merged_groups
    return GroupView(
        count=count_phrase(group, escape),
        level=inline(sample.level_name, 40, escape),
        logger=inline(sample.logger, 80, escape),
        message=inline(sample.message, budget.message_chars, escape) or "(empty message)",
        since=_since(group, digest),
        where=_where(group, digest, escape),
        extras=_extras(sample.extra[: budget.extras], escape),
        traceback=traceback_tail(sample.traceback, budget.traceback_lines, escape) if full else (),
        repeat=group.repeat,
        merged_groups=group.merged_groups,
        template=_template(group, budget, escape) if full else "",
        group_id=f"#{group.group_id}" if group.group_id else "",
        command=f"to silence, type: mute #{group.group_id} 1h · ack #{group.group_id}"
        if digest.commands and group.group_id and full else "",
    )


_PLACEHOLDER = lazy_pattern(r"%(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa]")


def _template(group: GroupSummary, budget: Budget, escape: Escape) -> str:
    """The group's template with ``<*>`` where its records' values go; only when more than one record
    shares it (the sample is then one of them, verbatim) and it says something the sample does not."""
    if group.total < 2 or not group.template:
        return ""
    pattern = group.template
    if "<*>" not in pattern:  # record.msg of a record with %-arguments
        pattern = "%".join(_PLACEHOLDER.sub("<*>", part) for part in pattern.split("%%"))
    if pattern == group.sample.message:
        return ""
    return "template: " + inline(pattern, budget.message_chars, escape)


def _since(group: GroupSummary, digest: Digest) -> str:
    if group.total <= group.count:
        return ""
    return f"{count(group.total)} since {moment(group.first_seen, digest)}"


def _where(group: GroupSummary, digest: Digest, escape: Escape) -> str:
    location = group.sample.location
    place = inline(location if len(location) <= 160 else "…" + location[-160:], 200, escape)
    last = moment(group.last_seen, digest)
    if group.total > group.count:
        seen = f"last {last}"
    elif group.count == 1:
        seen = f"at {last}"
    else:
        seen = f"first {moment(group.first_seen, digest)} · last {last}"
    return f"{place} · {seen}"


def _extras(extra: Sequence[tuple[str, str]], escape: Escape) -> str:
    return " · ".join(f"{inline(key, 40, escape)}={inline(value, 80, escape)}" for key, value in extra)


def group_lines(view: GroupView, strong: Callable[[str], str]) -> list[str]:
    """The text lines of a group (without its traceback); `strong` marks up the count.

    A repeat or a merged bucket is one line; user text never starts a line after the first, and is
    never followed directly by ``(`` or ``[`` from chatlog.
    """
    if view.merged_groups:
        return [f"{strong(view.count)} in {plural(view.merged_groups, 'other group')} (group limit reached)"]
    if view.repeat:
        count_text = strong(f"{view.count} more since last alert")
        head = " · ".join(part for part in (count_text, view.level, view.logger, view.group_id) if part)
        return [f"{head} · {view.message}"]
    parts = (strong(view.count), view.level, view.logger, view.group_id, view.since)
    title = " · ".join(part for part in parts if part)
    lines = (title, view.message, view.template, view.where, view.extras, view.command)
    return [line for line in lines if line]


def traceback_tail(text: str | None, max_lines: int, escape: Escape) -> tuple[str, ...]:
    """The last `max_lines` non-blank lines of a traceback (innermost frames, the exception), escaped;
    ``"…"`` first when earlier lines were left out."""
    if not text or max_lines <= 0:
        return ()
    tail = clean(text[-max_lines * 400 :])
    lines = [line.rstrip() for line in tail.splitlines() if line.strip()]
    shown = [escape(clip(line, 200)) for line in lines[-max_lines:]]
    if len(lines) > max_lines or len(tail) < len(text):
        shown.insert(0, "…")
    return tuple(shown)


def fit(
    build: Callable[[Budget], Payload],
    limit_bytes: int,
    accept: Callable[[Payload], bool] | None = None,
) -> Payload | None:
    """The first of `build(budget)` for `BUDGETS` whose body is within `limit_bytes` (and that `accept`
    takes, for a platform's own limits); None when even the smallest is too big."""
    for budget in BUDGETS:
        payload = build(budget)
        if payload_bytes(payload) <= limit_bytes and (accept is None or accept(payload)):
            return payload
    return None
