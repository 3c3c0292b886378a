"""A destination stopped by a configuration error (bad secret, keyword, IP, a clock an hour off).

Its records wait as a summary; the dispatcher probes again every `lifecycle.PROBE_EVERY_S` with the
next message, and the platform accepting that message ends the suspension. Stderr says it is
suspended at most once every `lifecycle.REPORT_SUSPENSION_EVERY_S`, and says so when it resumes.
"""

from __future__ import annotations

from chatlog import lifecycle
from chatlog._report import Reporter


class Suspension:
    """Why a destination is stopped ("" while it works), and what stderr was told of it."""

    def __init__(self, reporter: Reporter) -> None:
        """`reporter` is the dispatcher's stderr reporter."""
        self.reason = ""
        self._reporter = reporter
        self._said_at: float | None = None

    def __bool__(self) -> bool:
        """True while the destination is suspended."""
        return bool(self.reason)

    def begin(self, reason: str, now: float) -> None:
        """Suspend (again) for `reason`; stderr hears of it once an hour at most."""
        self.reason = reason
        said = self._said_at
        if said is None or not 0.0 <= now - said < lifecycle.REPORT_SUSPENSION_EVERY_S:
            self._said_at = now
            self._reporter.report("permanent", f"{reason}. Alerts to this destination wait (kept as "
                                  f"a summary) until it is fixed; trying again every "
                                  f"{lifecycle.PROBE_EVERY_S / 60:g} minutes.", every_s=0.0)

    def end(self) -> None:
        """The platform accepted a message: alerting goes on."""
        self.reason = ""
        self._said_at = None
        self._reporter.report("resumed", "the platform accepts messages again; the alerts kept "
                              "meanwhile were delivered", every_s=0.0)
