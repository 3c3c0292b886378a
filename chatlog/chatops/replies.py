"""Answering in the chat a command came from: Feishu's reply API, the WeCom / DingTalk per-chat webhook,
a QQ passive reply. Runs on the receiver's reply thread, never on the thread answering the callback.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from chatlog._report import Reporter
from chatlog.chatops import feishu, qq
from chatlog.chatops.events import FeishuReplyTo, Inbound, QQReplyTo, WebhookReplyTo
from chatlog.platforms import _feishu_tokens as tokens
from chatlog.platforms._answers import answer_code, json_body
from chatlog.platforms._base import Outcome
from chatlog.platforms._http import post_json
from chatlog.platforms.feishu_app import TOKEN_PATH

QUEUE_SIZE = 64
TIMEOUT_S = 10.0


@dataclass(slots=True)
class _QQToken:
    token: str = ""
    expires_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Replier:
    """Sends one reply per call; each failure is one rate-limited stderr line, never an exception."""

    def __init__(self, apps: dict[str, feishu.App], qq_options: qq.Options | None, reporter: Reporter,
                 transport: httpx.BaseTransport | None = None) -> None:
        """`apps` maps ``feishu``/``lark`` to the app that answers there."""
        self._apps = apps
        self._qq = qq_options
        self._reporter = reporter
        self._client = httpx.Client(timeout=TIMEOUT_S, trust_env=False, transport=transport)
        self._qq_token = _QQToken()

    def send(self, inbound: Inbound, text: str) -> bool:
        """Answer `inbound` with `text`; False (and reported) when the platform did not take it."""
        target = inbound.reply_to
        if isinstance(target, FeishuReplyTo):
            outcome = self._feishu(inbound.platform, target, text)
        elif isinstance(target, WebhookReplyTo):
            body = {"msgtype": "text", "text": {"content": text}}
            outcome = _status(post_json(self._client, target.url, body))
        elif isinstance(target, QQReplyTo):
            outcome = self._qq_reply(target, text)
        else:
            return False
        if outcome is not None:
            self._reporter.report(f"reply:{inbound.platform}",
                                  f"could not reply on {inbound.platform}: {outcome}")
        return outcome is None

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _feishu(self, platform: str, target: FeishuReplyTo, text: str) -> str | None:
        app = self._apps.get(platform)
        if app is None:
            return f"no app configured to answer with ({platform}={{'app': 'feishu-app://ID:SECRET'}})"
        key = tokens.token_key(app.origin, app.app_id, app.app_secret)
        body = {"msg_type": "text", "content": json.dumps({"text": text}, ensure_ascii=False),
                "uuid": f"chatlog-re-{target.message_id}"[:50]}
        url = app.url(f"/open-apis/im/v1/messages/{target.message_id}/reply")
        for _ in range(2):
            token = tokens.TOKENS.get(key, lambda: self._feishu_token(app))
            if isinstance(token, Outcome):
                return token.reason
            answer = post_json(self._client, url, body, headers={"Authorization": f"Bearer {token}"})
            body_of = json_body(answer) if isinstance(answer, httpx.Response) else None
            code = answer_code((body_of or {}).get("code"))
            if code == 0:
                return None
            if code not in (99991661, 99991663, 99991664, 99991677, 20013):
                return _status(answer) or f"Feishu answered code {code}"
            tokens.TOKENS.invalidate(key, token)
        return "Feishu refused the tenant token twice"

    def _feishu_token(self, app: feishu.App) -> tokens.Fetched | Outcome:
        answer = post_json(self._client, app.url(TOKEN_PATH),
                           {"app_id": app.app_id, "app_secret": app.app_secret})
        return answer if isinstance(answer, Outcome) else tokens.token_of(answer)

    def _qq_reply(self, target: QQReplyTo, text: str) -> str | None:
        if self._qq is None:
            return "QQ is not configured"
        token = self._qq_access_token(self._qq)
        if token is None:
            return "could not get a QQ access token (check app_id and secret)"
        body: dict[str, object] = {"content": text, "msg_id": target.msg_id}
        if target.path.startswith("/v2/"):
            body.update(msg_type=0, msg_seq=1)
        answer = post_json(self._client, self._qq.api_origin + target.path, body,
                           headers={"Authorization": f"QQBot {token}"})
        return _status(answer)

    def _qq_access_token(self, opts: qq.Options) -> str | None:
        cached = self._qq_token
        with cached.lock:
            if cached.token and time.monotonic() < cached.expires_at:
                return cached.token
            answer = post_json(self._client, opts.token_origin + "/app/getAppAccessToken",
                               {"appId": opts.app_id, "clientSecret": opts.secret})
            body = json_body(answer) if isinstance(answer, httpx.Response) else None
            token, expires = (body or {}).get("access_token"), answer_code((body or {}).get("expires_in"))
            if not isinstance(token, str) or not token:
                return None
            cached.token, cached.expires_at = token, time.monotonic() + max(60, (expires or 7200) - 60)
            return token


def _status(answer: httpx.Response | Outcome) -> str | None:
    """None when the platform took the message, else why not (no body: it may echo a URL key)."""
    if isinstance(answer, Outcome):
        return answer.reason
    body = json_body(answer) or {}
    code = answer_code(body.get("errcode", body.get("code", 0)))
    if answer.status_code < 300 and code in (0, None):
        return None
    return f"HTTP {answer.status_code}, code {code}"


class ReplyThread:
    """One daemon thread running reply jobs from a bounded queue (started on the first job)."""

    def __init__(self, reporter: Reporter) -> None:
        """Jobs that do not fit are dropped and reported."""
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(QUEUE_SIZE)
        self._reporter = reporter
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job`; never blocks."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="chatlog-chatops-replies", daemon=True)
                self._thread.start()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._reporter.report("replies-full", f"more than {QUEUE_SIZE} replies waiting: one dropped")

    def close(self, timeout_s: float = 5.0) -> None:
        """Finish the queued jobs (at most `timeout_s`) and stop the thread."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        try:
            self._jobs.put(None, timeout=timeout_s)
        except queue.Full:
            return
        thread.join(timeout_s)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception as exc:  # the loop boundary: report and go on
                self._reporter.report("reply-job", f"a reply failed: {type(exc).__name__}")
