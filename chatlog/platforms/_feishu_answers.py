"""What the Feishu / Lark send API's answers mean, and for whom: one recipient, the whole app, or the
token (`verdict`). Business errors come with HTTP 400 and rate limits with HTTP 429, so ``code``
decides; an answer without one (a proxy's page, a redirect) is a retry, never a verdict.
"""

from __future__ import annotations

from chatlog._lazy import lazy_pattern
from chatlog._record import Record
from chatlog.platforms._answers import answer_code, classify_http, json_body, retry_after, trimmed
from chatlog.platforms._answers import unexpected_answer as unexpected
from chatlog.platforms._base import Outcome
from chatlog.platforms._text import answer_message

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on chatlog's own thread, where the first request is made
    from chatlog.platforms._types import Literal, httpx

_SEND_SCOPE = "im:message:send_as_bot"
_USER_ID_SCOPE = "contact:user.employee_id:readonly"
_SCOPES = lazy_pattern(r"\[([^\]]{1,400})\]")

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

if TYPE_CHECKING:
    Scope = Literal["recipient", "app", "token"]
    _Kind = Literal["retry", "permanent", "rejected"]


class Verdict(Record):
    """What one answer of the send API means, and for whom: one recipient, the whole app, or the token."""

    outcome: Outcome
    scope: Scope
    code: int | None = None
    said: str = ""
    """For a recipient that cannot be reached: Feishu's code and message."""
    fix: str = ""
    """For a recipient that cannot be reached: what to do about it ("" when unknown)."""

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
        return Verdict(decided if decided is not None else unexpected(response, "Feishu"), "app")
    answer = trimmed(response)
    said = f"{code} {answer_message(body.get('msg'))}".strip()
    if code == 0:
        ok = Outcome("ok", answer=answer) if response.is_success else unexpected(response, "Feishu")
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
