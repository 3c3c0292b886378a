"""Feishu and Lark app bots (self-built apps): one digest to each of several people or chats.

Auth: no signing. A ``tenant_access_token`` from ``POST /open-apis/auth/v3/tenant_access_token/internal``
goes in the ``Authorization`` header. `TOKENS` keeps one per app and host for the whole process, so N
handlers of one app fetch it once; it is fetched again a little before it expires (its ``expire``
field) and once when the API says it is invalid, and the message is then resent with the same uuid.

Send: ``POST /open-apis/im/v1/messages?receive_id_type=...`` once per recipient. The body holds the
group bot's card (`chatlog.platforms.feishu.card`) as a JSON *string* in ``content`` and a ``uuid``
derived from the digest's batch and the recipient: Feishu delivers one uuid at most once an hour, so a
retry never delivers twice. Within one batch, recipients already served are skipped on a retry.

Answers: business errors come with HTTP 400, rate limits with HTTP 429; always decided by ``code``.
A recipient the bot cannot reach is reported once on stderr (with the fix) and skipped from then on;
the others go on receiving. App-wide problems (credentials, permissions, bot disabled) stop the
destination with the fix, naming the permission to grant.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import httpx

from chatlog._report import Reporter
from chatlog.digest import Digest
from chatlog.platforms import feishu
from chatlog.platforms._base import (
    Destination,
    Limits,
    Option,
    Outcome,
    Payload,
    Target,
    answer_code,
    check_token,
    classify_http,
    is_official,
    json_body,
    post_json,
    redact,
    retry_after,
    target_origin,
    trimmed,
    unexpected_answer,
)
from chatlog.platforms._text import (
    answer_message,
    fit_text,
    inert,
    no_tags,
    payload_bytes,
    plain_summary,
    with_default_keyword,
    with_keyword,
)

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MESSAGES_PATH = "/open-apis/im/v1/messages"
RECEIVE_ID_TYPES = ("open_id", "user_id", "union_id", "email", "chat_id")
_TYPES = ", ".join(RECEIVE_ID_TYPES)
BATCH_KEY = "batch"
"""Key of the digest's batch id in a rendered payload; `FeishuApp.send` turns it into uuids and removes it."""

_ORIGINS = {"feishu-app": "https://open.feishu.cn", "lark-app": "https://open.larksuite.com"}
_HOSTS = ("open.feishu.cn", "open.larksuite.com")
_APP_PER_MINUTE = 600
_APP_PER_SECOND = 40
_RECIPIENT_PER_SECOND = 4
LIMITS = Limits(body_bytes=28_000, per_minute=_APP_PER_MINUTE, per_second=_RECIPIENT_PER_SECOND)
"""Card request bodies are limited to 30 KB (we keep 28,000 bytes). The app may send 1000 a minute and
50 a second, and 5 a second to one user or chat: one handler keeps below 600 a minute and 40 a second
over all its recipients and 4 a second to each (`FeishuApp` divides by the number of recipients)."""

_ROOM_FOR_ID = "x" * 64
_ROOM_FOR_UUID = "x" * 32
_TOKEN_MARGIN_S = 300.0
_SEND_SCOPE = "im:message:send_as_bot"
_USER_ID_SCOPE = "contact:user.employee_id:readonly"
_SCOPES = re.compile(r"\[([^\]]{1,400})\]")
_TYPE_SHAPE = re.compile(r"[a-z_]{1,20}")
_ID_SHAPE = re.compile(r"[^\s,]{1,200}")

_TOKEN_INVALID = frozenset({99991661, 99991663, 99991664, 99991668, 99991677, 20013})
_APP_RATE = {99991400: 1.0, 11232: 10.0, 11247: 10.0}
_RECIPIENT_RETRY = {230020: 1.0, 11233: 2.0, 230049: 2.0, 1500: 2.0, 2200: 2.0, 5000: 2.0, 10101: 2.0}
_NOT_IN_CHAT = "add the bot to the group (group settings → Bots → Add Bot)"
_OUTSIDE_RANGE = ("add the user to the app's availability range (developer console → Version Management & "
                  "Release → create a version → Availability) and publish that version")
_UNKNOWN_ID = ("check the id; open_ids differ per app, so take them from this app, as the README section "
               "Feishu / Lark app bot shows")
_UNREACHABLE = {
    230002: _NOT_IN_CHAT, 10002: _NOT_IN_CHAT, 10030: _NOT_IN_CHAT,
    230013: _OUTSIDE_RANGE, 11225: _OUTSIDE_RANGE, 20010: _OUTSIDE_RANGE,
    230034: _UNKNOWN_ID, 99992351: _UNKNOWN_ID,
    99992361: "this open_id belongs to another app (open_ids differ per app): look it up with this app",
    230029: "the user has left the organisation: remove the id",
    230053: "the user has stopped the bot from messaging them: ask them to allow it again",
    232009: "the group has been dissolved: remove the chat id",
    230018: "the group's settings do not let the bot post (e.g. only admins may post): change them",
    230038: "the user belongs to another tenant, which cannot receive direct messages from this app",
    230035: "the app may not send messages to this recipient: check the group's or user's settings",
}
_APP_PERMANENT = {
    230006: "Feishu says the app's bot is not enabled (230006): turn on Features → Bot in the developer "
            "console and publish a new app version",
    99991401: "Feishu says this machine's IP address is not on the app's IP allow-list (99991401): add it "
              "under Security Settings in the developer console",
    99991662: "Feishu says the app is disabled or not installed in this tenant (99991662): ask the tenant "
              "admin to enable it",
    99991403: "Feishu says the app's monthly API quota is used up (99991403)",
    99991671: "Feishu says the token has the wrong form (99991671; a chatlog bug)",
}
_MESSAGE_PERMANENT = {
    230001: "a chatlog bug", 9499: "a chatlog bug", 230025: "too long; a chatlog bug",
    230099: "the card was rejected; a chatlog bug", 230022: "Feishu found sensitive information in it",
    230028: "it did not pass Feishu's content audit",
}

Scope = Literal["recipient", "app", "token"]
_Kind = Literal["retry", "permanent", "rejected"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one answer of the send API means, and for whom: one recipient, the whole app, or the token."""

    outcome: Outcome
    scope: Scope
    code: int | None = None
    said: str = ""
    """For a recipient that cannot be reached: Feishu's code and message."""
    fix: str = ""
    """For a recipient that cannot be reached: what to do about it ("" when unknown)."""


# --- tokens -------------------------------------------------------------------------------------------

TokenKey = tuple[str, str, str]
Fetched = tuple[str, float]
"""A token and its lifetime in seconds, as the token endpoint gave them."""


@dataclass(slots=True)
class _Cached:
    lock: threading.Lock
    token: str = ""
    refresh_at: float = 0.0
    expires_at: float = 0.0


class TenantTokens:
    """The process's tenant_access_tokens, one per (host, app): fetched once and shared by every
    destination that uses the app, refreshed before they expire.

    `clock` (seconds, monotonic by default) may be replaced in tests. A fetch holds that app's lock,
    so destinations that need a token at the same moment wait for one fetch instead of making several.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """An empty cache reading `clock`."""
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: dict[TokenKey, _Cached] = {}

    def get(self, key: TokenKey, fetch: Callable[[], Fetched | Outcome]) -> str | Outcome:
        """The app's token; `fetch` is called when there is none or it is about to expire. When a refresh
        fails while the old token is still valid, the old one is returned."""
        cached = self._entry(key)
        with cached.lock:
            now = self.clock()
            if cached.token and now < cached.refresh_at:
                return cached.token
            fetched = fetch()
            if isinstance(fetched, Outcome):
                return cached.token if cached.token and now < cached.expires_at else fetched
            cached.token, lifetime_s = fetched
            cached.expires_at = now + lifetime_s
            cached.refresh_at = cached.expires_at - min(_TOKEN_MARGIN_S, lifetime_s / 10)
            return cached.token

    def invalidate(self, key: TokenKey, token: str) -> None:
        """Forget `token` after the API refused it (unless another destination already replaced it)."""
        cached = self._entry(key)
        with cached.lock:
            if cached.token == token:
                cached.token = ""

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            self._cached.clear()

    def _entry(self, key: TokenKey) -> _Cached:
        with self._lock:
            return self._cached.setdefault(key, _Cached(threading.Lock()))

    def _after_fork_in_child(self) -> None:
        # A lock held by another thread at fork time would stay locked forever in the child.
        self._lock = threading.Lock()
        for cached in self._cached.values():
            cached.lock = threading.Lock()


TOKENS = TenantTokens()
"""The tokens every `FeishuApp` of this process shares unless it is given its own."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=TOKENS._after_fork_in_child)


def token_key(origin: str, app_id: str, app_secret: str) -> TokenKey:
    """The cache key of an app's token: host, app id and a hash of the secret (a new secret, a new token)."""
    return origin, app_id, hashlib.sha256(app_secret.encode()).hexdigest()


def token_of(response: httpx.Response) -> Fetched | Outcome:
    """The token and its lifetime from the token endpoint's answer, or why there is none.

    Any refusal but a rate limit is permanent: the app id or secret is wrong (the code Feishu uses for
    which is not documented reliably, so every non-zero code counts).
    """
    body = json_body(response)
    code = answer_code(body.get("code")) if body else None
    if body is None or code is None:
        decided = classify_http(response)
        return decided if decided is not None else unexpected_answer(response, "Feishu's token endpoint")
    token, lifetime_s = body.get("tenant_access_token"), answer_code(body.get("expire"))
    if code == 0 and isinstance(token, str) and token:
        return token, float(lifetime_s) if lifetime_s and lifetime_s > 0 else 600.0
    if code == 0:
        return unexpected_answer(response, "Feishu's token endpoint")
    answer, message = trimmed(response), answer_message(body.get("msg"))
    if code == 99991400 or response.status_code == 429 or response.status_code >= 500:
        return Outcome("retry", retry_after(response, 1.0),
                       f"Feishu's token endpoint says wait ({code} {message})", answer)
    return Outcome("permanent", 0.0, f"Feishu refused the app credentials ({code} {message}): check the app "
                   "id and app secret (developer console → Credentials & Basic Info)", answer)


# --- rendering ----------------------------------------------------------------------------------------


def render(digest: Digest, limits: Limits = LIMITS) -> Payload:
    """The app message for `digest`: the group bot's card as a JSON string in ``content``, within
    `limits.body_bytes` for the whole request; the digest's batch under `BATCH_KEY`."""
    found = feishu.card(digest, lambda shown: _body_bytes(_interactive(shown)) <= limits.body_bytes)
    message = _interactive(found) if found is not None else _fallback(digest, limits)
    return {**message, BATCH_KEY: digest.batch}


def _interactive(card: Payload) -> Payload:
    return {"msg_type": "interactive", "content": _json(card)}


def _text_message(text: str) -> Payload:
    return {"msg_type": "text", "content": _json({"text": text})}


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _body_bytes(message: Payload) -> int:
    return payload_bytes({"receive_id": _ROOM_FOR_ID, **message, "uuid": _ROOM_FOR_UUID})


_ENVELOPE_BYTES = _body_bytes({}) - payload_bytes({}) + 2
"""What ``receive_id`` and ``uuid`` add to a message's body (with room for the commas)."""


def _fallback(digest: Digest, limits: Limits) -> Payload:
    """A text message with the digest's summary, for digests whose smallest card would not fit."""
    def make(text: str) -> Payload:
        return _text_message(with_keyword(text, digest.context.keyword, "\n"))

    return fit_text(make, plain_summary(digest, inert), limits.body_bytes - _ENVELOPE_BYTES)


def message_uuid(app_id: str, receive_id_type: str, receive_id: str, batch: str) -> str:
    """The ``uuid`` of one message: the same for every attempt of a batch to one recipient (32 hex digits)."""
    seed = f"{app_id}|{receive_id_type}|{receive_id}|{batch}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


# --- answers ------------------------------------------------------------------------------------------


def classify(response: httpx.Response) -> Outcome:
    """What one answer of the send API means (see `verdict` for whom it concerns)."""
    return verdict(response, "the recipient", "").outcome


def verdict(response: httpx.Response, who: str, receive_id_type: str) -> Verdict:
    """What one answer of the send API means for `who` (``"open_id ou_x"``), the app, or the token.

    Decided by ``code``: Feishu answers business errors with HTTP 400 and rate limits with HTTP 429.
    An unknown code concerns the recipient: if it concerns every one, the destination stops anyway.
    """
    body = json_body(response)
    code = answer_code(body.get("code")) if body else None
    if body is None or code is None:
        decided = classify_http(response)
        return Verdict(decided if decided is not None else unexpected_answer(response, "Feishu"), "app")
    answer = trimmed(response)
    said = f"{code} {answer_message(body.get('msg'))}".strip()
    if code == 0:
        ok = Outcome("ok", answer=answer) if response.is_success else unexpected_answer(response, "Feishu")
        return Verdict(ok, "recipient", code)
    if code in _TOKEN_INVALID:
        reason = f"Feishu says the tenant_access_token is invalid or expired ({code})"
        return Verdict(Outcome("retry", 0.0, reason, answer), "token", code)
    if code in _APP_RATE or response.status_code == 429:
        wait = retry_after(response, _APP_RATE.get(code, 1.0))
        reason = f"Feishu says the app sends too fast ({said})"
        return Verdict(Outcome("retry", wait, reason, answer), "app", code)
    if code in _RECIPIENT_RETRY:
        wait = retry_after(response, _RECIPIENT_RETRY[code])
        reason = f"Feishu asks to send to {who} later ({said})"
        return Verdict(Outcome("retry", wait, reason, answer), "recipient", code)
    app_problem = _app_problem(code, said, receive_id_type, response)
    if app_problem is not None:
        return Verdict(Outcome(*app_problem, answer=answer), "app", code)
    fix = _UNREACHABLE.get(code, "")
    reason = f"Feishu cannot deliver to {who} ({said})" + (f": {fix}" if fix else "")
    return Verdict(Outcome("permanent", 0.0, reason, answer), "recipient", code, said, fix)


def _app_problem(code: int, said: str, receive_id_type: str,
                 response: httpx.Response) -> tuple[_Kind, float, str] | None:
    """The outcome of an answer that concerns the whole app or the message itself; None otherwise."""
    if code in (230027, 99991672):
        return "permanent", 0.0, _permission_reason(code, said, receive_id_type)
    if code in _APP_PERMANENT:
        return "permanent", 0.0, _APP_PERMANENT[code]
    if code in _MESSAGE_PERMANENT:
        return "rejected", 0.0, f"Feishu refused the message ({said}; {_MESSAGE_PERMANENT[code]})"
    if response.status_code >= 500 and code not in _UNREACHABLE:
        return "retry", retry_after(response, 0.0), f"Feishu answered HTTP {response.status_code} ({said})"
    return None


def _permission_reason(code: int, said: str, receive_id_type: str) -> str:
    found = _SCOPES.search(said)
    scopes = [s.strip() for s in found.group(1).split(",") if s.strip()] if found else []
    if not scopes:
        scopes = [_SEND_SCOPE] + ([_USER_ID_SCOPE] if receive_id_type == "user_id" else [])
        wanted = " and ".join(scopes)
    else:
        wanted = scopes[0] if len(scopes) == 1 else "one of " + ", ".join(scopes)
    return (f"Feishu says the app lacks a permission ({code}): grant {wanted} under Permissions & Scopes "
            "in the developer console, then publish a new app version")


# --- the destination ----------------------------------------------------------------------------------


class FeishuApp(Destination):
    """A Feishu or Lark app bot sending each digest to several users or chats.

    Used by one dispatcher thread (or one ``chatlog send``); tokens are shared process-wide through
    `TOKENS`.
    """

    names = ("feishu-app", "lark-app")
    hosts = ("open.feishu.cn", "open.larksuite.com")
    paths = (MESSAGES_PATH,)
    options = (
        Option("app_id", "the app's id, e.g. app_id=cli_a1b2c3"),
        Option("app_secret", "the app's secret (developer console → Credentials)", secret=True),
        Option("receive_id_type", f"what the ids are: one of {_TYPES}, e.g. receive_id_type=open_id"),
        Option("receive_ids", "the recipients, e.g. receive_ids=ou_a,ou_b", many=True),
    )
    example = "feishu-app://APP_ID:APP_SECRET@open_id/ou_xxx"
    forms = (("Feishu / Lark app bot", ("feishu-app://APP_ID:APP_SECRET@open_id/ou_a,ou_b",
                                        "lark-app://APP_ID:APP_SECRET@chat_id/oc_a")),)
    escape = staticmethod(inert)

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        receive_id_type: str,
        receive_ids: Sequence[str],
        *,
        keyword: str | None = None,
        platform: str = "feishu-app",
        origin: str | None = None,
        tokens: TenantTokens | None = None,
    ) -> None:
        """`origin` (``scheme://host[:port]``) replaces the platform's own host, e.g. the local fakes;
        `tokens` replaces the process-wide `TOKENS`."""
        if platform not in _ORIGINS:
            raise ValueError(f"platform must be 'feishu-app' or 'lark-app', not {platform!r}"
                             f"; e.g. {self.example}")
        _check_app(app_id, app_secret, self.example)
        self.receive_id_type = _checked_type(receive_id_type, self.example)
        self.receive_ids = _checked_ids(receive_ids, self.example)
        self.platform = platform
        self.app_id = app_id
        self.app_secret = app_secret
        self.keyword = keyword or None
        self.origin = origin or _ORIGINS[platform]
        self.endpoint = f"{self.origin}{MESSAGES_PATH}"
        self.token_endpoint = f"{self.origin}{TOKEN_PATH}"
        self.tokens = tokens if tokens is not None else TOKENS
        count = len(self.receive_ids)
        self.limits = Limits(body_bytes=LIMITS.body_bytes, per_minute=max(1, _APP_PER_MINUTE // count),
                             per_second=max(1, min(_RECIPIENT_PER_SECOND, _APP_PER_SECOND // count)))
        self._key = token_key(self.origin, app_id, app_secret)
        self._batch = ""
        self._delivered: set[str] = set()
        self._unreachable: set[str] = set()
        self._reporter: Reporter | None = None

    @classmethod
    def from_target(cls, target: Target) -> FeishuApp:
        """``feishu-app://APP_ID:APP_SECRET@TYPE/ID,ID``, ``lark-app://…``, or ``http(s)://host/open-apis/im/v1/
        messages`` with ``platform=feishu-app``; ``app_id``, ``app_secret``, ``receive_id_type`` and
        ``receive_ids`` options win over the URL's parts."""
        if target.secret is not None:
            raise ValueError("an app bot has no signing secret: give the app secret as "
                             f"feishu-app://APP_ID:APP_SECRET@… or app_secret=; e.g. {cls.example}")
        origin = target_origin(target, cls.example)
        app_id, app_secret, receive_id_type, ids = _url_parts(target.url, cls.example)
        query = target.query
        app_id = query.pop("app_id", "") or app_id
        app_secret = query.pop("app_secret", "") or app_secret
        receive_id_type = query.pop("receive_id_type", "") or receive_id_type
        ids = query.pop("receive_ids", "") or ids
        return cls(app_id, app_secret, receive_id_type, ids.split(","), keyword=target.keyword,
                   platform=target.platform, origin=origin)

    def render(self, digest: Digest) -> Payload:
        """The card for `digest` (see `render`), with this destination's keyword when the digest has none."""
        return render(with_default_keyword(digest, self.keyword), self.limits)

    def render_text(self, text: str) -> Payload:
        """A ``text`` message (its own batch: sending the same text again later is a new message)."""
        def make(cut: str) -> Payload:
            return _text_message(with_keyword(cut, self.keyword, "\n"))

        message = fit_text(make, no_tags(text), self.limits.body_bytes - _ENVELOPE_BYTES)
        return {**message, BATCH_KEY: f"text-{secrets.token_hex(8)}"}

    def send(self, client: httpx.Client, payload: Payload) -> Outcome:
        """Send `payload` to every recipient not yet served in this batch. Never raises.

        ok when every recipient got it or cannot be reached (reported once, then skipped); retry when
        any failed for now (the longest wait asked); permanent for app-wide problems, or when no
        recipient can be reached.
        """
        try:
            return self._send(client, payload)
        except Exception as exc:
            return Outcome("retry", reason=f"chatlog failed while sending to Feishu ({type(exc).__name__})")

    def masked(self) -> str:
        """``feishu-app://APP_ID:***@open_id/ou_a,ou_b`` (the app id and recipients are not secret);
        ``?base_url=…`` added for a host of your own."""
        shown = ",".join(self.receive_ids[:3]) + (f",…+{len(self.receive_ids) - 3}"
                                                  if len(self.receive_ids) > 3 else "")
        text = f"{self.platform}://{self.app_id}:***@{self.receive_id_type}/{shown}"
        return text if is_official(self.origin, _HOSTS) else f"{text}?base_url={self.origin}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The app secret."""
        return (self.app_secret,)

    # ---- sending ---------------------------------------------------------------------------------------

    def _send(self, client: httpx.Client, payload: Payload) -> Outcome:
        message = {key: value for key, value in payload.items() if key != BATCH_KEY}
        batch = str(payload.get(BATCH_KEY) or "") or f"once-{secrets.token_hex(8)}"
        if batch != self._batch:
            self._batch, self._delivered = batch, set()
        results: list[tuple[str, Verdict]] = []
        for receive_id in self.receive_ids:
            if receive_id in self._delivered or receive_id in self._unreachable:
                continue
            found = self._send_one(client, receive_id, message, batch)
            results.append((receive_id, found))
            if found.outcome.ok:
                self._delivered.add(receive_id)
            elif found.scope == "app":
                break  # app-wide: every other recipient would get the same answer
        return self._summary(results)

    def _send_one(self, client: httpx.Client, receive_id: str, message: Payload, batch: str) -> Verdict:
        body = {"receive_id": receive_id, **message,
                "uuid": message_uuid(self.app_id, self.receive_id_type, receive_id, batch)}
        who = f"{self.receive_id_type} {receive_id}"
        for _ in range(2):  # the second round only after the token was refused and fetched anew
            token = self.tokens.get(self._key, lambda: self._fetch_token(client))
            if isinstance(token, Outcome):
                return Verdict(self._redacted(token, ""), "app")
            answer = post_json(client, self.endpoint, body, params={"receive_id_type": self.receive_id_type},
                               headers={"Authorization": f"Bearer {token}"})
            if isinstance(answer, Outcome):
                return Verdict(answer, "app")
            found = verdict(answer, who, self.receive_id_type)
            found = replace(found, outcome=self._redacted(found.outcome, token))
            if found.scope != "token":
                return found
            self.tokens.invalidate(self._key, token)
        again = found.outcome
        reason = f"{again.reason}, also just after fetching a new one"
        return Verdict(Outcome("retry", again.retry_after, reason, again.answer), "app", found.code)

    def _fetch_token(self, client: httpx.Client) -> Fetched | Outcome:
        credentials = {"app_id": self.app_id, "app_secret": self.app_secret}
        answer = post_json(client, self.token_endpoint, credentials)
        if isinstance(answer, Outcome):
            reason = f"could not fetch a tenant_access_token: {answer.reason}"
            return Outcome(answer.kind, answer.retry_after, reason)
        return token_of(answer)

    def _redacted(self, outcome: Outcome, token: str) -> Outcome:
        hidden = (self.app_secret, token)
        return Outcome(outcome.kind, outcome.retry_after, redact(outcome.reason, hidden),
                       redact(outcome.answer, hidden))

    def _summary(self, results: list[tuple[str, Verdict]]) -> Outcome:
        answer = "; ".join(f"{rid}: {found.outcome.answer}" for rid, found in results if found.outcome.answer)
        app_stop = next((f.outcome for _, f in results if f.scope == "app" and f.outcome.kind == "permanent"),
                        None)
        if app_stop is not None:
            return Outcome("permanent", 0.0, app_stop.reason, answer)
        refused = next((f.outcome for _, f in results if f.scope == "app" and f.outcome.kind == "rejected"),
                       None)
        if refused is not None:
            return Outcome("rejected", 0.0, refused.reason, answer)
        broken = [(rid, f) for rid, f in results if f.scope == "recipient" and f.outcome.kind == "permanent"]
        self._unreachable.update(rid for rid, _ in broken)
        reachable = [rid for rid in self.receive_ids if rid not in self._unreachable]
        self._report_unreachable(broken, others_left=bool(reachable))
        waits = [f.outcome for _, f in results if f.outcome.kind == "retry"]
        if waits:
            reasons = list(dict.fromkeys(outcome.reason for outcome in waits))
            return Outcome("retry", max(outcome.retry_after for outcome in waits), "; ".join(reasons), answer)
        if not reachable:
            which = "; ".join(f"{self.receive_id_type} {rid} ({f.said})" for rid, f in broken)
            reason = "no recipient of this app bot can be reached" + (f": {which}" if which else "")
            return Outcome("permanent", 0.0, reason, answer)
        return Outcome("ok", answer=answer)

    def _report_unreachable(self, broken: list[tuple[str, Verdict]], *, others_left: bool) -> None:
        """One stderr line per problem, naming the ids and the fix (never the secret)."""
        problems: dict[tuple[str, str], list[str]] = {}
        for receive_id, found in broken:
            problems.setdefault((found.said, found.fix), []).append(receive_id)
        for (said, fix), ids in problems.items():
            them = "it" if len(ids) == 1 else "them"
            rest = ", the other recipients still get alerts" if others_left else ""
            line = (f"Feishu cannot deliver to {self.receive_id_type} {', '.join(ids)} ({said})"
                    + (f": {fix}" if fix else "") + f"; chatlog skips {them} from now on{rest}")
            self._report(f"unreachable:{said}:{','.join(ids)}", line)

    def _report(self, key: str, line: str) -> None:
        if self._reporter is None:
            self._reporter = Reporter(self.masked(), self.secrets)
        self._reporter.report(key, line, once=True)


# --- destination strings ------------------------------------------------------------------------------


def _url_parts(url: urllib.parse.SplitResult, example: str) -> tuple[str, str, str, str]:
    """(app id, app secret, receive_id_type, ids) written in the URL itself; "" for what it leaves out."""
    if url.scheme in ("http", "https"):
        if url.path.rstrip("/") != MESSAGES_PATH:
            raise ValueError(f"an app bot URL on a host of your own looks like http://HOST{MESSAGES_PATH}"
                             f"?platform=feishu-app&app_id=…; e.g. {example}")
        return "", "", "", ""
    userinfo, at, host = url.netloc.rpartition("@")
    if not at and ":" in host:
        raise ValueError("cannot find the '@' after APP_ID:APP_SECRET: URL-quote an app secret that contains "
                         f"'/', '?', '#' or '@' (e.g. with urllib.parse.quote); e.g. {example}")
    app_id, _, app_secret = userinfo.partition(":")
    ids = urllib.parse.unquote(url.path.strip("/"))
    return urllib.parse.unquote(app_id), urllib.parse.unquote(app_secret), host, ids


def _check_app(app_id: str, app_secret: str, example: str) -> None:
    if not app_id:
        raise ValueError(f"the app bot destination has no app id (cli_…): write it before the ':' or pass "
                         f"app_id=; e.g. {example}")
    check_token(app_id, "app id", example)
    if not app_secret:
        raise ValueError(f"the app bot destination has no app secret: write it after 'APP_ID:' (URL-quoted) "
                         f"or pass app_secret=; e.g. {example}")
    if any(character.isspace() for character in app_secret):
        raise ValueError(f"the app secret contains whitespace, which an app secret never has; e.g. {example}")


def _checked_type(receive_id_type: str, example: str) -> str:
    if not receive_id_type:
        raise ValueError(f"the app bot destination has no receive_id_type: write one of {_TYPES} after "
                         f"the '@' or pass receive_id_type=; e.g. {example}")
    if receive_id_type.lower() in RECEIVE_ID_TYPES:
        return receive_id_type.lower()
    shown = f" {receive_id_type!r}" if _TYPE_SHAPE.fullmatch(receive_id_type.lower()) else ""
    raise ValueError(f"unknown receive_id_type{shown}: use one of {_TYPES}; e.g. {example}")


def _checked_ids(receive_ids: Sequence[str], example: str) -> tuple[str, ...]:
    ids = tuple(dict.fromkeys(part.strip() for part in receive_ids if part.strip()))
    if not ids:
        raise ValueError("the app bot destination names no recipients: list ids after the receive_id_type, "
                         f"comma-separated, or pass receive_ids=; e.g. {example}")
    odd = next((i for i in ids if not _ID_SHAPE.fullmatch(i)), None)
    if odd is not None:
        raise ValueError(f"the recipient id {odd[:40]!r} contains a space or is over 200 characters; "
                         f"e.g. {example}")
    return ids
