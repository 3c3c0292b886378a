"""The last act of ``chatlog demo``: one mute round trip through ChatOps, all on 127.0.0.1.

An alert reaches a fake Feishu app chat; a fake person types ``mute #id 1h`` there, which the fake
delivers signed and encrypted to a real receiver over HTTP; the bot answers; the muted group then
stays quiet while another group alerts, and the next message says who muted what.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

from chatlog.chatops import HTTPReceiver, Receiver
from chatlog.handler import ChatHandler
from chatlog.testing import FakeApp, FakePlatforms
from chatlog.testing.callbacks import FakeChat

CHAT = "oc_demo_ops"
USER = "ou_alice"
KEYS = {"encrypt_key": "demo-encrypt-key", "verification_token": "demo-verification-token"}
_GROUP = re.compile(r"#([0-9a-f]{4})\b")
_WIDTH = 100
_AT = re.compile(r"<at id=([^>]+)></at>")
"""A mention in card markdown: Feishu shows the person's name, the demo their id."""


def mute_round_trip(fake: FakePlatforms) -> list[str]:
    """Run the round trip against `fake`; the lines that tell it."""
    with tempfile.TemporaryDirectory(prefix="chatlog-demo-") as folder:
        state = f"sqlite:///{Path(folder) / 'controls.db'}"
        app = fake.add_app(recipients={"chat_id": [CHAT]})
        option = f"feishu-app://{app.app_id}:{app.app_secret}?base_url={fake.base_url}"
        server = HTTPReceiver(Receiver(feishu={**KEYS, "app": option}, state=state))
        server.serve_in_thread()
        handler = ChatHandler(app.url("chat_id"), chatops=state, service="checkout", environment="demo",
                              group_wait=0.05, group_interval=0.05)
        logger = logging.getLogger("demo.chatops")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            return _act(fake, app, handler, logger, f"{server.url}/feishu")
        finally:
            logger.removeHandler(handler)
            handler.close()
            server.stop()


def _act(fake: FakePlatforms, app: FakeApp, handler: ChatHandler, logger: logging.Logger,
         url: str) -> list[str]:
    lines = ["\nTalk back: a fake Feishu app chat, its callbacks signed and encrypted to a local receiver:"]
    logger.error("payment %s declined by the provider", "pay_000123")
    handler.flush(5.0)
    alert = app.texts(CHAT)[-1] if app.texts(CHAT) else ""
    found = _GROUP.search(alert)
    lines.append(f"  alert     {gist(alert)}")
    if found is None:
        return [*lines, "  (the alert carried no group id: nothing to mute)"]
    command = f"mute #{found.group(1)} 1h"
    chat = fake.add_chat("feishu", url, KEYS, app=app, chat_id=CHAT)
    chat.say(USER, command)
    replies = chat.wait_replies(1, timeout=5.0)
    answer = replies[-1] if replies else "(no answer within 5 s)"
    lines += [f"  {USER}  types: {command}", f"  bot       {answer}"]
    for attempt in range(3):
        logger.error("payment %s declined by the provider", f"pay_00012{4 + attempt}")
    logger.error("cache miss storm on %s", "user:*:profile")
    handler.flush(5.0)
    lines.append(f"  alert     {gist(app.texts(CHAT)[-1])}")
    lines.append(_press_ack(chat, app))
    stats = handler.stats()
    lines.append(f"  stats()   accepted {stats.accepted} = delivered {stats.delivered_records} + dropped "
                 f"{stats.dropped} + pending {stats.pending} + muted {stats.muted}")
    return lines


def _press_ack(chat: FakeChat, app: FakeApp) -> str:
    """The person presses Ack on the latest card: the answer updates that card in place."""
    sent = app.messages_to(CHAT)[-1]
    ack = next((c for c in _commands(sent.content) if c.startswith("ack ")), None)
    if ack is None:
        return "  (the card has no Ack button)"
    chat.press(USER, ack)
    shown = chat.cards.get(sent.message_id, {})
    states = [_AT.sub(r"@\1", str(e.get("content", ""))) for e in shown.get("elements", [])
              if "Acknowledged" in str(e)]
    return f"  {USER}  presses Ack; the card now says: {states[0] if states else '(unchanged)'}"


def _commands(card: object) -> list[str]:
    elements = card.get("elements", []) if isinstance(card, dict) else []
    return [str(button.get("value", {}).get("command", "")) for element in elements
            if element.get("tag") == "action" for button in element.get("actions", [])]


def gist(text: str) -> str:
    """One line for an alert in the demo: each group as ``#id message``, then the muted notes."""
    lines = text.splitlines()
    groups = [f"#{found.group(1)} {lines[i + 1]}" for i, line in enumerate(lines[:-1])
              if (found := _GROUP.search(line)) and line.endswith(found.group(0))]
    muted = [part.strip() for line in lines[1:2] for part in line.split(" · ") if " muted by " in part]
    shown = " · ".join(groups + [f"and {note}" for note in muted])
    return shown if len(shown) <= _WIDTH else shown[: _WIDTH - 1] + "…"
