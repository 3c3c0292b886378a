"""A pressed Feishu/Lark card, updated in place: the card the handler sent, each group's buttons
replaced by its state in the control store ("🔕 Muted by @Alice until …", "✅ Acknowledged by @Alice").

The handler keeps every card with buttons in the store under its batch name, which each button's value
carries (``{"command", "group", "card"}``); the receiver answers a ``card.action.trigger`` with that
card restated (reference 3.9: ``{"toast": …, "card": {"type": "raw", "data": card}}``). The card is
always restated from the stored original and the store's current mutes and acks, so pressing twice,
or on another copy of the card, shows the same truth. Who pressed is shown as ``<at id=ou_…></at>``
(Feishu shows the person's name) when the stored name is an open_id, else as inert text.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any

from chatlog.platforms._text import inert
from chatlog.state.controls import Controls, ControlStore

_OPEN_ID = re.compile(r"ou_[0-9A-Za-z]{1,64}")
MAX_KEY_CHARS = 64


def updated(store: ControlStore, card_key: str, now: float) -> dict[str, Any] | None:
    """The card kept under `card_key`, restated with its groups' mutes and acks; None when no card is
    kept under that key (sent by a handler without ``chatops=``, or more than a week ago)."""
    if not card_key or len(card_key) > MAX_KEY_CHARS:
        return None
    try:
        found = store.card(card_key)
        if found is None:
            return None
        scope, text = found
        card = json.loads(text)
        if not isinstance(card, dict) or not isinstance(card.get("elements"), list):
            return None
        return restate(card, store.controls(scope, now))
    except (sqlite3.Error, OSError, ValueError):  # the toast still says what the command did
        return None


def restate(card: dict[str, Any], controls: Controls) -> dict[str, Any]:
    """`card` with the Mute/Ack row of each muted or acknowledged group replaced by its state line."""
    elements: list[Any] = []
    for element in card["elements"]:
        group = _group_of(element)
        mute = controls.muted(group) if group else None
        ack = controls.acks.get(group) if group else None
        if mute is not None:
            elements.append(_line(f"🔕 Muted by {name(mute.by)} until {_until(mute.until)} "
                                  f"· type unmute #{group} to undo"))
        elif ack is not None:
            elements += [_line(f"✅ Acknowledged by {name(ack.by)}"), _without_ack(element)]
        else:
            elements.append(element)
    return {**card, "elements": elements}


def name(by: str) -> str:
    """Who muted or acknowledged: an open_id as a mention tag Feishu shows as the person's name,
    anything else as inert text (the store is written by other processes: never trusted as markup)."""
    if _OPEN_ID.fullmatch(by):
        return f"<at id={by}></at>"
    return inert(by[:64])


def _group_of(element: object) -> str:
    """The group a Mute/Ack row belongs to (its buttons' ``value.group``), or ""."""
    if not isinstance(element, dict) or element.get("tag") != "action":
        return ""
    actions = element.get("actions")
    for button in actions if isinstance(actions, list) else []:
        value = button.get("value") if isinstance(button, dict) else None
        group = value.get("group") if isinstance(value, dict) else None
        if isinstance(group, str) and group:
            return group
    return ""


def _without_ack(element: dict[str, Any]) -> dict[str, Any]:
    """The row with its Ack button left out (acknowledged already); Mute stays."""
    kept = [button for button in element["actions"]
            if not str(button.get("value", {}).get("command", "")).startswith("ack ")]
    return {**element, "actions": kept}


def _line(content: str) -> dict[str, Any]:
    return {"tag": "markdown", "content": content}


def _until(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
