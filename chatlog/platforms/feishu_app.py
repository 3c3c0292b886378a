"""Feishu and Lark app bots (self-built apps): one digest to each of several people or chats.

Auth: no signing. A ``tenant_access_token`` (`chatlog.platforms._feishu_tokens`) goes in the
``Authorization`` header; one per app and host for the whole process, refreshed before it expires and
fetched again once when the API says it is invalid (the message is then resent with the same uuid).

Send: ``POST /open-apis/im/v1/messages?receive_id_type=...``: `FeishuApp.render_all` gives one request
body per recipient, the group bot's card (`chatlog.platforms.feishu.card`) as a JSON *string* in
``content`` and a ``uuid`` derived from the digest's batch and the recipient: Feishu delivers one uuid
at most once an hour, so a retry never delivers twice. Within one batch, recipients already served
are left out of a retry.

Answers (`chatlog.platforms._feishu_answers`): decided by ``code``. A recipient the bot cannot reach is
reported once on stderr (with the fix) and skipped from then on; the others go on receiving. App-wide
problems (credentials, permissions, bot disabled) stop the destination with the fix.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence

from chatlog._lazy import lazy_pattern
from chatlog._record import replace
from chatlog._report import Reporter
from chatlog.digest import Digest
from chatlog.platforms import feishu
from chatlog.platforms._base import (
    Destination,
    Limits,
    Option,
    Outcome,
    Payload,
    Payloads,
    Target,
    check_token,
    is_official,
    redact,
    target_origin,
)
from chatlog.platforms._feishu_answers import Verdict, classify, verdict
from chatlog.platforms._feishu_tokens import TOKENS, Fetched, TenantTokens, token_key, token_of
from chatlog.platforms._http import post_json
from chatlog.platforms._text import fit_text, inert, no_tags, payload_bytes, plain_summary, with_keyword

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import httpx

__all__ = ["LIMITS", "MESSAGES_PATH", "RECEIVE_ID_TYPES", "TOKENS", "TOKEN_PATH", "FeishuApp", "TenantTokens",
           "classify", "message_uuid", "render", "token_key", "token_of", "verdict"]

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MESSAGES_PATH = "/open-apis/im/v1/messages"
RECEIVE_ID_TYPES = ("open_id", "user_id", "union_id", "email", "chat_id")
_TYPES = ", ".join(RECEIVE_ID_TYPES)

_ORIGINS = {"feishu-app": "https://open.feishu.cn", "lark-app": "https://open.larksuite.com"}
_HOSTS = ("open.feishu.cn", "open.larksuite.com")
LIMITS = Limits(body_bytes=28_000, per_minute=600, per_second=4)
"""Card request bodies are limited to 30 KB (we keep 28,000 bytes). The app may send 1000 a minute and
50 a second, and 5 a second to one user or chat. Every recipient's request counts against these, so
a handler keeps below 600 requests a minute, and 4 digests a second with a few recipients (fewer with
many: a digest to N recipients is N requests)."""

_ROOM_FOR_ID = "x" * 64
_ROOM_FOR_UUID = "x" * 32
_TYPE_SHAPE = lazy_pattern(r"[a-z_]{1,20}")
_ID_SHAPE = lazy_pattern(r"[^\s,]{1,200}")


# --- rendering ----------------------------------------------------------------------------------------


def render(digest: Digest, limits: Limits = LIMITS, keyword: str | None = None) -> Payload:
    """The app message for `digest` (``msg_type`` and ``content``): the group bot's card as a JSON
    string, within `limits.body_bytes` for the whole request."""
    found = feishu.card(digest, lambda shown: _body_bytes(_interactive(shown)) <= limits.body_bytes, keyword)
    return _interactive(found) if found is not None else _fallback(digest, limits, keyword)


def _interactive(card: Payload) -> Payload:
    return {"msg_type": "interactive", "content": _json(card)}


def _text_message(text: str) -> Payload:
    return {"msg_type": "text", "content": _json({"text": text})}


def _json(value: object) -> str:
    import json  # here, like every import only a message needs: an https URL imports this module

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _body_bytes(message: Payload) -> int:
    return payload_bytes({"receive_id": _ROOM_FOR_ID, **message, "uuid": _ROOM_FOR_UUID})


def _envelope_bytes() -> int:
    """What ``receive_id`` and ``uuid`` add to a message's body (with room for the commas)."""
    return _body_bytes({}) - payload_bytes({}) + 2


def _fallback(digest: Digest, limits: Limits, keyword: str | None) -> Payload:
    """A text message with the digest's summary, for digests whose smallest card would not fit."""
    def make(text: str) -> Payload:
        return _text_message(with_keyword(text, keyword, "\n"))

    return fit_text(make, plain_summary(digest, inert), limits.body_bytes - _envelope_bytes())


def message_uuid(app_id: str, receive_id_type: str, receive_id: str, batch: str) -> str:
    """The ``uuid`` of one message: the same for every attempt of a batch to one recipient (32 hex digits)."""
    import hashlib

    seed = f"{app_id}|{receive_id_type}|{receive_id}|{batch}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


# --- the destination ----------------------------------------------------------------------------------


class FeishuApp(Destination):
    """A Feishu or Lark app bot sending each digest to several users or chats.

    Used by one dispatcher thread (or one ``chatlog send``); tokens are shared process-wide through
    `TOKENS`.
    """

    names = ("feishu-app", "lark-app")
    hosts = _HOSTS
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
        prefix: str = "",
    ) -> None:
        """`origin` (``scheme://host[:port]``) replaces the platform's own host, e.g. the local fakes, and
        `prefix` goes before the API paths (a relay's own path); `tokens` replaces the process-wide
        `TOKENS`."""
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
        self.endpoint = f"{self.origin}{prefix}{MESSAGES_PATH}"
        self.token_endpoint = f"{self.origin}{prefix}{TOKEN_PATH}"
        self.tokens = tokens if tokens is not None else TOKENS
        self.limits = LIMITS
        self._key = token_key(self.origin, app_id, app_secret)
        self._batch = ""
        self._delivered: set[str] = set()
        self._unreachable: set[str] = set()
        self._reporter: Reporter | None = None

    @classmethod
    def from_target(cls, target: Target) -> FeishuApp:
        """``feishu-app://APP_ID:APP_SECRET@TYPE/ID,ID``, ``lark-app://…``, or ``http(s)://host/open-apis/im/v1/
        messages`` with ``platform=feishu-app``; ``app_id``, ``app_secret``, ``receive_id_type`` and
        ``receive_ids`` options win over the URL's parts. On a relay path, the API paths follow it."""
        if target.secret is not None:
            raise ValueError("an app bot has no signing secret: give the app secret as "
                             f"feishu-app://APP_ID:APP_SECRET@… or app_secret=; e.g. {cls.example}")
        origin = target_origin(target, cls.example)
        app_id, app_secret, receive_id_type, ids = _url_parts(target.url, cls.example, target.relay)
        query = target.query
        app_id = query.pop("app_id", "") or app_id
        app_secret = query.pop("app_secret", "") or app_secret
        receive_id_type = query.pop("receive_id_type", "") or receive_id_type
        ids = query.pop("receive_ids", "") or ids
        prefix = target.url.path.rstrip("/") if target.relay else ""
        return cls(app_id, app_secret, receive_id_type, ids.split(","), keyword=target.keyword,
                   platform=target.platform, origin=origin, prefix=prefix)

    def render(self, digest: Digest) -> Payload:
        """The message every recipient gets for `digest` (see `render`), with this app's keyword."""
        return render(digest, self.limits, self.keyword)

    def render_all(self, digest: Digest) -> Payloads:
        """One request body per recipient still due in the digest's batch, each with its ``uuid``."""
        return self._bodies(self.render(digest), digest.batch)

    def render_text(self, text: str) -> Payload:
        """A ``text`` message, the keyword appended when it is configured and missing."""
        def make(cut: str) -> Payload:
            return _text_message(with_keyword(cut, self.keyword, "\n"))

        return fit_text(make, no_tags(text), self.limits.body_bytes - _envelope_bytes())

    def render_text_all(self, text: str) -> Payloads:
        """The text to every recipient, as its own batch (the same text later is a new message)."""
        return self._bodies(self.render_text(text), "")

    def render_fallback(self, digest: Digest) -> Payloads:
        """The digest as plain text to every recipient still due in its batch (same uuids on a retry)."""
        lines = "; ".join(group.sample.message[:200] for group in digest.groups[:5])
        text = f"{digest.level_name} · {digest.total:,} records: {lines}"
        return self._bodies(self.render_text(text), digest.batch)

    def send(self, client: httpx.Client, payload: Payload) -> Outcome:
        """Send one request body (one recipient's; see `render_all`). Never raises."""
        return self.send_all(client, (payload,))

    def send_all(self, client: httpx.Client, payloads: Payloads) -> Outcome:
        """Send each recipient's body. Never raises.

        ok when every recipient got it or cannot be reached (reported once, then skipped); retry when
        any failed for now (the longest wait asked); permanent for app-wide problems, or when no
        recipient can be reached.
        """
        try:
            results: list[tuple[str, Verdict]] = []
            for body in payloads:
                receive_id = str(body.get("receive_id"))
                found = self._send_one(client, body)
                results.append((receive_id, found))
                if found.outcome.ok:
                    self._delivered.add(receive_id)
                elif found.scope == "app":
                    break  # app-wide: every other recipient would get the same answer
            return self._summary(results)
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

    def _bodies(self, message: Payload, batch: str) -> Payloads:
        batch = batch or f"once-{os.urandom(8).hex()}"
        if batch != self._batch:
            self._batch, self._delivered = batch, set()
        due = [rid for rid in self.receive_ids if rid not in self._delivered and rid not in self._unreachable]
        return tuple({"receive_id": rid, **message,
                      "uuid": message_uuid(self.app_id, self.receive_id_type, rid, batch)} for rid in due)

    def _send_one(self, client: httpx.Client, body: Payload) -> Verdict:
        who = f"{self.receive_id_type} {body.get('receive_id')}"
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


def _url_parts(url: urllib.parse.SplitResult, example: str, relay: bool) -> tuple[str, str, str, str]:
    """(app id, app secret, receive_id_type, ids) written in the URL itself; "" for what it leaves out."""
    if url.scheme in ("http", "https"):
        if url.path.rstrip("/") != MESSAGES_PATH and not relay:
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
