"""``chatlog serve``: the fake platforms with one bot per platform and a Feishu app, and the web inbox.

Tokens survive a restart, so an exported ``CHATLOG_URL`` keeps working: by default they are derived from
``--seed`` (default ``chatlog``: the same on every start and every machine); ``--state DIR`` instead keeps
random ones in ``DIR/chatlog-serve.json``. A port that is taken is one stderr line, not a traceback.
"""

from __future__ import annotations

import errno
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatlog._report import write_stderr
from chatlog.testing.apps import FakeApp
from chatlog.testing.bots import FakeBot
from chatlog.testing.rules import PlatformRules
from chatlog.testing.server import PLATFORM_RULES, FakePlatforms

DEFAULT_SEED = "chatlog"
STATE_FILE = "chatlog-serve.json"
APP_PLATFORM = "feishu-app"
APP_RECIPIENTS = {"open_id": ["ou_oncall", "ou_lead"], "chat_id": ["oc_incidents"]}
UUID_SHAPED = frozenset({"feishu", "lark", "wecom"})

Credentials = dict[str, Any]
"""platform → token, and ``feishu-app`` → ``{"app_id", "app_secret"}``."""


def _say(line: str) -> None:
    print(line, flush=True)  # stdout is often a pipe (a test, a supervisor): each line as it is made


def run(port: int, state_dir: str | None, seed: str | None, out: Callable[[str], None] = _say) -> int:
    """Serve until Ctrl-C; returns the exit code (1 when the port cannot be had, 2 for a bad state file)."""
    try:
        return _run(port, state_dir, seed, out)
    except KeyboardInterrupt:  # at any moment, also while starting: the server is stopped by then
        out("stopped")
        return 0


def _run(port: int, state_dir: str | None, seed: str | None, out: Callable[[str], None]) -> int:
    try:
        saved = _load_state(Path(state_dir)) if state_dir is not None else None
    except ValueError as exc:
        write_stderr(f"chatlog serve: {exc}")
        return 2
    try:
        fake = FakePlatforms(port=port)
    except OSError as exc:
        write_stderr(f"chatlog serve: {_port_problem(port, exc)}")
        return 1
    with fake:
        if state_dir is not None:
            credentials, notes = add_receivers(fake, saved or {}, None)
            _save_state(Path(state_dir), credentials)
            origin = f"tokens are kept in {Path(state_dir) / STATE_FILE}"
        else:
            chosen = DEFAULT_SEED if seed is None else seed
            credentials, notes = add_receivers(fake, {}, chosen)
            origin = f"tokens are derived from --seed {chosen!r}: the same on every start"
        _print_banner(fake, origin, notes, out)
        while True:
            time.sleep(3600)


def add_receivers(fake: FakePlatforms, saved: Credentials, seed: str | None) -> tuple[Credentials, list[str]]:
    """One bot per platform name of every group-bot fake (Feishu and Lark…) and one Feishu app, with the
    `saved` tokens, else tokens derived from `seed`, else random ones. Returns the credentials used and
    notes for the user."""
    used: Credentials = {}
    notes: list[str] = []
    for rules in PLATFORM_RULES:
        for platform in rules.names:
            token = saved.get(platform) if isinstance(saved.get(platform), str) else None
            if token is None and seed is not None:
                token = seeded_token(seed, platform)
            used[platform] = _add_bot(fake, rules, platform, token, notes).token
    app = saved.get(APP_PLATFORM)
    app_id, app_secret = (app.get("app_id"), app.get("app_secret")) if isinstance(app, dict) else (None, None)
    if app_id is None and seed is not None:
        app_id, app_secret = seeded_app(seed)
    added = fake.add_app(APP_PLATFORM, app_id=app_id, app_secret=app_secret, recipients=APP_RECIPIENTS)
    used[APP_PLATFORM] = {"app_id": added.app_id, "app_secret": added.app_secret}
    return used, notes


def _add_bot(fake: FakePlatforms, rules: PlatformRules, platform: str, token: str | None,
             notes: list[str]) -> FakeBot:
    # Set up as the demo's bot of this platform (signing on, a keyword…), which its fake declares.
    try:
        return fake.add_bot(platform, token=token, **rules.demo)
    except ValueError:
        # A platform whose tokens look unlike ours: give it its own kind of token, and say so.
        notes.append(f"{platform}: a new random token on each start (its token shape is not derived "
                     "from --seed); use --state DIR to keep it")
        return fake.add_bot(platform, **rules.demo)


def seeded_token(seed: str, platform: str) -> str:
    """A token shaped like the platform's (UUID for Feishu/Lark/WeCom, 64 hex for DingTalk) from `seed`."""
    digest = hashlib.sha256(f"chatlog serve\0{seed}\0{platform}".encode()).digest()
    if platform in UUID_SHAPED:
        return str(uuid.UUID(bytes=digest[:16], version=4))
    return digest.hex() if platform == "dingtalk" else digest.hex()[:32]


def seeded_app(seed: str) -> tuple[str, str]:
    """App id (``cli_`` + 16 hex) and app secret (32 hex) from `seed`."""
    digest = hashlib.sha256(f"chatlog serve\0{seed}\0{APP_PLATFORM}".encode()).hexdigest()
    return f"cli_{digest[:16]}", digest[16:48]


def _load_state(directory: Path) -> Credentials:
    path = directory / STATE_FILE
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"cannot read {path} ({exc}): delete it to start with new tokens") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds no token table: delete it to start with new tokens")
    return value


def _save_state(directory: Path, credentials: Credentials) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    path.write_text(json.dumps(credentials, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    path.chmod(0o600)  # the file holds an app secret


def _port_problem(port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on 127.0.0.1 is already in use (another chatlog serve?); "
                f"pick another one with --port, e.g. --port {port + 1}, or --port 0 for any free port")
    return (f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); "
            "pick another port with --port, e.g. --port 8751")


def _print_banner(fake: FakePlatforms, origin: str, notes: list[str], out: Callable[[str], None]) -> None:
    out(f"fake platforms and inbox at {fake.base_url}/  (Ctrl-C stops)")
    out(f"{origin}; send to these destination URLs:")
    receivers: list[FakeBot | FakeApp] = [*fake.bots, *fake.apps]
    width = max(len(r.platform) for r in receivers)
    for bot in fake.bots:
        out(f"  {bot.platform:{width}} {bot.url}")
    for app in fake.apps:
        out(f"  {app.platform:{width}} {app.url('open_id')}")
    for note in notes:
        out(f"note: {note}")
    first = fake.bots[0].url if fake.bots else ""
    out(f"\ne.g. export CHATLOG_URL='{first}'")
