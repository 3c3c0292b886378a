"""``state=``: which store the processes of a destination share, read at a handler's construction.

Light on purpose (a constructor reads it on the application's thread): `re` and chatlog's `Record`
only; the stores themselves are imported and opened on the dispatcher's thread (`chatlog.state.store`).
"""

from __future__ import annotations

import re

from chatlog._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    StoreKind = Literal["memory", "sqlite", "redis"]

_EXAMPLE = ("state='memory', state='sqlite:///var/run/chatlog/fleet.db', "
            "state='redis://:password@redis.internal:6379/0' (also rediss:// and unix:///run/redis.sock)")


class StateURL(Record):
    """A parsed ``state=``: which store, where (`path` for SQLite, `url` for Redis), `masked` for output."""

    kind: StoreKind
    path: str = ""
    url: str = ""
    masked: str = "memory"

    def __repr__(self) -> str:
        return f"StateURL({self.masked!r})"


def mask_url(url: str) -> str:
    """`url` with any password (``user:password@``, ``?password=``) replaced by ``***``."""
    masked = re.sub(r"^([a-z][a-z0-9+.-]*://)([^/@]*:)?[^/@]*@",
                    lambda m: f"{m.group(1)}{m.group(2) or ''}***@", url, flags=re.I)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", masked, flags=re.I)


def parse_state(state: str | None) -> StateURL:
    """Read ``state=``: None (the default SQLite file), ``memory``, ``sqlite:///path``, ``redis://``,
    ``rediss://`` or ``unix://``. ValueError naming the problem, with an example, otherwise."""
    if state is None:
        return StateURL("sqlite", path="", masked="sqlite (default file)")
    if not isinstance(state, str):
        raise ValueError(f"state must be a string: {_EXAMPLE}; got a {type(state).__name__}")
    if state == "memory":
        return StateURL("memory")
    lowered = state.lower()
    if lowered.startswith("sqlite:///") and len(state) > len("sqlite:///"):
        return StateURL("sqlite", path=state[len("sqlite://"):], masked=state)
    if lowered.startswith(("redis://", "rediss://", "unix://")):
        return StateURL("redis", url=state, masked=mask_url(state))
    raise ValueError(f"state must be {_EXAMPLE}; got {mask_url(state)!r}")
