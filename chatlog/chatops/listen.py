"""``chatlog listen``: the receiver on the standard library's HTTP server, configured by flags or
environment variables (``CHATLOG_FEISHU_ENCRYPT_KEY``, …: secrets on a command line show in ``ps``)."""

from __future__ import annotations

import argparse
import os
import time

from chatlog._report import write_stderr
from chatlog.chatops.hosting import HTTPReceiver
from chatlog.chatops.receiver import Receiver

_FLAGS = {
    # flag → (platform keyword, option name)
    "feishu-encrypt-key": ("feishu", "encrypt_key"),
    "feishu-verification-token": ("feishu", "verification_token"),
    "feishu-app": ("feishu", "app"),
    "lark-encrypt-key": ("lark", "encrypt_key"),
    "lark-verification-token": ("lark", "verification_token"),
    "lark-app": ("lark", "app"),
    "wecom-token": ("wecom", "token"),
    "wecom-encoding-aes-key": ("wecom", "encoding_aes_key"),
    "dingtalk-app-secret": ("dingtalk", "app_secret"),
    "qq-app-id": ("qq", "app_id"),
    "qq-secret": ("qq", "secret"),
}
_WS_VARIABLE = "CHATLOG_FEISHU_WS"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``listen`` to the ``chatlog`` command's subcommands."""
    listen = commands.add_parser("listen", help="receive chat commands (mute, ack, status) from the chats")
    listen.add_argument("--port", type=int, default=8751, help="port to listen on (0: any free port)")
    listen.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: put a TLS reverse proxy in front)")
    listen.add_argument("--state", default=None, help="control store: 'memory', 'sqlite:///path' "
                        "(default: the per-user file every handler on this host reads)")
    listen.add_argument("--allow", action="append", default=None,
                        help="an id (open_id, user_id, …) allowed to control alerts everywhere; repeatable")
    for flag in _FLAGS:
        variable = "CHATLOG_" + flag.upper().replace("-", "_")
        listen.add_argument(f"--{flag}", default=os.environ.get(variable), help=f"(or ${variable})")
    listen.add_argument("--feishu-ws", default=os.environ.get(_WS_VARIABLE), metavar="feishu-app://ID:SECRET",
                        help="receive this app's events over Feishu's long connection: no public URL needed "
                        f"(needs chatlog[feishu-ws]; or ${_WS_VARIABLE})")
    listen.set_defaults(command="listen", run=run)


def options_of(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """The per-platform option dicts the flags give (platforms without any flag left out)."""
    found: dict[str, dict[str, str]] = {}
    for flag, (platform, name) in _FLAGS.items():
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            found.setdefault(platform, {})[name] = value
    return found


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; exit code 2 for a configuration mistake."""
    try:
        receiver = Receiver(**options_of(args), feishu_ws=args.feishu_ws,  # type: ignore[arg-type]
                            state=args.state, allow=args.allow)
        server = HTTPReceiver(receiver, args.host, args.port) if receiver.routes else None
    except (ValueError, OSError) as exc:
        write_stderr(f"chatlog listen: {exc}")
        return 2
    if server is not None:
        routes = ", ".join(receiver.routes)
        print(f"chatlog listen: {server.url}  routes {routes}  (Ctrl-C stops)", flush=True)
        server.serve_in_thread()
    if receiver.long_connection is not None:
        print(f"chatlog listen: {receiver.long_connection.platform} long connection (no port needed)",
              flush=True)
    receiver.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped")
    finally:
        if server is not None:
            server.stop()
        else:
            receiver.close()
    return 0
