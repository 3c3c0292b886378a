"""Grouping records by fingerprint: the `GroupTable` that builds the immutable `Digest` one message shows.

The values themselves (`Digest`, `GroupSummary`, `Context`, `Mentions`, …) are `chatlog.digest_values`'s,
importable from here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable

from chatlog.digest_values import Context, Digest, GroupSummary, Mentions, MutedNote, Taken
from chatlog.entry import Entry
from chatlog.incident import AllClear

__all__ = ["OTHER_GROUP", "OVERFLOWED_KEYS", "Context", "Digest", "GroupSummary", "GroupTable", "Mentions",
           "MutedNote", "Taken", "group_id", "level_counts"]

OTHER_GROUP: Hashable = ("chatlog", "other")
"""Key prefix of the buckets that count records of new groups once `GroupTable` is full: one bucket
per level, ``(OTHER_GROUP, level)``, so that the level counts and a digest's level (its mentions)
stay true when the records that overflow are the most severe ones."""
OVERFLOWED_KEYS = 10_000
"""Keys `GroupTable` remembers as counted in "other", by hash (~100 bytes each; a key's text is 500)."""


def group_id(key: Hashable) -> str:
    """Four hex digits from the fingerprint: the same in every process and run (``hash()`` is not)."""
    # Imported here, not at module level: chatlog's thread pays for it (OpenSSL), not `import chatlog`.
    import hashlib

    return hashlib.sha256(repr(key).encode("utf-8", "replace")).hexdigest()[:4]


class _Group:
    __slots__ = ("earlier", "first_seen", "group_id", "last_seen", "merged", "sample", "shown_full_at",
                 "template", "unsent", "unsent_first")

    def __init__(self, sample: Entry, *, first_seen: float = 0.0, template: str = "",
                 group_id: str = "") -> None:
        self.sample = sample
        self.earlier = 0
        """Records counted before the unsent ones: the total is ``earlier + unsent`` (one addition less)."""
        self.unsent = 0
        self.first_seen = first_seen
        self.last_seen = 0.0
        self.unsent_first = 0.0
        self.shown_full_at: float | None = None
        self.template = template
        self.merged: set[int] = set()
        """Hashes of the fingerprints merged into the overflow bucket (a key can hold 500 chars of text)."""
        self.group_id = group_id


class GroupTable:
    """The dispatcher's memory of groups: counts since the last message, and what was already shown.

    Bounded: at `max_groups` groups, a new fingerprint takes the place of the group idle the longest
    (nothing unsent, kept only to know it was shown); with none idle, its records are counted in the
    "other" bucket of their level, so a storm of distinct messages costs fixed memory and loses no count.
    """

    def __init__(self, *, max_groups: int = 200, repeat_interval: float = 3600.0) -> None:
        """`repeat_interval` is in the dispatcher's clock units (seconds)."""
        self._groups: dict[Hashable, _Group] = {}
        self._idle: dict[Hashable, None] = {}
        """Keys of the groups with nothing unsent, longest idle first."""
        self._buckets: set[Hashable] = set()
        self._overflowed: dict[int, _Group] = {}
        """Hash of a key counted in "other" (the table full) → its bucket; cleared when a group goes idle
        or is forgotten. Till then every new key goes to "other": a shared hash changes nothing."""
        self._max_groups = max_groups
        self._repeat_interval = repeat_interval
        self.unsent = 0

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, key: Hashable, created: float, make_sample: Callable[[], Entry | None],
            level: int = logging.WARNING, count: int = 1) -> None:
        """Count `count` records under `key`; `make_sample` is called only for a group's first record.

        `level` is the records': it picks the "other" bucket when the table is full, or when
        `make_sample` has no sample to give.
        """
        if not self.count(key, created, level, count):
            made = self._new_group(key, created, make_sample, level)
            self.count(key, created, level, count, other=not made)

    def count(self, key: Hashable, created: float, level: int, count: int = 1, *,
              other: bool = False) -> bool:
        """`add` for records that need no sample: their group is known, or the table is full (or `other`)
        and they go to "other"; False (nothing counted) when `add` must make their group first."""
        group = self._groups.get(key) or self._overflowed.get(hash(key))
        if group is None:
            if not other and (self._idle or len(self._groups) - len(self._buckets) < self._max_groups):
                return False
            group = self._bucket(key, level, created, remember=not other)
        if group.unsent == 0:
            self._idle.pop(key, None)
            group.unsent_first = created
        group.unsent += count
        group.last_seen = created
        self.unsent += count
        return True

    def unsent_at_least(self, level: int) -> bool:
        """True when a group at `level` or above has records not yet sent."""
        return any(group.unsent and group.sample.level >= level for group in self._groups.values())

    def sample_of(self, key: Hashable) -> Entry | None:
        """The sample that the group of `key` shows; None when its records went to an "other" bucket."""
        group = self._groups.get(key)
        return group.sample if group is not None and key not in self._buckets else None

    def _new_group(self, key: Hashable, created: float, make_sample: Callable[[], Entry | None],
                   level: int) -> bool:
        """Make `key`'s group (in the place of the longest idle when full); False without a sample."""
        if self._idle and len(self._groups) - len(self._buckets) >= self._max_groups:
            self._forget(next(iter(self._idle)))
        sample = make_sample()
        if sample is None:
            return False
        self._groups[key] = _Group(sample, first_seen=created, template=_template_of_key(key),
                                   group_id=group_id(key))
        return True

    def _bucket(self, key: Hashable, level: int, created: float, *, remember: bool) -> _Group:
        """The "other" bucket of `level`, which counts `key` from now on (found by hash with `remember`)."""
        bucket = (OTHER_GROUP, level)
        group = self._groups.get(bucket)
        if group is None:
            group = self._groups[bucket] = _Group(_other_sample(created, level), first_seen=created)
            self._buckets.add(bucket)
        hashed = hash(key)
        if len(group.merged) < 100_000:
            group.merged.add(hashed)
        if remember and len(self._overflowed) < OVERFLOWED_KEYS:
            self._overflowed[hashed] = group
        return group

    def digest(self, now: float, context: Context, dropped: int, mentions: Mentions | None = None,
               batch: str = "", all_clear: AllClear | None = None) -> Digest:
        """The digest of everything not yet sent, complete: its mentions for its level, its `batch`
        name. The table is unchanged until `mark_sent`."""
        live = [group for group in self._groups.values() if group.unsent]
        live.sort(key=lambda g: (-g.sample.level, -g.unsent, g.first_seen))
        summaries = tuple(self._summary(group, now) for group in live)
        level = max((group.sample.level for group in summaries), default=logging.ERROR)
        return Digest(
            groups=summaries,
            level_counts=level_counts((group.sample, group.unsent) for group in live),
            window_start=min((g.unsent_first for g in live), default=0.0),
            window_end=max((g.last_seen for g in live), default=0.0),
            context=context,
            dropped=dropped,
            mentions=(mentions or Mentions()).for_level(level) if live or all_clear is None else (),
            batch=batch,
            all_clear=all_clear,
        )

    def _summary(self, group: _Group, now: float) -> GroupSummary:
        return GroupSummary(
            sample=group.sample,
            count=group.unsent,
            total=group.earlier + group.unsent,
            first_seen=group.first_seen,
            last_seen=group.last_seen,
            repeat=self._within_repeat(group, now),
            merged_groups=len(group.merged),
            template=group.template,
            group_id=group.group_id,
        )

    def mark_sent(self, digest: Digest, now: float, *, shown: bool = True) -> None:
        """Forget the counts that `digest` carried; with `shown`, remember which groups were shown in full
        (not when the platform refused the message: nobody saw them)."""
        carried = {id(summary.sample): summary for summary in digest.groups}
        self._overflowed.clear()  # groups become idle: a new key may take one's place
        for key, group in list(self._groups.items()):
            summary = carried.get(id(group.sample))
            if summary is None:
                continue
            group.unsent -= summary.count
            group.earlier += summary.count
            self.unsent -= summary.count
            if shown and not summary.repeat:
                group.shown_full_at = now
            if key in self._buckets and group.unsent == 0:
                self._forget(key)
            elif group.unsent == 0:
                self._idle.pop(key, None)
                self._idle[key] = None
        self._prune(now)

    def silence(self, muted: Callable[[str], bool]) -> dict[str, int]:
        """Take the unsent records of the groups whose id `muted` accepts out of the next digest (the
        buckets have id ""); returns how many per group id."""
        taken: dict[str, int] = {}
        self._overflowed.clear()
        for key, group in list(self._groups.items()):
            if not group.unsent or not muted(group.group_id):
                continue
            taken[group.group_id] = taken.get(group.group_id, 0) + group.unsent
            self.unsent -= group.unsent
            group.earlier += group.unsent
            group.unsent = 0
            if key in self._buckets:
                self._forget(key)
            else:
                self._idle[key] = None
        return taken

    def take_unsent(self, now: float) -> list[Taken]:
        """Take every group's unsent records out (each summary's `count`); `give_back` undoes it."""
        taken = []
        self._overflowed.clear()
        for key, group in self._groups.items():
            if group.unsent:
                taken.append(Taken(key, self._summary(group, now), group.unsent_first))
                self.unsent -= group.unsent
                group.earlier += group.unsent
                group.unsent = 0
                self._idle[key] = None
        return taken

    def give_back(self, taken: Iterable[Taken]) -> None:
        """Put records `take_unsent` took back as unsent (the fleet store could not take them)."""
        for item in taken:
            summary = item.summary
            group = self._groups.get(item.key)
            if group is None:
                self.add(item.key, item.unsent_first, _given(summary.sample), summary.sample.level,
                         count=summary.count)
                continue
            if group.unsent == 0:
                self._idle.pop(item.key, None)
                group.unsent_first = item.unsent_first
            group.earlier -= summary.count
            group.unsent += summary.count
            self.unsent += summary.count

    def discard_unsent(self) -> int:
        """Give up on every unsent record (the destination cannot take them); returns how many."""
        lost = self.unsent
        self._overflowed.clear()
        for key, group in self._groups.items():
            group.earlier += group.unsent
            group.unsent = 0
            if key not in self._buckets:
                self._idle[key] = None
        self.unsent = 0
        return lost

    def _prune(self, now: float) -> None:
        """Forget idle groups whose repeat window is over, so memory follows the live groups."""
        for key, group in list(self._groups.items()):
            if group.unsent == 0 and not self._within_repeat(group, now):
                self._forget(key)

    def _forget(self, key: Hashable) -> None:
        self._overflowed.clear()
        del self._groups[key]
        self._idle.pop(key, None)
        self._buckets.discard(key)

    def _within_repeat(self, group: _Group, now: float) -> bool:
        # A "shown" time ahead of `now` means the clock stepped back: the window is over, not hours long.
        shown = group.shown_full_at
        return shown is not None and 0.0 <= now - shown < self._repeat_interval


def _given(entry: Entry) -> Callable[[], Entry]:
    return lambda: entry


def level_counts(groups: Iterable[tuple[Entry, int]]) -> tuple[tuple[str, int], ...]:
    """Records per level, most severe first, named as the samples spell their level."""
    counts: dict[int, int] = {}
    names: dict[int, str] = {}
    for sample, n in groups:
        counts[sample.level] = counts.get(sample.level, 0) + n
        names.setdefault(sample.level, sample.level_name)
    return tuple((names[level], n) for level, n in sorted(counts.items(), reverse=True))


def _other_sample(created: float, level: int) -> Entry:
    return Entry(
        created=created,
        level=level,
        level_name=logging.getLevelName(level),
        logger="chatlog",
        message="records of further groups (group limit reached; counted here, not shown one by one)",
        pathname="chatlog",
        lineno=0,
        func="-",
    )


def _template_of_key(key: Hashable) -> str:
    # A fingerprint is (level, logger, template, exception type, frame); other keys (tests) have none.
    if isinstance(key, tuple) and len(key) > 2 and isinstance(key[2], str):
        return key[2]
    return ""
