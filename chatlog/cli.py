"""The ``chatlog`` command: ``send`` one message, run the ``demo``, ``serve`` the local fake platforms."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Sequence

import httpx

from chatlog._report import write_stderr
from chatlog.chatops import listen
from chatlog.destinations import resolve
from chatlog.handler import ChatHandler
from chatlog.platforms._base import redact
from chatlog.testing import PLATFORM_RULES, FakeBot, FakePlatforms


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
    parser = argparse.ArgumentParser(prog="chatlog", description=__doc__)
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands")

    send = commands.add_parser("send", help="send one message and print the platform's answer")
    send.add_argument("url", help='destination, e.g. "dingtalk://TOKEN?secret=SEC..."')
    send.add_argument("text", help="the message text")
    send.add_argument("--secret", help="signing secret (wins over secret= in the URL)")
    send.add_argument("--keyword", help="keyword the bot requires (wins over keyword= in the URL)")
    send.add_argument("--platform", help="platform name when the URL does not tell")
    send.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    send.set_defaults(command="send", run=_send)

    demo = commands.add_parser("demo", help="local fake platforms + a simulated incident, printed live")
    demo.add_argument("--seconds", type=float, default=10.0, help="length of the simulated incident")
    demo.add_argument("--records", type=int, default=3000, help="records logged during the incident")
    demo.set_defaults(command="demo", run=_demo)

    serve = commands.add_parser("serve", help="run the local fake platforms and web inbox until Ctrl-C")
    serve.add_argument("--port", type=int, default=8750, help="port on 127.0.0.1 (0: any free port)")
    serve.set_defaults(command="serve", run=_serve)
    listen.add_parser(commands)
    return parser


def _send(args: argparse.Namespace) -> int:
    try:
        resolved = resolve(args.url, secret=args.secret, keyword=args.keyword, platform=args.platform)
    except (ValueError, TypeError) as exc:
        write_stderr(f"chatlog send: {exc}")
        return 2
    destination = resolved.destination
    with httpx.Client(timeout=args.timeout, trust_env=False) as client:
        outcome = destination.send(client, destination.render_text(args.text))
    answer = redact(outcome.answer, destination.secrets)
    if outcome.ok:
        print(f"sent to {destination.masked()}: {answer}")
        return 0
    write_stderr(f"chatlog send: {destination.masked()} did not take the message: {outcome.reason}")
    if answer:
        write_stderr(f"the platform answered: {answer}")
    return 1


def _serve(args: argparse.Namespace) -> int:
    with FakePlatforms(port=args.port) as fake:
        bots = _demo_bots(fake)
        print(f"fake platforms and inbox at {fake.base_url}/  (Ctrl-C stops)")
        for bot in bots:
            print(f"  {bot.platform:9} {bot.url}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped")
    return 0


def _demo(args: argparse.Namespace) -> int:
    with FakePlatforms() as fake:
        bots = _demo_bots(fake)
        print(f"chatlog demo: fake platforms at {fake.base_url}/ — a simulated incident, "
              f"{args.records} records over {args.seconds:g} s\n")
        handlers = [
            ChatHandler(bot.url, level=logging.WARNING, service="checkout", environment="demo",
                        group_wait=1.0, group_interval=3.0, mentions={"CRITICAL": ["all"]})
            for bot in bots
        ]
        logger = logging.getLogger("demo")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        for handler in handlers:
            logger.addHandler(handler)
        printer = _Printer(fake)
        printer.start()
        try:
            _simulate_incident(logger, args.seconds, args.records)
            for handler in handlers:
                logger.removeHandler(handler)
                handler.close()
        finally:
            printer.stop()
        print("\nstats:")
        for bot, handler in zip(bots, handlers, strict=True):
            print(f"  {bot.platform:9} {handler.stats()}")
    return 0


def _demo_bots(fake: FakePlatforms) -> list[FakeBot]:
    """One bot per group-bot fake the registry knows, set up as its fake declares (`PlatformRules.demo`)."""
    return [fake.add_bot(rules.names[0], **rules.demo) for rules in PLATFORM_RULES]


class _Printer:
    """Prints each message as the fake platforms accept it."""

    def __init__(self, fake: FakePlatforms) -> None:
        self._fake = fake
        self._stop = threading.Event()
        self._seen = 0
        self._thread = threading.Thread(target=self._run, name="chatlog-demo-printer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._print_new()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._print_new()

    def _print_new(self) -> None:
        received = self._fake.all_received()
        bots = {(bot.platform, bot.token): bot for bot in self._fake.bots}
        for item in received[self._seen:]:
            stamp = time.strftime("%H:%M:%S", time.localtime(item.at))
            verdict = "accepted" if item.accepted else f"REFUSED {item.answer}"
            print(f"── {stamp} {item.platform} · {verdict} " + "─" * 40)
            bot = bots.get((item.platform, item.token))
            if bot is not None and item.payload is not None:
                print(bot.text_of(item.payload))
            print()
        self._seen = len(received)


def _simulate_incident(logger: logging.Logger, seconds: float, records: int) -> None:
    """A database outage: a burst of alike errors with tracebacks, retries, one critical."""
    start = time.monotonic()
    for i in range(records):
        target = start + seconds * i / records
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        _log_one(logger, i)
    logger.critical("payment provider unreachable for %d s, orders are failing", int(seconds))


def _log_one(logger: logging.Logger, i: int) -> None:
    kind = i % 10
    if kind < 5:
        try:
            raise ConnectionError(f"could not connect to db-primary:5432 (attempt {i})")
        except ConnectionError:
            logger.exception("order %s failed: database unavailable", 10_000 + i)
    elif kind < 8:
        logger.warning("retrying payment %s in %d s", f"pay_{i:06d}", 2)
    elif kind == 8:
        logger.error(f"cache miss storm on key user:{i}:profile")  # pre-formatted: still one group
    else:
        try:
            {"user": i}["order"]
        except KeyError:
            logger.exception("could not render receipt for user %d", i)


if __name__ == "__main__":
    sys.exit(main())
