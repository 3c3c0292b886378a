"""The fake platforms' HTTP server: routes each request to a platform's rules, a fault, or the inbox."""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

from chatlog.testing import feishu_app
from chatlog.testing._wire import (  # the HTTP side
    NO_ANSWER,
    NOT_FOUND,
    Reply,
    Server,
    answer_reply,
    fault_reply,
    json_object,
    json_reply,
    shutdown_quietly,
)
from chatlog.testing.apps import FakeApp, app_settings
from chatlog.testing.bots import FakeBot, FakeReceiver, Received
from chatlog.testing.callbacks import FakeChat
from chatlog.testing.callbacks_hub import Callbacks
from chatlog.testing.faults import Fault
from chatlog.testing.feishu_app import AppState
from chatlog.testing.rules import Answer, BotSettings, PlatformRules, RateState, Request, rules_registry

PLATFORM_RULES: tuple[PlatformRules, ...] = rules_registry()
PLATFORMS = tuple(name for rules in PLATFORM_RULES for name in rules.names)
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]+")
POLL_S = 0.05
STOP_JOIN_S = 1.0


NOT_POST = Answer({"error": "method not allowed"}, status=405)


class FakePlatforms:
    """Local stand-ins for Feishu/Lark, DingTalk and WeCom group bots, and Feishu/Lark app bots
    (``add_app``), on a real HTTP server.

    The server listens on 127.0.0.1 (a free port) as soon as it is built; ``stop()`` or leaving the
    ``with`` block ends it. ``clock`` (seconds) drives signature windows, rate windows, DingTalk's
    block and ``Received.at``, so a test can pass a fake clock instead of sleeping.
    """

    def __init__(self, clock: Callable[[], float] = time.time, *, port: int = 0) -> None:
        """`port` 0 picks a free port (tests); ``chatlog serve`` passes a fixed one."""
        self._clock = clock
        self._changed = threading.Condition(threading.RLock())
        self._bots: dict[tuple[str, str], FakeBot] = {}
        self._apps: dict[str, FakeApp] = {}
        self._all: list[Received] = []
        self._fault: Fault | None = None
        self._relays: dict[str, str] = {}
        self._hangs: set[threading.Event] = set()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server = Server(self, port)
        self._callbacks = Callbacks(self._changed, clock, lambda: self.base_url)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_S,), name="chatlog-fake-platforms", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FakePlatforms:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def bots(self) -> list[FakeBot]:
        """Every bot added so far, in order."""
        with self._changed:
            return list(self._bots.values())

    def add_bot(
        self,
        platform: str,
        *,
        token: str | None = None,
        secret: str | None = None,
        keyword: str | None = None,
        rate_limit: bool = True,
        **options: object,
    ) -> FakeBot:
        """Create a bot on ``platform`` (any name in `PLATFORMS`); a token is made up if None.

        ``options`` are the platform's own settings (its fake's ``RULES.options``), e.g. ``rate_code``
        (DingTalk 410100 or 130101; Feishu "11232", "9499" or "429") or Feishu's ``legacy_success``
        (the old ``{"Extra":null,"StatusCode":0,...}`` answer); an unknown one fails naming the valid ones.
        """
        rules = _rules_named(platform)
        unknown = sorted(set(options) - set(rules.options))
        if unknown:
            raise TypeError(f"unknown add_bot option(s) for {platform}: {', '.join(unknown)}; "
                            f"{platform} takes {', '.join(rules.options) or 'none'}")
        settings = BotSettings(
            platform=platform,
            token=rules.new_token() if token is None else _checked_token(token),
            secret=_non_empty("secret", secret),
            keyword=_non_empty("keyword", keyword),
            rate_limit=rate_limit,
            options={**rules.options, **options},
        )
        rules.check_settings(settings)
        with self._changed:
            if (rules.names[0], settings.token) in self._bots:
                raise ValueError(f"a {platform} bot with token {settings.token!r} exists already")
            bot = FakeBot(settings, rules, rules.url_of(self.base_url, settings), self._changed)
            self._bots[rules.names[0], settings.token] = bot
        return bot

    @property
    def apps(self) -> list[FakeApp]:
        """Every app added so far, in order."""
        with self._changed:
            return list(self._apps.values())

    def add_app(
        self,
        platform: str = "feishu-app",
        *,
        app_id: str | None = None,
        app_secret: str | None = None,
        recipients: Mapping[str, Iterable[str]] | None = None,
        hidden: Mapping[str, Iterable[str]] | None = None,
        expire_s: int = 7200,
        permissions: Iterable[str] = ("im:message:send_as_bot",),
        bot_enabled: bool = True,
        rate_limit: bool = True,
        auth_status: int = 400,
    ) -> FakeApp:
        """Create a Feishu ("feishu-app") or Lark ("lark-app") app whose bot can reach ``recipients``.

        ``recipients`` maps a receive_id_type to the ids the bot reaches (users in the availability
        range, chats the bot is in); ``hidden`` to users that exist outside the range (230013). Tokens
        live ``expire_s`` seconds of the server's clock. ``permissions`` are the scopes granted (without
        a send scope: 99991672); ``bot_enabled=False`` answers 230006; ``auth_status`` is the HTTP status
        of token errors. An app id and secret are made up when None. See ``chatlog.testing.apps``.
        """
        settings = app_settings(
            platform,
            app_id=f"cli_{uuid.uuid4().hex[:16]}" if app_id is None else app_id,
            app_secret=uuid.uuid4().hex if app_secret is None else app_secret,
            recipients=recipients, hidden=hidden, expire_s=expire_s, permissions=permissions,
            bot_enabled=bot_enabled, rate_limit=rate_limit, auth_status=auth_status,
        )
        with self._changed:
            if settings.app_id in self._apps:
                raise ValueError(f"an app with app_id {settings.app_id!r} exists already")
            app = FakeApp(settings, self.base_url, self._changed)
            self._apps[settings.app_id] = app
        return app

    def add_chat(self, platform: str, url: str, keys: Mapping[str, str], *, app: FakeApp | None = None,
                 bot: FakeBot | None = None, chat_id: str | None = None, transport: str = "http") -> FakeChat:
        """A chat where fake people type to a receiver at `url`; see ``chatlog.testing.callbacks``."""
        return self._callbacks.add_chat(platform, url, keys, app=app, bot=bot, chat_id=chat_id,
                                        transport=transport)

    def relay(self, path: str, to: str) -> str:
        """Forward requests whose path starts with `path` to the platform path `to` (the rest of the path
        and the query kept), as a relay or reverse proxy does; returns ``base_url + path``.

        E.g. ``fake.relay("/relay/dingtalk", "/robot/send")``: a DingTalk destination on that URL needs
        ``platform="dingtalk"``, since its path is no platform's own.
        """
        if not path.startswith("/") or not (to.startswith("/") or to == ""):
            raise ValueError(f"relay paths start with '/', e.g. relay('/relay/dingtalk', '/robot/send') "
                             f"or relay('/relay/app', '') for a prefix; got {path!r} and {to!r}")
        with self._changed:
            self._relays[path] = to
        return f"{self.base_url}{path}"

    def all_received(self) -> list[Received]:
        """Every platform request of every bot (unknown tokens too), in the order they were answered."""
        with self._changed:
            return list(self._all)

    def set_fault(self, fault: Fault) -> None:
        """Inject ``fault`` into every platform request until ``clear_fault()`` (bots' own faults win)."""
        with self._changed:
            self._fault = fault

    def clear_fault(self) -> None:
        """Stop the server-wide fault set by ``set_fault``."""
        with self._changed:
            self._fault = None

    def release(self) -> None:
        """End every hanging request: their connections close without an answer."""
        with self._changed:
            for hang in self._hangs:
                hang.set()

    def stop(self) -> None:
        """Stop the server and end hanging or slow requests; idempotent, returns within about a second."""
        with self._changed:
            if self._stopping.is_set():
                return
            self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._callbacks.close()
        with self._changed:
            connections = list(self._connections)
        for connection in connections:
            # Idle keep-alive connections would otherwise keep serving after stop().
            shutdown_quietly(connection)
        self._thread.join(STOP_JOIN_S)

    def _respond(self, request: Request) -> Reply:
        request = self._relayed(request)
        answered = self._callbacks.answer(request)
        if answered is not None:
            return json_reply(answered.status, answered.body)
        target = self._app_target(request) if request.path in feishu_app.PATHS else self._bot_target(request)
        if target is None:
            return NOT_FOUND
        with self._changed:
            receiver = target.receiver
            fault = (receiver._take_fault() if receiver is not None else None) or self._fault
        if fault is not None and fault.kind != "slow":
            return self._inject(fault, request, target)
        if fault is not None and self._stopping.wait(fault.delay_s):
            self._record(request, target, NO_ANSWER, accepted=False)
            return NO_ANSWER
        return self._judge(request, target)

    def _relayed(self, request: Request) -> Request:
        with self._changed:
            relays = dict(self._relays)
        for path, to in relays.items():
            if request.path.startswith(path):
                return dataclasses.replace(request, path=to + request.path[len(path):])
        return request

    def _bot_target(self, request: Request) -> _Target | None:
        routed = _route(request)
        if routed is None:
            return None
        rules, token = routed
        with self._changed:
            bot = self._bots.get((rules.names[0], token))
        if bot is not None:
            return _Target(bot.platform, token, bot, bot._judge)
        return _Target(rules.names[0], token, None,
                       lambda request, now: rules.judge(request, None, RateState(), now))

    def _app_target(self, request: Request) -> _Target:
        """Token requests belong to the app named in the body, messages to the app that issued the token."""
        claimed = (request.payload or {}).get("app_id")
        token = feishu_app.bearer(request) or ""
        with self._changed:
            if request.path == feishu_app.TOKEN_PATH:
                app = self._apps.get(claimed) if isinstance(claimed, str) else None
            else:
                app = next((app for app in self._apps.values() if app._owns_token(token)), None)
        if app is not None:
            return _Target(app.platform, app.app_id, app, app._judge)
        if request.path == feishu_app.TOKEN_PATH:
            return _Target(feishu_app.PLATFORMS[0], str(claimed or ""), None, _unknown_app)
        return _Target(feishu_app.PLATFORMS[0], "", None, _unknown_token)

    def _judge(self, request: Request, target: _Target) -> Reply:
        answer = NOT_POST if request.method != "POST" else target.judge(request, self._clock())
        receiver = target.receiver
        if answer.accepted and receiver is not None and receiver._loses_answer(request):
            self._record(request, target, NO_ANSWER, accepted=True)
            return NO_ANSWER
        reply = answer_reply(answer)
        self._record(request, target, reply, accepted=answer.accepted)
        return reply

    def _inject(self, fault: Fault, request: Request, target: _Target) -> Reply:
        if fault.kind == "hang":
            self._record(request, target, NO_ANSWER, accepted=False)
            self._hang(target.receiver)
            return NO_ANSWER
        reply = fault_reply(fault)
        self._record(request, target, reply, accepted=False)
        return reply

    def _hang(self, bot: FakeReceiver | None) -> None:
        hang = threading.Event()
        with self._changed:
            self._hangs.add(hang)
        if bot is not None:
            bot._hang_started(hang)
        try:
            while not (hang.wait(POLL_S) or self._stopping.is_set()):
                pass
        finally:
            with self._changed:
                self._hangs.discard(hang)
            if bot is not None:
                bot._hang_ended(hang)

    def _record(self, request: Request, target: _Target, reply: Reply, *, accepted: bool) -> None:
        bot = target.receiver
        received = Received(
            at=self._clock(),
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            body=request.body,
            payload=request.payload,
            status=reply.status,
            answer=json_object(reply.body) if reply.kind == "answer" else None,
            accepted=accepted,
            platform=target.platform,
            token=target.token,
        )
        with self._changed:
            self._all.append(received)
            if bot is not None:
                bot._record(received)
            self._changed.notify_all()

    def _opened(self, connection: socket.socket) -> None:
        with self._changed:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._changed:
            self._connections.discard(connection)


@dataclass(frozen=True, slots=True)
class _Target:
    """The platform and receiver (bot or app) a request addresses, and who answers it; ``receiver`` is
    None for an unknown token or app."""

    platform: str
    token: str
    receiver: FakeReceiver | None
    judge: Callable[[Request, float], Answer]


def _unknown_token(request: Request, now: float) -> Answer:
    return feishu_app.judge_unknown_token(request)


def _unknown_app(request: Request, now: float) -> Answer:
    return feishu_app.judge_token(request, None, AppState(), now)


def _route(request: Request) -> tuple[PlatformRules, str] | None:
    for rules in PLATFORM_RULES:
        token = rules.token_of(request.path, request.query)
        if token is not None:
            return rules, token
    return None


def _rules_named(platform: str) -> PlatformRules:
    for rules in PLATFORM_RULES:
        if platform in rules.names:
            return rules
    known = ", ".join(PLATFORMS)
    raise ValueError(f"unknown platform {platform!r}: use one of {known}, e.g. add_bot('feishu')")


def _checked_token(token: str) -> str:
    # Tokens travel unquoted in paths and queries, so only URL-safe characters are allowed.
    if not TOKEN_PATTERN.fullmatch(token):
        raise ValueError(f"token must be letters, digits or ._~- (e.g. token='t1'); got {token!r}")
    return token


def _non_empty(name: str, value: str | None) -> str | None:
    if value == "":
        raise ValueError(f"{name} must be None (off) or a non-empty string, e.g. {name}='alert'")
    return value


