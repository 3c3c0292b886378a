"""Fake Feishu/Lark card buttons: which delivered card carries a button, and what a callback answer
does to that card (reference 3.9).

A press on a card the fake app delivered sends that button's own ``value`` and the card's message id
as ``context.open_message_id``, as Feishu does. The receiver's answer is judged as Feishu would: HTTP
200 with a JSON object; ``toast.type`` one of ``info|success|error|warning``; a ``card`` of ``type``
``raw`` with the full card in ``data`` (or ``template``) replaces the card in place — the fake keeps
the new card as that message's current one. An answer that breaks these rules changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TOAST_TYPES = frozenset({"info", "success", "error", "warning"})


@dataclass(frozen=True, slots=True)
class Button:
    """A button on a delivered card: the card's message id and the button's value."""

    message_id: str
    value: dict[str, Any]


def find_button(cards: Iterable[tuple[str, object]], command: str) -> Button | None:
    """The button whose value runs `command` on the latest of `cards` ``(message_id, card)`` that has
    one; None when no card has it."""
    for message_id, card in reversed(list(cards)):
        for value in _button_values(card):
            if value.get("command") == command:
                return Button(message_id, value)
    return None


def _button_values(value: object) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [found for item in value for found in _button_values(item)]
    if not isinstance(value, dict):
        return []
    if value.get("tag") == "button" and isinstance(value.get("value"), dict):
        return [value["value"]]
    return [found for item in value.values() for found in _button_values(item)]


def card_of_answer(status: int, body: bytes) -> dict[str, Any] | None:
    """The card a ``card.action.trigger`` answer puts in place of the pressed one, or None (no card in
    the answer, or an answer Feishu would refuse: then the card stays as it was)."""
    if status != 200:
        return None
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    toast = answer.get("toast")
    if toast is not None and (not isinstance(toast, dict) or toast.get("type") not in TOAST_TYPES):
        return None
    card = answer.get("card")
    if not isinstance(card, dict) or card.get("type") not in ("raw", "template"):
        return None
    data = card.get("data")
    return data if isinstance(data, dict) else None
