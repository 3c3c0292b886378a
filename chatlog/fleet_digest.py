"""What crosses the fleet store: group fingerprints, samples as JSON, and the fleet-wide digest.

A member hands over `Taken` groups as `Delta`s (`deltas_of`); the leader turns the store's pending
groups back into one `Digest` for the whole fleet (`fleet_digest`), naming the hosts and how many
processes' records it holds, and knows exactly which member's records each message carried (`sent_of`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Hashable, Iterable, Sequence

from chatlog._record import Record, replace
from chatlog.digest import Context, Digest, GroupSummary, Mentions, Taken, level_counts
from chatlog.entry import Entry
from chatlog.state.store import Delta, PendingGroup, Sent, host_of


def fingerprint_of(key: Hashable) -> str:
    """A group key as every process and host names it (``repr`` of strings and numbers is stable)."""
    return hashlib.sha256(repr(key).encode("utf-8", "replace")).hexdigest()[:24]


def encode_sample(summary: GroupSummary) -> str:
    """The group's sample, template, id and bucket flag as JSON (what the leader renders)."""
    entry = summary.sample
    fields = {name: getattr(entry, name) for name in entry._fields}
    return json.dumps({"entry": fields, "template": summary.template,
                       "group_id": summary.group_id, "merged": summary.merged_groups},
                      ensure_ascii=False, separators=(",", ":"))


def decode_sample(text: str, level: int, first_seen: float) -> tuple[Entry, str, str, int]:
    """`encode_sample` read back; an unreadable sample becomes a plain line (the counts still show)."""
    try:
        data = json.loads(text)
        fields = dict(data["entry"])
        fields["extra"] = tuple((str(k), str(v)) for k, v in fields.get("extra", ()))
        return Entry(**fields), str(data["template"]), str(data["group_id"]), int(data["merged"])
    except Exception:
        entry = Entry(created=first_seen, level=level, level_name=logging.getLevelName(level), logger="?",
                      message="[chatlog could not read this group's sample from the store]",
                      pathname="?", lineno=0, func="?")
        return entry, "", "", 0


def group_id_of(sample: str) -> str:
    """The group id (``a3f2``) an encoded sample names ("" when unreadable)."""
    try:
        return str(json.loads(sample)["group_id"])
    except Exception:
        return ""


def deltas_of(taken: Iterable[Taken], with_sample: Collection[str] | None = None) -> list[Delta]:
    """The hand-over of `taken`; a sample only for fingerprints in `with_sample` (None: all)."""
    deltas = []
    for item in taken:
        fp = fingerprint_of(item.key)
        summary = item.summary
        sample = encode_sample(summary) if with_sample is None or fp in with_sample else None
        deltas.append(Delta(fp, summary.count, item.unsent_first, summary.last_seen, summary.sample.level,
                            sample))
    return deltas


class FleetDigest(Record):
    """A digest the leader sends, and what it carried per fingerprint and member (for `Store.settle`)."""

    digest: Digest
    sent: Sent
    shown: frozenset[str]
    """Fingerprints the message shows in full (not as a repeat one-liner)."""


def sources_of(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    """Per host, how many members' records `counts` holds (hosts with most members first)."""
    hosts: dict[str, int] = {}
    for member_id, n in counts.items():
        if n:
            hosts[host_of(member_id)] = hosts.get(host_of(member_id), 0) + 1
    return tuple(sorted(hosts.items(), key=lambda item: (-item[1], item[0])))


def fleet_digest(groups: Sequence[PendingGroup], *, now: float, repeat_interval: float,
                 context: Context, mentions: Mentions, batch: str, dropped: int = 0) -> FleetDigest:
    """One digest of every pending group of the fleet (`now` in Unix seconds), with the `dropped`
    records not yet reported."""
    summaries = []
    members: dict[str, int] = {}
    for group in groups:
        entry, template, group_id, merged = decode_sample(group.sample, group.level, group.first_seen)
        if entry.level < group.level:
            entry = replace(entry, level=group.level, level_name=logging.getLevelName(group.level))
        shown = group.shown_at
        repeat = shown is not None and 0.0 <= now - shown < repeat_interval
        summaries.append(GroupSummary(entry, group.count, max(group.total, group.count), group.first_seen,
                                      group.last_seen, repeat, merged, template, group_id,
                                      sources_of(group.counts)))
        members.update(group.counts)
    level = max((s.sample.level for s in summaries), default=logging.ERROR)
    workers = sources_of(members)
    single = next(iter(members), None) if len(members) == 1 else None
    ctx = replace(context, host=host_of(single) if single else context.host,
                  pid=_pid_of(single) if single else 0, workers=() if single else workers)
    counts = level_counts((s.sample, s.count) for s in summaries)
    digest = Digest(groups=tuple(summaries), level_counts=counts,
                    window_start=min((s.first_seen for s in summaries), default=0.0),
                    window_end=max((s.last_seen for s in summaries), default=0.0), context=ctx,
                    dropped=dropped, mentions=mentions.for_level(level), batch=batch)
    sent = {group.fingerprint: dict(group.counts) for group in groups}
    full = frozenset(g.fingerprint for g, s in zip(groups, summaries, strict=True) if not s.repeat)
    return FleetDigest(digest, sent, full)


def _pid_of(member_id: str) -> int:
    try:
        return int(member_id.rsplit(":", 2)[1])
    except (IndexError, ValueError):
        return 0
