"""What the group-bot webhooks share: one signed POST per payload, and a fresh signature once after a
signature rejection (`Webhook`)."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import httpx

from chatlog.platforms._answers import outcome_of, trimmed
from chatlog.platforms._base import Destination, Outcome, Payload


class Webhook(Destination):
    """A group bot's webhook: a token, maybe a signing secret and a keyword; one POST per payload,
    signed afresh, and signed once more after a signature rejection (a stale timestamp, a clock step).

    A platform module provides `post` (the signed request) and `classify` (its answers); one that
    signs also `signature_rejected` and `rejected_twice`.
    """

    title: ClassVar[str] = ""
    """The platform's name in messages (``"DingTalk"``)."""
    token: str
    secret: str | None = None
    keyword: str | None = None

    @staticmethod
    def classify(response: httpx.Response) -> Outcome:
        """What the platform's answer means (the module's ``classify``)."""
        raise NotImplementedError

    @abstractmethod
    def post(self, client: httpx.Client, payload: Payload) -> httpx.Response | Outcome:
        """POST `payload`, signed now when a secret is set (see `post_json`)."""

    def signature_rejected(self, answer: httpx.Response | Outcome) -> bool:
        """True when `answer` refuses the signature or its timestamp (worth one fresh signature)."""
        return False

    def rejected_twice(self, response: httpx.Response) -> Outcome:
        """The outcome when a fresh signature was refused too: the secret or the clock is wrong."""
        return Outcome("permanent", 0.0, f"{self.title} rejected the signature twice: check secret= and "
                       "that this machine's clock is right (within an hour)", trimmed(response))

    def send(self, client: httpx.Client, payload: Payload) -> Outcome:
        """Sign, POST, classify; after a signature rejection, sign once more and resend. Never raises."""
        try:
            answer = self.post(client, payload)
            if self.secret is not None and self.signature_rejected(answer):
                answer = self.post(client, payload)  # a stale timestamp or a clock step: one fresh try
                if self.signature_rejected(answer):
                    return outcome_of(answer, self.rejected_twice, self.secrets)
            return outcome_of(answer, self.classify, self.secrets)
        except Exception as exc:
            reason = f"chatlog failed while sending to {self.title} ({type(exc).__name__})"
            return Outcome("retry", reason=reason)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The token (or key) and the signing secret."""
        return tuple(value for value in (self.token, self.secret) if value)
