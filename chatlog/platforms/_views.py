"""How much of a digest one render shows (`Budget`), and one group's pieces ready for markup
(`GroupView`): the values `chatlog.platforms._text` hands the platform modules."""

from __future__ import annotations

from chatlog._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final


class Budget(Record):
    """How much of a digest one render shows; `fit` tries `BUDGETS` from the first to the last."""

    groups: Final[int]
    traceback_lines: Final[int]
    message_chars: Final[int]
    extras: Final[int]

    def __init__(self, groups: int, traceback_lines: int, message_chars: int, extras: int) -> None:
        self.groups = groups
        self.traceback_lines = traceback_lines
        self.message_chars = message_chars
        self.extras = extras


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

    count: Final[str]
    """``"×57"``."""
    level: Final[str]
    logger: Final[str]
    message: Final[str]
    since: Final[str]
    """``"5,000 since 09:12:03"`` when the group has more records than this digest shows, else ``""``."""
    where: Final[str]
    """``"app/pay.py:42 in charge · first 09:12:03 · last 09:14:10"``."""
    extras: Final[str]
    traceback: Final[tuple[str, ...]]
    repeat: Final[bool]
    merged_groups: Final[int]
    template: Final[str]
    """``"template: order <*> failed"`` when the group's records varied from its sample, else ``""``."""
    group_id: Final[str]
    """``"#a3f2"``: what a person types to mute or acknowledge the group; "" for a merged bucket."""

    def __init__(self, *, count: str, level: str, logger: str, message: str, since: str, where: str,
                 extras: str, traceback: tuple[str, ...], repeat: bool, merged_groups: int,
                 template: str = "", group_id: str = "") -> None:
        self.count = count
        self.level = level
        self.logger = logger
        self.message = message
        self.since = since
        self.where = where
        self.extras = extras
        self.traceback = traceback
        self.repeat = repeat
        self.merged_groups = merged_groups
        self.template = template
        self.group_id = group_id
