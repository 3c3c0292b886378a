"""The receiver: routes each callback to its platform, runs the command, answers and replies.

`Receiver.handle` takes and returns plain values and never raises; `chatlog.chatops.hosting` turns it
into an ASGI app, a WSGI app or a standard-library HTTP server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from chatlog._report import Reporter
from chatlog.chatops import cards
from chatlog.chatops import dingtalk as dingtalk_module
from chatlog.chatops import feishu as feishu_module
from chatlog.chatops import qq as qq_module
from chatlog.chatops import wecom as wecom_module
from chatlog.chatops._http import (
    MAX_BODY_BYTES,
    NOT_FOUND,
    TOO_LARGE,
    Refused,
    ReplayGuard,
    Request,
    Response,
    dig,
)
from chatlog.chatops.commands import COMMANDS, Commands
from chatlog.chatops.events import Inbound
from chatlog.chatops.longconn import LongConnection
from chatlog.chatops.replies import Replier, ReplyThread
from chatlog.state.controls import ControlStore

Options = Mapping[str, object] | None
Route = Callable[[Request, ReplayGuard], "Response | Inbound | None"]
_OK = Response(200, b"{}")


class Receiver:
    """Everything one callback URL needs: the configured platforms, the control store, the commands.

    Keywords: ``feishu=`` / ``lark=`` ``{"encrypt_key", "verification_token", "app"}``, ``wecom=``
    ``{"token", "encoding_aes_key"}``, ``dingtalk={"app_secret"}``, ``qq={"app_id", "secret"}``; a route
    whose platform is not configured answers 404. ``state`` is the control store (``"memory"``, None for
    the default file, ``"sqlite:///path"``, or a `ControlStore`). ``allow`` lists the ids (open_id,
    user_id, …) who may use the controlling commands everywhere; by default whoever is in a chat the
    alerts go to may control them there. ``feishu_ws`` (``feishu-app://ID:SECRET`` or ``lark-app://…``)
    receives that app's events over the long connection instead of a request URL (`start` opens it).
    ``clock`` (Unix seconds) and ``transport`` are for tests.
    """

    def __init__(
        self,
        *,
        feishu: Mapping[str, object] | None = None,
        lark: Mapping[str, object] | None = None,
        wecom: Mapping[str, object] | None = None,
        dingtalk: Mapping[str, object] | None = None,
        qq: Mapping[str, object] | None = None,
        feishu_ws: str | None = None,
        state: str | ControlStore | None = None,
        allow: Iterable[str] | None = None,
        commands: Commands | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Checks every option now: a mistake is a ValueError naming it, with an example."""
        self._routes: dict[str, Route] = {}
        secrets: list[str] = []
        apps: dict[str, feishu_module.App] = {}
        for name, given in (("feishu", feishu), ("lark", lark)):
            if given is not None:
                opts = feishu_module.options(name, _mapping(name, given))
                self._routes[f"/{name}"] = _bound(feishu_module.handle, opts)
                secrets += opts.secrets
                if opts.app is not None:
                    apps[name] = opts.app
        qq_opts = self._add_others(wecom, dingtalk, qq, secrets)
        ws_app = None if feishu_ws is None else feishu_module.app_of(
            "feishu_ws", feishu_ws, "feishu_ws='feishu-app://cli_a1b2:APP_SECRET'")
        ws_platform = "lark" if str(feishu_ws).startswith("lark-app:") else "feishu"
        if ws_app is not None:
            apps.setdefault(ws_platform, ws_app)
            secrets.append(ws_app.app_secret)
        if not self._routes and ws_app is None:
            raise ValueError("configure at least one platform, e.g. asgi_app(dingtalk={'app_secret': '…'})")
        self._store = state if isinstance(state, ControlStore) else ControlStore(_state(state))
        self._allow = _allow_list(allow)
        self._commands = COMMANDS if commands is None else commands
        self._clock = clock
        self._guard = ReplayGuard(clock)
        self._reporter = Reporter("chatops", tuple(secrets))
        self._replier = Replier(apps, qq_opts, self._reporter, transport)
        self._replies = ReplyThread(self._reporter)
        self.long_connection = None if ws_app is None else LongConnection(
            ws_platform, ws_app, self.handle_event, self._reporter)
        """The long connection of ``feishu_ws``, or None."""

    def __repr__(self) -> str:
        return f"Receiver(routes={sorted(self._routes)}, store={self._store!r})"

    @property
    def store(self) -> ControlStore:
        """The control store the commands write to."""
        return self._store

    @property
    def routes(self) -> list[str]:
        """The configured paths (``/feishu``, ``/wecom``, …)."""
        return sorted(self._routes)

    def _add_others(self, wecom_given: Options, dingtalk_given: Options, qq_given: Options,
                    secrets: list[str]) -> qq_module.Options | None:
        if wecom_given is not None:
            wecom_opts = wecom_module.options(_mapping("wecom", wecom_given))
            self._routes["/wecom"] = _bound(wecom_module.handle, wecom_opts)
            secrets += wecom_opts.secrets
        if dingtalk_given is not None:
            dingtalk_opts = dingtalk_module.options(_mapping("dingtalk", dingtalk_given))
            self._routes["/dingtalk"] = _bound(dingtalk_module.handle, dingtalk_opts)
            secrets += dingtalk_opts.secrets
        if qq_given is None:
            return None
        qq_opts = qq_module.options(_mapping("qq", qq_given))
        self._routes["/qq"] = _bound(qq_module.handle, qq_opts)
        secrets += qq_opts.secrets
        return qq_opts

    def handle(self, request: Request) -> Response:
        """The answer to one HTTP request; never raises, never shows a traceback or a secret."""
        try:
            if len(request.body) > MAX_BODY_BYTES:
                raise TOO_LARGE
            route = self._routes.get(request.path.rstrip("/") or "/")
            if route is None:
                raise NOT_FOUND
            found = route(request, self._guard)
            if isinstance(found, Inbound):
                return self._act(found)
            return _OK if found is None else found
        except Refused as refused:
            if refused.status != 404:
                self._reporter.report(f"refused:{request.path}:{refused.reason}",
                                      f"refused {request.method} {request.path[:40]}: {refused.reason}")
            return refused.response()
        except Exception as exc:  # the boundary: a bug here must not take the host app down
            self._reporter.report("receiver-error", f"could not handle a callback: {type(exc).__name__}")
            return Response(500, b'{"error":"internal error"}')

    def _act(self, inbound: Inbound) -> Response:
        if inbound.answer is not None:
            said = self._run(inbound)
            return inbound.answer(said, cards.updated(self._store, inbound.card, self._clock()))
        self._replies.submit(lambda: self._reply(inbound))
        return inbound.ack

    def _reply(self, inbound: Inbound) -> None:
        self._replier.send(inbound, self._run(inbound))

    def _run(self, inbound: Inbound) -> str:
        return self._commands.run(inbound, self._store, allow=self._allow, now=self._clock(),
                                  reporter=self._reporter)

    def start(self) -> None:
        """Open the long connection, if one is configured (the HTTP routes need no start)."""
        if self.long_connection is not None:
            self.long_connection.start()

    def handle_event(self, platform: str, event: dict[str, object]) -> None:
        """One Feishu/Lark event from the long connection (authenticated by the connection itself):
        a message is answered on the reply thread; a retry of an event already seen is ignored."""
        event_id = dig(event, "header", "event_id")
        if isinstance(event_id, str) and event_id and not self._guard.first(
                f"{platform}:event:{event_id}", feishu_module.EVENT_WINDOW_S):
            return
        inbound = feishu_module.inbound_of(event, platform)
        if inbound is not None and inbound.reply_to is not None:
            self._replies.submit(lambda: self._reply(inbound))

    def close(self) -> None:
        """Send the replies still queued (a few seconds at most), then release the HTTP client."""
        if self.long_connection is not None:
            self.long_connection.stop()
        self._replies.close()
        self._replier.close()


def _bound(handle: Callable[[Request, Any, ReplayGuard], Response | Inbound | None], opts: object) -> Route:
    return lambda request, guard: handle(request, opts, guard)


def _mapping(name: str, given: object) -> Mapping[str, object]:
    if not isinstance(given, Mapping):
        raise ValueError(f"{name}= is a dict of that platform's options, e.g. "
                         f"dingtalk={{'app_secret': '…'}}; got {type(given).__name__}")
    return given


def _state(state: object) -> str | None:
    if state is not None and not isinstance(state, str):
        raise ValueError(f"state= is 'memory', None or 'sqlite:///path', e.g. state='memory'; got {state!r}")
    return state


def _allow_list(allow: Iterable[str] | None) -> frozenset[str] | None:
    if allow is None:
        return None
    items = [] if isinstance(allow, str) else list(allow)
    if not items or not all(isinstance(item, str) and item for item in items):
        raise ValueError("allow= is a non-empty list of ids, e.g. "
                         "allow=['ou_84aad35d084aa403a838cf73ee18467']")
    return frozenset(items)
