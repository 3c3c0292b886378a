"""Talk back: mute, acknowledge and ask for status from the chat an alert arrived in.

    from chatlog import chatops

    app = chatops.asgi_app(feishu={"encrypt_key": "…", "verification_token": "…",
                                   "app": "feishu-app://cli_a1b2:APP_SECRET"})
    # FastAPI: api.mount("/chatlog", app) → callback URL https://you.example/chatlog/feishu

    @chatops.command("deploy")
    def deploy(ctx, args):
        return f"deploying {args[0]} for {ctx.who}"

Routes: ``POST /feishu``, ``POST /lark``, ``GET|POST /wecom``, ``POST /dingtalk``, ``POST /qq``; each
verifies the platform's signature before it reads anything (see the platform modules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from chatlog.chatops.commands import COMMANDS, Command, Commands, Context
from chatlog.chatops.hosting import ASGIApp, HTTPReceiver, WSGIApp
from chatlog.chatops.receiver import Receiver
from chatlog.state.controls import ControlStore

__all__ = ["ASGIApp", "Commands", "Context", "HTTPReceiver", "Receiver", "WSGIApp", "asgi_app", "command",
           "wsgi_app"]

Options = Mapping[str, object] | None


def asgi_app(*, feishu: Options = None, lark: Options = None, wecom: Options = None, dingtalk: Options = None,
             qq: Options = None, state: str | ControlStore | None = None,
             allow: Iterable[str] | None = None) -> ASGIApp:
    """The receiver as an ASGI app; the keywords are `Receiver`'s (checked now, with examples)."""
    return ASGIApp(Receiver(feishu=feishu, lark=lark, wecom=wecom, dingtalk=dingtalk, qq=qq, state=state,
                            allow=allow))


def wsgi_app(*, feishu: Options = None, lark: Options = None, wecom: Options = None, dingtalk: Options = None,
             qq: Options = None, state: str | ControlStore | None = None,
             allow: Iterable[str] | None = None) -> WSGIApp:
    """The receiver as a WSGI app; the keywords are `Receiver`'s (checked now, with examples)."""
    return WSGIApp(Receiver(feishu=feishu, lark=lark, wecom=wecom, dingtalk=dingtalk, qq=qq, state=state,
                            allow=allow))


def command(name: str) -> Callable[[Command], Command]:
    """Decorator: ``@chatops.command("deploy")`` runs ``function(ctx, args) -> str`` on that word."""
    return COMMANDS.command(name)
