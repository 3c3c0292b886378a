"""Regular expressions compiled on first use, so that ``import chatlog`` does not compile them.

The big patterns (message templates, text cleaning) are used on chatlog's own thread; compiling them
at import made every importing thread pay for them, even a cron script that never logs an error.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import AnyStr


def lazy_pattern(source: AnyStr, flags: int = 0) -> re.Pattern[AnyStr]:
    """``re.compile(source, flags)``, compiled when one of its methods is first looked up.

    Each method, once looked up, is kept on the object: later calls cost what a compiled pattern's do.
    """
    return _LazyPattern(source, flags)  # type: ignore[return-value]  # it behaves as one


class _LazyPattern:
    def __init__(self, source: str | bytes, flags: int) -> None:
        self._source = source
        self._flags = flags

    def __getattr__(self, name: str) -> object:
        # Only reached for names not yet kept; two threads racing here both compile the same pattern.
        value = getattr(re.compile(self._source, self._flags), name)
        setattr(self, name, value)
        return value
