"""Faults a fake bot can inject instead of (or before) its normal answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["slow", "hang", "status", "garbage", "reset", "json", "empty"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One way for the fake server to misbehave; build it with the static constructors.

    Every fault except ``slow`` replaces the platform's answer, so the request is recorded with
    ``accepted=False``; ``slow`` only delays a normally judged answer.
    """

    kind: FaultKind
    delay_s: float = 0.0
    status_code: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def slow(seconds: float) -> Fault:
        """Answer normally after ``seconds`` (cut short, without an answer, by ``stop()``)."""
        if seconds < 0:
            raise ValueError(f"Fault.slow needs seconds >= 0, e.g. Fault.slow(0.2); got {seconds!r}")
        return Fault("slow", delay_s=seconds)

    @staticmethod
    def hang() -> Fault:
        """Never answer; the connection is closed without an answer by ``bot.release()`` or ``stop()``."""
        return Fault("hang")

    @staticmethod
    def status(code: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Fault:
        """Answer with HTTP ``code``, raw ``body`` and extra ``headers``, e.g. ``{"Retry-After": "2"}``."""
        return Fault("status", status_code=code, body=body, headers=tuple((headers or {}).items()))

    @staticmethod
    def garbage() -> Fault:
        """Send bytes that are not HTTP, then close the connection."""
        return Fault("garbage")

    @staticmethod
    def reset() -> Fault:
        """Close the connection without answering."""
        return Fault("reset")

    @staticmethod
    def json(obj: object, status: int = 200) -> Fault:
        """Answer this JSON with HTTP ``status``: any platform code, or a malformed answer."""
        headers = (("Content-Type", "application/json; charset=utf-8"),)
        return Fault("json", status_code=status, body=json.dumps(obj).encode(), headers=headers)

    @staticmethod
    def empty() -> Fault:
        """Answer HTTP 200 with an empty body."""
        return Fault("empty")
