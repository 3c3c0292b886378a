"""The words a person can type to the bot, and your own: ``@chatops.command("deploy")``.

Built in: ``status``, ``mute ID|all DURATION``, ``unmute ID|all``, ``ack ID``, ``whoami``, ``help``.
A command changes the control store only for the destinations whose alerts reach the chat it was
typed in (default), or — with an allow-list — for anyone on the list, everywhere.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chatlog._report import Reporter
from chatlog.chatops.events import Inbound
from chatlog.state.controls import ALL, ControlStore

_GROUP_ID = re.compile(r"#?([0-9a-f]{4,8})", re.IGNORECASE)
_DURATION = re.compile(r"(\d{1,5})\s*(m|min|h|d)", re.IGNORECASE)
_UNITS_S = {"m": 60, "min": 60, "h": 3600, "d": 86400}
MAX_MUTE_S = 30 * 86400
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.@-]")
REPLY_LIMIT_CHARS = 1500


@dataclass(frozen=True, slots=True)
class Context:
    """What a command knows: who typed it where, the destinations it controls, the store, the time."""

    platform: str
    sender: tuple[tuple[str, str], ...]
    chat_id: str
    scopes: tuple[str, ...]
    store: ControlStore
    now: float

    @property
    def who(self) -> str:
        """The sender's first id, made safe to show anywhere (letters, digits, ``_.@-``)."""
        first = next((value for _, value in self.sender if value), "someone")
        return _SAFE_NAME.sub("_", first)[:64]


Command = Callable[[Context, list[str]], str]


class Commands:
    """A registry of command words to functions ``(ctx, args) -> str``."""

    def __init__(self) -> None:
        """An empty registry (the built-in words are always there)."""
        self._custom: dict[str, Command] = {}

    def command(self, name: str) -> Callable[[Command], Command]:
        """Decorator: run the function on `name` and answer with what it returns."""
        word = name.strip().lower()
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", word) or word in BUILT_IN:
            raise ValueError(f"a command name is one word of letters, digits, _ or - and not one of "
                             f"{', '.join(BUILT_IN)}, e.g. @chatops.command('deploy'); got {name!r}")

        def register(function: Command) -> Command:
            self._custom[word] = function
            return function

        return register

    def names(self) -> list[str]:
        """The custom command words, sorted."""
        return sorted(self._custom)

    def run(self, inbound: Inbound, store: ControlStore, *, allow: frozenset[str] | None,
            now: float, reporter: Reporter) -> str:
        """The answer to `inbound`'s text; never raises (a failing command is answered as an error)."""
        words = inbound.text.split()
        if not words:
            return _help(self)
        word, args = words[0].lower().lstrip("/"), words[1:]
        try:
            if word in ("help", "whoami"):
                return _help(self) if word == "help" else _whoami(inbound)
            ctx = Context(inbound.platform, inbound.sender, inbound.chat_id,
                          tuple(_scopes(inbound, store, allow)), store, now)
            if word in _CONTROLS:
                if not ctx.scopes:
                    return _not_allowed(allow)
                return _CONTROLS[word](ctx, args)
            custom = self._custom.get(word)
            if custom is None:
                return f"Sorry, I do not know {word[:32]!r}. " + _help(self)
            if allow is not None and not allow & inbound.sender_ids():
                return _not_allowed(allow)
            return str(custom(ctx, args))[:REPLY_LIMIT_CHARS]
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            reporter.report(f"command:{word}", f"command {word!r} raised {type(exc).__name__} "
                            f"at {where.filename}:{where.lineno}")
            return f"⚠ {word[:32]} failed: {type(exc).__name__}"


def _scopes(inbound: Inbound, store: ControlStore, allow: frozenset[str] | None) -> list[str]:
    """Destinations the command controls: those reaching this chat; with an allow-list, everywhere for
    the people on it and nothing for anybody else."""
    if allow is None:
        return store.scopes_for(inbound.chat_keys)
    if not allow & inbound.sender_ids():
        return []
    return store.scopes_for(inbound.chat_keys) or store.all_scopes()


def _not_allowed(allow: frozenset[str] | None) -> str:
    if allow is None:
        return ("Sorry, no chatlog alerts reach this chat, so there is nothing here to control. Type the "
                "command in the chat the alert went to.")
    return "Sorry, you are not on this bot's allow-list (whoami shows your ids)."


def group_id(text: str) -> str | None:
    """``#a3f2`` / ``a3f2`` → ``a3f2``; ``all`` → ``*``; None for anything else."""
    if text.lower() == "all":
        return ALL
    found = _GROUP_ID.fullmatch(text)
    return found.group(1).lower() if found else None


def duration_s(text: str) -> float | None:
    """``30m`` / ``2h`` / ``1d`` in seconds (at most 30 days); None when it is not one."""
    found = _DURATION.fullmatch(text.strip())
    if not found:
        return None
    seconds = int(found.group(1)) * _UNITS_S[found.group(2).lower()]
    return float(seconds) if 0 < seconds <= MAX_MUTE_S else None


def _label(group: str) -> str:
    return "all alerts" if group == ALL else f"#{group}"


def _until(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def _mute(ctx: Context, args: list[str]) -> str:
    group = group_id(args[0]) if args else None
    seconds = duration_s("".join(args[1:])) if len(args) >= 2 else None
    if group is None or seconds is None:
        return "Usage: mute #ID DURATION, or mute all DURATION (30m, 2h, 1d; at most 30d)"
    until = ctx.now + seconds
    ctx.store.mute(ctx.scopes, group, until, ctx.who, ctx.now)
    return f"Muted {_label(group)} until {_until(until)} (by {ctx.who}). Undo: unmute {args[0]}"


def _unmute(ctx: Context, args: list[str]) -> str:
    group = group_id(args[0]) if args else None
    if group is None:
        return "Usage: unmute #ID, or unmute all"
    ended = ctx.store.unmute(ctx.scopes, group)
    return f"Unmuted {_label(group)}." if ended else f"{_label(group)} was not muted."


def _ack(ctx: Context, args: list[str]) -> str:
    group = group_id(args[0]) if args else None
    if group is None or group == ALL:
        return "Usage: ack #ID"
    ctx.store.ack(ctx.scopes, group, ctx.who, ctx.now)
    return f"Acknowledged #{group} (by {ctx.who}): shown as one line until it changes."


def _status(ctx: Context, args: list[str]) -> str:
    lines = []
    for shown in ctx.store.shown(ctx.scopes, ctx.now - 3600.0)[:15]:
        lines.append(f"#{shown.group_id} {shown.level} ×{shown.count} {shown.title[:80]} "
                     f"(last {_until(shown.last_seen)})")
    for scope in ctx.scopes[:5]:
        for mute in ctx.store.controls(scope, ctx.now).mutes.values():
            lines.append(f"muted {_label(mute.group_id)} until {_until(mute.until)} by {mute.by}")
    return "\n".join(_unique(lines)) if lines else "Nothing fired in the last hour; nothing is muted."


def _unique(lines: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def _whoami(inbound: Inbound) -> str:
    ids = [f"{kind}: {value}" for kind, value in inbound.sender if value]
    return "\n".join([*ids, f"chat_id: {inbound.chat_id}"])


def _help(commands: Commands) -> str:
    custom = "".join(f"\n{name}" for name in commands.names())
    return ("Commands: status · mute #ID 1h · mute all 30m · unmute #ID|all · ack #ID · whoami · help"
            + (f"\nAlso:{custom}" if custom else ""))


_CONTROLS: dict[str, Command] = {"mute": _mute, "unmute": _unmute, "ack": _ack, "status": _status}
BUILT_IN = ("status", "mute", "unmute", "ack", "whoami", "help")
COMMANDS = Commands()
"""The process's registry, which `chatlog.chatops.command` adds to and receivers use by default."""
