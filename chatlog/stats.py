"""`ChatStats`: a handler's accounting, as `ChatHandler.stats()` returns it (also `chatlog.ChatStats`)."""

from __future__ import annotations

from chatlog._record import Record

__all__ = ["ChatStats"]


class ChatStats(Record):
    """A handler's accounting: ``accepted == delivered_records + dropped + pending + muted`` always holds."""

    accepted: int
    dropped: int
    """Records that will not reach the chat: buffer overflow, or a message the platform refused for its
    content. (A destination stopped by a configuration error keeps its records pending.)"""
    pending: int
    delivered_records: int
    messages_sent: int
    messages_failed: int
    muted: int = 0
    """Records kept out of messages because their group was muted from the chat (ChatOps)."""
