"""The names the platforms' annotations use, imported only under ``if TYPE_CHECKING:``.

Neither `typing` nor httpx is imported at run time: httpx is loaded on chatlog's own thread, where the
first request is made (`chatlog.courier`), and `import chatlog` stays cheap (tests/test_import_cost.py).
"""

from typing import Any, ClassVar, Literal

import httpx

__all__ = ["Any", "ClassVar", "Literal", "httpx"]
