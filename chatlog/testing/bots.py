"""A fake bot (and what every fake receiver shares): its settings, what it received, the faults it will
inject next."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatlog.testing.faults import Fault
from chatlog.testing.rules import Answer, BotSettings, PlatformRules, RateState, Request


@dataclass(frozen=True, slots=True)
class Received:
    """One request the fake server got, with the answer it gave.

    ``at`` is the fake's clock at answer time; ``headers`` keys are lower case; ``status`` is 0 and
    ``answer`` None when no HTTP answer was given (hang, reset, garbage); ``accepted`` means the platform
    took the message. ``platform`` and ``token`` say which bot was addressed (also for unknown tokens).
    """

    at: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None
    status: int
    answer: dict[str, Any] | None
    accepted: bool
    platform: str = ""
    token: str = ""


class FakeReceiver:
    """What every fake receiver (a group bot, an app) shares: the requests it got, the faults it injects
    next, and waiting for requests. All reads return copies, so a test may look at them while the server
    is still answering."""

    def __init__(self, changed: threading.Condition) -> None:
        self._changed = changed
        self._received: list[Received] = []
        self._next_faults: deque[Fault] = deque()
        self._fault: Fault | None = None
        self._lost_answers = 0
        self._hangs: set[threading.Event] = set()

    @property
    def received(self) -> list[Received]:
        """Every request to this receiver, in order, with the answer given."""
        with self._changed:
            return list(self._received)

    def wait_received(self, n: int, timeout: float = 5.0) -> list[Received]:
        """Block until ``n`` requests (accepted or not) arrived or ``timeout`` passed; returns them."""
        self._wait_until(lambda: len(self._received) >= n, timeout)
        return self.received

    def fail_next(self, n: int, fault: Fault) -> None:
        """Inject ``fault`` into the next ``n`` requests (before any persistent fault)."""
        if n < 0:
            raise ValueError(f"fail_next needs n >= 0, e.g. bot.fail_next(2, Fault.status(503)); got {n}")
        with self._changed:
            self._next_faults.extend([fault] * n)

    def set_fault(self, fault: Fault) -> None:
        """Inject ``fault`` into every request until ``clear_fault()``, e.g. ``Fault.status(503)``."""
        with self._changed:
            self._fault = fault

    def clear_fault(self) -> None:
        """Stop the persistent fault and drop the pending ``fail_next`` and ``lose_next_answers`` ones."""
        with self._changed:
            self._fault = None
            self._next_faults.clear()
            self._lost_answers = 0

    def lose_next_answers(self, n: int) -> None:
        """Take the next ``n`` messages as usual but close the connection instead of answering: the
        sender cannot know they arrived (recorded with ``accepted=True`` and ``status`` 0)."""
        if n < 0:
            raise ValueError(f"lose_next_answers needs n >= 0, e.g. app.lose_next_answers(1); got {n}")
        with self._changed:
            self._lost_answers += n

    def release(self) -> None:
        """End the requests hanging now: their connections close without an answer."""
        with self._changed:
            for hang in self._hangs:
                hang.set()

    def _wait_until(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    def _take_fault(self) -> Fault | None:
        with self._changed:
            return self._next_faults.popleft() if self._next_faults else self._fault

    def _loses_answer(self, request: Request) -> bool:
        """True when the answer to this accepted `request` is to be lost (see `lose_next_answers`)."""
        with self._changed:
            if self._lost_answers <= 0:
                return False
            self._lost_answers -= 1
            return True

    def _record(self, received: Received) -> None:
        with self._changed:
            self._received.append(received)
            self._changed.notify_all()

    def _hang_started(self, hang: threading.Event) -> None:
        with self._changed:
            self._hangs.add(hang)

    def _hang_ended(self, hang: threading.Event) -> None:
        with self._changed:
            self._hangs.discard(hang)


class FakeBot(FakeReceiver):
    """One group bot on the fake server; create it with ``FakePlatforms.add_bot``.

    All reads return copies, so a test may look at them while the server is still answering.
    """

    def __init__(self, settings: BotSettings, rules: PlatformRules, url: str, changed: threading.Condition):
        super().__init__(changed)
        self._settings = settings
        self._rules = rules
        self._url = url
        self._state = RateState()

    def __repr__(self) -> str:
        return f"FakeBot(platform={self.platform!r}, token={self.token!r})"

    @property
    def settings(self) -> BotSettings:
        """Everything the bot was configured with."""
        return self._settings

    @property
    def url(self) -> str:
        """The destination string chatlog accepts for this bot (secret/keyword as query options)."""
        return self._url

    @property
    def platform(self) -> str:
        """``feishu``, ``lark``, ``dingtalk`` or ``wecom``."""
        return self._settings.platform

    @property
    def token(self) -> str:
        """The access token (Feishu/DingTalk) or key (WeCom)."""
        return self._settings.token

    @property
    def secret(self) -> str | None:
        """The signing secret, or None when signing is off."""
        return self._settings.secret

    @property
    def keyword(self) -> str | None:
        """The keyword every message must contain, or None."""
        return self._settings.keyword

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Payloads of the accepted requests, in order."""
        with self._changed:
            return [r.payload for r in self._received if r.accepted and r.payload is not None]

    def notified(self) -> list[str]:
        """Everyone the accepted messages notified, in order, as the platform's clients do it."""
        return [who for payload in self.messages for who in self._rules.notified(payload)]

    def texts(self) -> list[str]:
        """The human-readable text of each accepted message, as the platform would show it."""
        return [self.text_of(payload) for payload in self.messages]

    def text_of(self, payload: dict[str, Any]) -> str:
        """The human-readable text of one payload in this bot's format; "" when it has none."""
        return self._rules.text_of(payload)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until ``n`` messages were accepted or ``timeout`` seconds passed; returns the messages."""
        self._wait_until(lambda: len(self.messages) >= n, timeout)
        return self.messages

    def _judge(self, request: Request, now: float) -> Answer:
        with self._changed:
            return self._rules.judge(request, self._settings, self._state, now)
