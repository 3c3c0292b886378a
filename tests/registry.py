"""The platforms the tests cover, asked from the registry: a new platform module is covered by every
test that iterates these (or makes them fail), with no edit here.

For each registered `Destination` class: its module (``render(digest, limits)``, ``LIMITS``), and its
fake, ``chatlog.testing.<name>`` (``text_of``, ``notified``, ``live_markup``; group bots also ``RULES``,
whose ``judge`` says whether the platform would take a payload).
"""

from __future__ import annotations

import importlib
import json
import sys
from types import ModuleType

from chatlog.destinations import platform_classes
from chatlog.platforms._base import Destination, Payload
from chatlog.testing.rules import BotSettings, PlatformRules, RateState, Request

CLASSES: list[type[Destination]] = platform_classes()
MODULES: list[ModuleType] = list(dict.fromkeys(sys.modules[cls.__module__] for cls in CLASSES))
IDS: list[str] = [module.__name__.rpartition(".")[2] for module in MODULES]


def class_of(module: ModuleType) -> type[Destination]:
    """The destination class a platform module defines."""
    return next(cls for cls in CLASSES if cls.__module__ == module.__name__)


def fake_of(module: ModuleType) -> ModuleType:
    """The fake of a platform module (``chatlog.testing.<same name>``)."""
    return importlib.import_module(f"chatlog.testing.{module.__name__.rpartition('.')[2]}")


def rules_of(module: ModuleType) -> PlatformRules | None:
    """The group-bot fake's rules of a platform module, or None for a platform with another fake."""
    rules = getattr(fake_of(module), "RULES", None)
    return rules if isinstance(rules, PlatformRules) else None


def shown(module: ModuleType, payload: Payload) -> str:
    """The text a reader sees, as the platform's fake reads the payload."""
    text: str = fake_of(module).text_of(payload)
    return text


def refusal(module: ModuleType, payload: Payload) -> str:
    """Why the fake platform would refuse `payload` ("" when it would take it): size, shape, type."""
    rules = rules_of(module)
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    if len(body) > module.LIMITS.body_bytes:
        return f"{len(body)} bytes, over {module.LIMITS.body_bytes}"
    if rules is None:
        return ""
    settings = BotSettings(platform=rules.names[0], token="t", rate_limit=False, options=dict(rules.options))
    request = Request("POST", "/", {}, {}, body, json.loads(body))
    answer = rules.judge(request, settings, RateState(), 0.0)
    return "" if answer.accepted else json.dumps(answer.body, ensure_ascii=False)


def notified(module: ModuleType, payload: Payload) -> list[str]:
    """Who the payload notifies, as the platform's fake models it."""
    return list(fake_of(module).notified(payload))


def live_markup(module: ModuleType, payload: Payload) -> list[str]:
    """What the platform would make live in the payload beyond chatlog's own markup ([] when inert)."""
    found: list[str] = fake_of(module).live_markup(payload)
    return found
