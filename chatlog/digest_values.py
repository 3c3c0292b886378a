"""The immutable values one message shows: the `Digest`, its `GroupSummary`s, `Context`, `Mentions`.

`chatlog.digest` (the `GroupTable` that builds them) re-exports every name here.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from chatlog._record import Record
from chatlog.entry import Entry
from chatlog.incident import AllClear
from chatlog.links import Link


class Context(Record):
    """Who is speaking: shown in every message header and footer."""

    service: str | None = None
    environment: str | None = None
    host: str = ""
    pid: int = 0
    workers: tuple[tuple[str, int], ...] = ()
    """A fleet's digest: per host, how many processes' records it holds (the footer names them)."""
    links: tuple[Link, ...] = ()
    """The handler's ``links=`` (`chatlog.links`), checked: every message renders them."""


class GroupSummary(Record):
    """One group of alike records within a digest: its count and one sample."""

    sample: Entry
    count: int
    total: int
    first_seen: float
    last_seen: float
    repeat: bool = False
    """True when this group was shown in full within `repeat_interval`: show one line, no traceback."""
    merged_groups: int = 0
    """For the overflow bucket: how many distinct groups were merged into it."""
    template: str = ""
    """The message template the group's records share (``record.msg``, or the message with ``<*>`` for
    its values: the template in the fingerprint); ``""`` when the key is not a fingerprint."""
    group_id: str = ""
    """Short stable id a person can type (``a3f2``, shown ``#a3f2``); "" for the overflow buckets."""
    sources: tuple[tuple[str, int], ...] = ()
    """Per host, how many processes' records this count holds (a fleet's digest; () for one process)."""


class Taken(Record):
    """A group's unsent records taken out of a `GroupTable` (handed to the fleet store)."""

    key: Hashable
    summary: GroupSummary
    unsent_first: float
    """When the first of the records taken was made (the summary's `first_seen` is the group's first)."""


class Mentions(Record):
    """Who a digest mentions: `always` (the destination's ``at=``), then the ids of every level in
    `by_level` (``mentions=``, sorted by level) that the digest's level reaches."""

    by_level: tuple[tuple[int, tuple[str, ...]], ...] = ()
    always: tuple[str, ...] = ()

    def for_level(self, level: int) -> tuple[str, ...]:
        """The ids a digest of `level` mentions, in order, each once."""
        ids = list(dict.fromkeys(self.always))
        for threshold, names in self.by_level:
            if level >= threshold:
                ids.extend(name for name in names if name not in ids)
        return tuple(ids)


class MutedNote(Record):
    """Records of a muted group kept out of messages since the last one: one line in the next message."""

    group_id: str
    count: int
    until: float
    """Unix seconds."""
    by: str


class Digest(Record):
    """Everything one message says: groups (most severe and most frequent first) and totals."""

    groups: tuple[GroupSummary, ...]
    level_counts: tuple[tuple[str, int], ...]
    window_start: float
    window_end: float
    context: Context = Context()
    dropped: int = 0
    mentions: tuple[str, ...] = ()
    batch: str = ""
    """Names the batch: the same across retries of one batch, new after each delivered message
    (platforms that de-duplicate, like Feishu's app ``uuid``, derive their key from it)."""
    muted: tuple[MutedNote, ...] = ()
    actions: bool = False
    """Show Mute/Ack buttons under each group: a ChatOps receiver takes this app bot's card callbacks."""
    all_clear: AllClear | None = None
    """The incident is over: the message leads with this, in the platform's "good" style (its records,
    if any, are below the incident's level)."""
    quota: str = ""
    """``"1,980 of 10,000 messages left this month"`` once ``quota=`` is 80 % used (`chatlog.quota`)."""
    commands: bool = False
    """Show the command to type under each group (``mute #a3f2 1h``): a ChatOps receiver reads this
    chat, whose group-bot messages cannot call back."""

    @property
    def total(self) -> int:
        """Records this digest accounts for (the sum of its group counts)."""
        return sum(group.count for group in self.groups)

    @property
    def level(self) -> int:
        """The most severe level in the digest (`logging.ERROR` when it only reports drops)."""
        return max((group.sample.level for group in self.groups), default=logging.ERROR)

    @property
    def level_name(self) -> str:
        """Name of `level`, as the records spelled it (custom levels such as loguru's SUCCESS too)."""
        level = self.level
        names = (group.sample.level_name for group in self.groups if group.sample.level == level)
        return next(names, None) or logging.getLevelName(level)
