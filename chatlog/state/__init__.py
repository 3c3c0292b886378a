"""Shared state on the host: the control store (mutes, acks) the ChatOps receiver writes, handlers read,
and the fleet stores (`chatlog.state.store`). Loaded on first use: checking ``state=`` in a handler's
constructor must not import sqlite3."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatlog.state.controls import ALL, Controls, ControlStore, Mute, Shown

__all__ = ["ALL", "ControlStore", "Controls", "Mute", "Shown"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from chatlog.state import controls

        return getattr(controls, name)
    raise AttributeError(f"module 'chatlog.state' has no attribute {name!r}")
