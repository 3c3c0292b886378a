"""A fake Feishu / Lark app: its settings, the tokens it issued, the messages each recipient got.

    with FakePlatforms() as fake:
        app = fake.add_app(recipients={"open_id": ["ou_a", "ou_b"], "chat_id": ["oc_ops"]},
                           hidden={"open_id": ["ou_outside"]})
        handler = chatlog.ChatHandler(app.url("open_id"))  # every reachable open_id, base_url set
        ...
        app.token_requests   # requests to the token endpoint (one per fetch)
        app.messages         # what was delivered, per recipient, uuid duplicates left out
        app.texts("ou_a")    # the card text as ou_a would see it
        app.duplicates       # resends that Feishu took without delivering again (same uuid)
        app.revoke_tokens()  # the next message gets 99991663, as after an app secret reset

The answers follow ``chatlog.testing.feishu_app`` (the real error codes and HTTP statuses).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from chatlog.testing import feishu_app
from chatlog.testing.bots import FakeReceiver, Received
from chatlog.testing.feishu_app import AppSettings, AppState, Delivered
from chatlog.testing.rules import Answer, Request, dig_str


class FakeApp(FakeReceiver):
    """One self-built app with its bot on the fake server; create it with ``FakePlatforms.add_app``."""

    def __init__(self, settings: AppSettings, base_url: str, changed: threading.Condition) -> None:
        super().__init__(changed)
        self._settings = settings
        self._base_url = base_url
        self._state = AppState()
        self._lost_for: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"FakeApp(platform={self.platform!r}, app_id={self.app_id!r})"

    @property
    def settings(self) -> AppSettings:
        """Everything the app was configured with."""
        return self._settings

    @property
    def platform(self) -> str:
        """``feishu-app`` or ``lark-app``."""
        return self._settings.platform

    @property
    def app_id(self) -> str:
        """The app id (``cli_…``)."""
        return self._settings.app_id

    @property
    def app_secret(self) -> str:
        """The app secret."""
        return self._settings.app_secret

    def url(self, receive_id_type: str = "open_id", receive_ids: Iterable[str] | None = None) -> str:
        """The destination string for chatlog: ``feishu-app://APP_ID:SECRET@TYPE/ID,…?base_url=…``;
        `receive_ids` defaults to every reachable id of that type."""
        ids = list(self._settings.recipients.get(receive_id_type, ()) if receive_ids is None else receive_ids)
        credentials = f"{quote(self.app_id, safe='')}:{quote(self.app_secret, safe='')}"
        return (f"{self.platform}://{credentials}@{receive_id_type}/{','.join(ids)}"
                f"?base_url={quote(self._base_url, safe=':/')}")

    @property
    def token_requests(self) -> list[Received]:
        """Requests to the token endpoint, in order (one per token fetch)."""
        return [r for r in self.received if r.path == feishu_app.TOKEN_PATH]

    @property
    def message_requests(self) -> list[Received]:
        """Requests to the send API, in order, with the answers given."""
        return [r for r in self.received if r.path == feishu_app.MESSAGES_PATH]

    @property
    def messages(self) -> list[Delivered]:
        """Every message delivered, in order; a resend with a known uuid is not delivered again."""
        with self._changed:
            return list(self._state.delivered)

    def messages_to(self, receive_id: str) -> list[Delivered]:
        """The messages one recipient got, in order."""
        return [message for message in self.messages if message.receive_id == receive_id]

    def texts(self, receive_id: str | None = None) -> list[str]:
        """The text of each delivered message (to `receive_id` only, when given)."""
        chosen = self.messages if receive_id is None else self.messages_to(receive_id)
        return [message.text for message in chosen]

    def text_of(self, payload: dict[str, object]) -> str:
        """The human-readable text of one send API request body."""
        return feishu_app.text_of(payload)

    @property
    def duplicates(self) -> int:
        """Resends answered with success but not delivered again, because their uuid was seen."""
        with self._changed:
            return self._state.duplicates

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Delivered]:
        """Block until ``n`` messages were delivered or ``timeout`` seconds passed; returns the messages."""
        self._wait_until(lambda: len(self._state.delivered) >= n, timeout)
        return self.messages

    def revoke_tokens(self) -> None:
        """Make every token issued so far invalid: the next message gets ``99991663``."""
        with self._changed:
            self._state.revoke()

    def lose_next_answers(self, n: int, receive_id: str | None = None) -> None:
        """Deliver the next ``n`` messages (to `receive_id` only, when given) but close the connection
        instead of answering: the sender cannot know they arrived. Token requests are never affected."""
        if receive_id is None:
            super().lose_next_answers(n)
            return
        if n < 0:
            raise ValueError(f"lose_next_answers needs n >= 0, e.g. lose_next_answers(1, 'ou_a'); got {n}")
        with self._changed:
            self._lost_for[receive_id] = self._lost_for.get(receive_id, 0) + n

    def clear_fault(self) -> None:
        """Stop the persistent fault and drop the pending ``fail_next`` and ``lose_next_answers`` ones."""
        with self._changed:
            super().clear_fault()
            self._lost_for.clear()

    def _loses_answer(self, request: Request) -> bool:
        if request.path != feishu_app.MESSAGES_PATH:
            return False  # a lost token answer is just a failed fetch
        receive_id = dig_str(request.payload, "receive_id")
        with self._changed:
            if self._lost_for.get(receive_id, 0) > 0:
                self._lost_for[receive_id] -= 1
                return True
        return super()._loses_answer(request)

    def _owns_token(self, token: str) -> bool:
        with self._changed:
            return token in self._state.tokens

    def _judge(self, request: Request, now: float) -> Answer:
        with self._changed:
            if request.path == feishu_app.TOKEN_PATH:
                return feishu_app.judge_token(request, self._settings, self._state, now)
            return feishu_app.judge_message(request, self._settings, self._state, now)


def app_settings(
    platform: str,
    *,
    app_id: str,
    app_secret: str,
    recipients: Mapping[str, Iterable[str]] | None,
    hidden: Mapping[str, Iterable[str]] | None,
    expire_s: int,
    permissions: Iterable[str],
    bot_enabled: bool,
    rate_limit: bool,
    auth_status: int,
) -> AppSettings:
    """Checked settings for ``FakePlatforms.add_app``; ValueError with an example for impossible ones."""
    if platform not in feishu_app.PLATFORMS:
        raise ValueError(f"an app's platform is 'feishu-app' or 'lark-app', e.g. add_app('lark-app'); "
                         f"got {platform!r}")
    if isinstance(permissions, str):
        raise ValueError("permissions is a list of scopes, e.g. permissions=['im:message:send_as_bot']")
    for name, value in (("app_id", app_id), ("app_secret", app_secret)):
        if not value or any(character.isspace() for character in value):
            raise ValueError(f"{name} must be a non-empty string without spaces, e.g. {name}='cli_a1'")
    if expire_s <= 0:
        raise ValueError(f"expire_s must be positive seconds, e.g. expire_s=7200; got {expire_s!r}")
    return AppSettings(
        platform=platform, app_id=app_id, app_secret=app_secret,
        recipients=_ids_by_type("recipients", recipients), hidden=_ids_by_type("hidden", hidden),
        expire_s=expire_s, permissions=frozenset(permissions), bot_enabled=bot_enabled,
        rate_limit=rate_limit, auth_status=auth_status,
    )


def _ids_by_type(name: str, value: Mapping[str, Iterable[str]] | None) -> dict[str, tuple[str, ...]]:
    given = dict(value or {})
    ids = {id_type: () if isinstance(listed, str) else tuple(listed) for id_type, listed in given.items()}
    for id_type, listed in ids.items():
        odd = isinstance(given[id_type], str) or any(not isinstance(i, str) for i in listed)
        if id_type not in feishu_app.RECEIVE_ID_TYPES or odd:
            raise ValueError(f"{name} maps a receive_id_type ({', '.join(feishu_app.RECEIVE_ID_TYPES)}) "
                             f"to ids, e.g. {name}={{'open_id': ['ou_a']}}; got {id_type!r}")
    return ids
