"""The ``chatlog`` command: ``send`` one message, list the destination ``urls``, run the ``demo``,
``serve`` the local fake platforms."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from chatlog import __version__
from chatlog._demo import (
    RESOLVE_AFTER_S,
    Printer,
    Tally,
    await_all_clears,
    next_step,
    simulate_incident,
    summary,
)
from chatlog._demo_chatops import mute_round_trip
from chatlog._report import write_stderr
from chatlog.chatops import listen
from chatlog.courier import HttpOptions, make_client
from chatlog.destinations import platform_classes, resolve
from chatlog.handler import ChatHandler
from chatlog.platforms._base import COMMON_OPTIONS, Option, redact
from chatlog.testing import PLATFORM_RULES, FakeBot, FakePlatforms

# argparse prints these as written: plain text, no markup.
DESCRIPTION = """\
chatlog turns log records into grouped chat alerts (Feishu/Lark, DingTalk, WeCom, ...).
This command sends one test message, lists the destination strings it understands, and runs
local fake platforms for a demo or for trying your own code."""

EPILOG = """\
examples:
  chatlog urls                                            every destination form, with an example
  chatlog send "dingtalk://TOKEN?secret=SEC..." "hello"   one message to your group
  chatlog demo                                            a simulated incident against fake platforms
  chatlog serve                                           fake platforms and a web inbox on :8750
  chatlog status --state redis://:PASSWORD@redis:6379/0   what the processes sharing a store are doing"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    code: int = args.run(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatlog", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"chatlog {__version__}")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands")

    send = commands.add_parser("send", help="send one message and print the platform's answer",
                               epilog="chatlog urls lists every destination form, with an example.")
    send.add_argument("url", help='destination, e.g. "dingtalk://TOKEN?secret=SEC..."')
    send.add_argument("text", help="the message text")
    send.add_argument("--secret", help="signing secret (wins over secret= in the URL)")
    send.add_argument("--keyword", help="keyword the bot requires (wins over keyword= in the URL)")
    send.add_argument("--platform", help="platform name when the URL does not tell")
    send.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    send.set_defaults(command="send", run=_send)

    urls = commands.add_parser("urls", help="list every destination form, with an example",
                               description="Every destination string chatlog understands, per platform.")
    urls.set_defaults(command="urls", run=_urls)

    demo = commands.add_parser("demo", help="local fake platforms + a simulated incident, then a summary")
    demo.add_argument("--seconds", type=float, default=10.0, help="length of the simulated incident")
    demo.add_argument("--records", type=_positive_int, default=3000,
                      help="records logged during the incident, the final critical one included")
    demo.add_argument("--verbose", action="store_true", help="print each message in full, not one line each")
    demo.set_defaults(command="demo", run=_demo)

    serve = commands.add_parser("serve", help="run the local fake platforms and web inbox until Ctrl-C")
    serve.add_argument("--port", type=int, default=8750, help="port on 127.0.0.1 (0: any free port)")
    kept = serve.add_mutually_exclusive_group()
    kept.add_argument("--seed", help='derive the bot tokens from this text (default "chatlog"): '
                      "the same URLs on every start")
    kept.add_argument("--state", metavar="DIR",
                      help="keep random bot tokens in DIR/chatlog-serve.json instead")
    serve.set_defaults(command="serve", run=_serve)

    status = commands.add_parser(
        "status", help="per destination in the fleet store: members, leader, pending, budget, last errors")
    status.add_argument("--state", default=None,
                        help="the store, as the handlers' state= (default: $CHATLOG_STATE, else this "
                             "host's SQLite file), "
                             "e.g. sqlite:///var/run/chatlog/fleet.db or redis://:PASSWORD@redis:6379/0")
    status.set_defaults(command="status", run=_status)
    listen.add_parser(commands)
    return parser


def _send(args: argparse.Namespace) -> int:
    try:
        resolved = resolve(args.url, secret=args.secret, keyword=args.keyword, platform=args.platform)
    except (ValueError, TypeError) as exc:
        write_stderr(f"chatlog send: {exc}")
        return 2
    destination = resolved.destination
    with make_client(HttpOptions(timeout_s=args.timeout)) as client:  # proxies and CAs as the handler's
        outcome = destination.send_all(client, destination.render_text_all(args.text))
    answer = redact(outcome.answer, destination.secrets)
    if outcome.ok:
        print(f"sent to {destination.masked()}: {answer}")
        return 0
    write_stderr(f"chatlog send: {destination.masked()} did not take the message: {outcome.reason}")
    if answer:
        write_stderr(f"the platform answered: {answer}")
    return 1


def _serve(args: argparse.Namespace) -> int:
    from chatlog.testing import serve

    return serve.run(args.port, args.state, args.seed)


def _status(args: argparse.Namespace) -> int:
    from chatlog.state.show import status_lines
    from chatlog.state.store import StoreError, open_store

    state = args.state or os.environ.get("CHATLOG_STATE") or None  # what a handler without state= uses
    if state == "memory":
        print("state='memory': every process keeps its own state, there is no store to read")
        return 0
    try:
        store = open_store(state, warn=False)
    except (ValueError, ImportError) as exc:
        write_stderr(f"chatlog status: {exc}")
        return 2
    try:
        for line in status_lines(store):
            print(line)
    except StoreError as exc:
        write_stderr(f"chatlog status: cannot read the store: {exc}")
        return 1
    finally:
        store.close()
    return 0


def _demo(args: argparse.Namespace) -> int:
    with FakePlatforms() as fake:
        bots = _demo_bots(fake)
        print(f"chatlog demo: a simulated database outage, {args.records:,} records over "
              f"{args.seconds:g} s,\nlogged to {len(bots)} fake group bots at {fake.base_url}/ "
              "(one line per message they received):\n")
        handlers = [
            ChatHandler(bot.url, level=logging.WARNING, service="checkout", environment="demo",
                        group_wait=1.0, group_interval=3.0, mentions={"CRITICAL": ["all"]},
                        resolve_after=RESOLVE_AFTER_S)
            for bot in bots
        ]
        tally = Tally(logging.WARNING)
        logger = logging.getLogger("demo")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        for handler in [*handlers, tally]:
            logger.addHandler(handler)
        printer = Printer(fake, verbose=args.verbose)
        printer.start()
        try:
            simulate_incident(logger, args.seconds, args.records)
            await_all_clears(bots, RESOLVE_AFTER_S + 10.0)
            for handler in [*handlers, tally]:
                logger.removeHandler(handler)
                handler.close()
        finally:
            printer.stop()
        stats = [handler.stats() for handler in handlers]
        print("\n".join(summary(bots, stats, tally.records, args.seconds)))
        print("\n".join(mute_round_trip(fake)))
        print("\n".join(next_step()))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1, got {value}")
    return value


def _urls(args: argparse.Namespace) -> int:
    """Print each registered platform's destination forms and its own options, then the common options."""
    print("Destination strings, for ChatHandler(url), CHATLOG_URL or: chatlog send URL TEXT\n")
    for cls in platform_classes():
        for title, forms in cls.forms or ((" / ".join(cls.names), (cls.example,)),):
            print(title)
            for form in forms:
                print(f"  {form}")
        if cls.example:
            print(f"  e.g. {cls.example}")
        for option in cls.options:
            print(f"  {_option_line(option)}")
        print()
    print("Options every destination takes (in its query, ?secret=...&keyword=..., or as keyword arguments):")
    for option in COMMON_OPTIONS:
        print(f"  {_option_line(option)}")
    return 0


def _option_line(option: Option) -> str:
    return f"{option.name + '=':18} {option.help}"


def _demo_bots(fake: FakePlatforms) -> list[FakeBot]:
    """One bot per group-bot fake the registry knows, set up as its fake declares (`PlatformRules.demo`)."""
    return [fake.add_bot(rules.names[0], **rules.demo) for rules in PLATFORM_RULES]


if __name__ == "__main__":
    sys.exit(main())
