"""Shared state on the host: the control store (mutes, acks) the ChatOps receiver writes, handlers read."""

from chatlog.state.controls import ALL, Controls, ControlStore, Mute, Shown

__all__ = ["ALL", "ControlStore", "Controls", "Mute", "Shown"]
