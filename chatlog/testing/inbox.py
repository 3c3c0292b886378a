"""A minimal web inbox of what the fake bots received: ``GET /`` (HTML) and ``GET /api/messages`` (JSON)."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from typing import Any

from chatlog.testing.bots import FakeBot, Received

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>chatlog fake platforms</title>
<style>body{{font-family:sans-serif;margin:2em}}pre{{white-space:pre-wrap;background:#f4f4f4;padding:.5em}}
.refused{{color:#a00}}</style></head>
<body><h1>chatlog fake platforms</h1>
{bots}
</body></html>
"""


def _entry(bot: FakeBot, received: Received) -> dict[str, Any]:
    text = bot.text_of(received.payload) if received.payload is not None else ""
    return {
        "at": received.at,
        "accepted": received.accepted,
        "status": received.status,
        "answer": received.answer,
        "text": text,
        "payload": received.payload,
    }


def inbox_json(bots: Sequence[FakeBot]) -> dict[str, Any]:
    """Every bot with its requests, newest first; rejected ones carry the answer that refused them."""
    return {
        "bots": [
            {
                "platform": bot.platform,
                "token": bot.token,
                "url": bot.url,
                "messages": [_entry(bot, received) for received in reversed(bot.received)],
            }
            for bot in bots
        ]
    }


def inbox_html(bots: Sequence[FakeBot]) -> str:
    """The same as :func:`inbox_json` as a small page; every received text is HTML-escaped."""
    sections = [_bot_html(bot) for bot in inbox_json(bots)["bots"]]
    return PAGE.format(bots="\n".join(sections) or "<p>No bots yet.</p>")


def _bot_html(bot: dict[str, Any]) -> str:
    title = f"<h2>{html.escape(bot['platform'])} <code>{html.escape(bot['token'])}</code></h2>"
    items = [_message_html(message) for message in bot["messages"]]
    return title + ("<ol>" + "".join(items) + "</ol>" if items else "<p>Nothing received.</p>")


def _message_html(message: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(message["at"]))
    refusal = html.escape(
        json.dumps(message["answer"], ensure_ascii=False) if message["answer"] else str(message["status"])
    )
    verdict = "" if message["accepted"] else f' <span class="refused">refused: {refusal}</span>'
    return f"<li>{when}{verdict}<pre>{html.escape(message['text'])}</pre></li>"
