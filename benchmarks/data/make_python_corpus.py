# ruff: noqa: E501  (each message stays on as few lines as possible, to read as the library prints it)
"""Writes ``python_corpus.csv``: messages as Python applications and libraries log them, with true groups.

Written for issue 13. Each event below is one error an on-call engineer would want as one line of an
alert; two events that differ only in a word (a different attribute, constraint, task, HTTP status, DNS
failure against a refused connection) are different events on purpose, so merging them counts as an
over-merge. Values vary the way they do in production: ids, hosts, ports, paths, durations, e-mails,
user names (also plain words: those a template extractor cannot tell from text, honestly labelled as
one event). The text follows what the libraries print (requests/urllib3, httpx, psycopg2 and
SQLAlchemy, Celery, Django, werkzeug, redis-py, smtplib, the builtin exceptions).

    python benchmarks/data/make_python_corpus.py    # rewrites benchmarks/data/python_corpus.csv

The output is the same on every run (seeded), in the Loghub ``*_structured.csv`` layout
(``LineId,Content,EventId,EventTemplate``) so `benchmarks/grouping.py` reads it like the others.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).with_name("python_corpus.csv")
R = random.Random(13)


def num(low: int = 1, high: int = 99_999) -> str:
    return str(R.randint(low, high))


def secs() -> str:
    return f"{R.uniform(0.01, 30):.{R.choice([2, 3])}f}"


def host() -> str:
    return R.choice(["api.payments.example.com", "10.0.3.17", "auth.internal", "192.168.1.40",
                     "search-7.prod.example.net", "172.16.0.5", "billing.example.org"])


def ip() -> str:
    return ".".join(str(R.randint(1, 254)) for _ in range(4))


def hexid(n: int = 12) -> str:
    return "".join(R.choice("0123456789abcdef") for _ in range(n))


def uid() -> str:
    return str(uuid.UUID(int=R.getrandbits(128), version=4))


def email() -> str:
    return f"{R.choice(['bob', 'ann.lee', 'j.smith+test', 'ops', 'wei.zhang'])}{R.choice(['', num(1, 99)])}@" \
           f"{R.choice(['example.com', 'mail.example.org', 'corp.example.net'])}"


def user() -> str:
    return R.choice(["alice", "bob", "carol", "dave", "erin", "frank", "user_1842", "svc-backup"])


def path_id() -> str:
    return R.choice([num(), uid(), hexid(24)])


EVENTS: dict[str, tuple[str, Callable[[], str]]] = {
    # --- last lines of tracebacks (logged as f"...: {exc}" or by loguru) --------------------------------
    "P01": ("AttributeError: 'NoneType' object has no attribute 'id'",
            lambda: "AttributeError: 'NoneType' object has no attribute 'id'"),
    "P02": ("AttributeError: 'NoneType' object has no attribute 'email'",
            lambda: "AttributeError: 'NoneType' object has no attribute 'email'"),
    "P03": ("KeyError: 'user_id'", lambda: "KeyError: 'user_id'"),
    "P04": ("TypeError: unsupported operand type(s) for +: 'int' and 'str'",
            lambda: "TypeError: unsupported operand type(s) for +: 'int' and 'str'"),
    "P05": ("ValueError: invalid literal for int() with base 10: <*>",
            lambda: f"ValueError: invalid literal for int() with base 10: "
                    f"'{R.choice(['12a', '3.5', '', 'N/A', '7 ', 'abc', num() + 'x'])}'"),
    "P06": ("json.decoder.JSONDecodeError: Expecting value: line 1 column <*> (char <*>)",
            lambda: (lambda n: f"json.decoder.JSONDecodeError: Expecting value: line 1 column {n + 1} "
                               f"(char {n})")(R.randint(0, 400))),
    "P07": ("FileNotFoundError: [Errno 2] No such file or directory: <*>",
            lambda: f"FileNotFoundError: [Errno 2] No such file or directory: "
                    f"'/var/lib/app/uploads/{uid()}.{R.choice(['png', 'pdf', 'csv'])}'"),
    "P08": ("PermissionError: [Errno 13] Permission denied: <*>",
            lambda: f"PermissionError: [Errno 13] Permission denied: '/srv/app/cache/{hexid(8)}.tmp'"),
    "P09": ("ModuleNotFoundError: No module named 'redis'", lambda: "ModuleNotFoundError: No module named 'redis'"),
    "P10": ("ModuleNotFoundError: No module named 'yaml'", lambda: "ModuleNotFoundError: No module named 'yaml'"),
    "P11": ("RecursionError: maximum recursion depth exceeded while calling a Python object",
            lambda: "RecursionError: maximum recursion depth exceeded while calling a Python object"),
    "P12": ("ZeroDivisionError: division by zero", lambda: "ZeroDivisionError: division by zero"),
    # --- requests / urllib3 / httpx -------------------------------------------------------------------------
    "P20": ("requests ConnectionError: connection refused",
            lambda: f"requests.exceptions.ConnectionError: HTTPSConnectionPool(host='{host()}', "
                    f"port={R.choice([443, 8443, 9200])}): Max retries exceeded with url: /v1/charges/{path_id()} "
                    f"(Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f{hexid(10)}>: "
                    f"Failed to establish a new connection: [Errno 111] Connection refused'))"),
    "P21": ("requests ConnectionError: name not known (DNS)",
            lambda: f"requests.exceptions.ConnectionError: HTTPSConnectionPool(host='{host()}', "
                    f"port={R.choice([443, 8443])}): Max retries exceeded with url: /v1/charges/{path_id()} "
                    f"(Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f{hexid(10)}>: "
                    f"Failed to establish a new connection: [Errno -2] Name or service not known'))"),
    "P22": ("requests ReadTimeout",
            lambda: f"requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='{host()}', port=443): "
                    f"Read timed out. (read timeout={R.choice([5, 10, 30, 2.5])})"),
    "P23": ("httpx.ConnectError: [Errno 111] Connection refused",
            lambda: "httpx.ConnectError: [Errno 111] Connection refused"),
    "P24": ("httpx 503 from upstream",
            lambda: f"httpx.HTTPStatusError: Server error '503 Service Unavailable' for url "
                    f"'https://{host()}/v2/orders/{path_id()}'"),
    "P25": ("httpx 502 from upstream",
            lambda: f"httpx.HTTPStatusError: Server error '502 Bad Gateway' for url "
                    f"'https://{host()}/v2/orders/{path_id()}'"),
    "P26": ("urllib3 retrying after a refused connection",
            lambda: f"Retrying (Retry(total={R.randint(0, 4)}, connect=None, read=None, redirect=None, "
                    f"status=None)) after connection broken by 'NewConnectionError('<urllib3.connection."
                    f"HTTPConnection object at 0x7f{hexid(10)}>: Failed to establish a new connection: "
                    f"[Errno 111] Connection refused')': /api/v1/items?page={num(1, 50)}"),
    "P27": ("redis-py connection refused",
            lambda: f"Error 111 connecting to {R.choice(['10.0.0.7', 'cache.prod.internal', '172.16.4.2'])}:"
                    f"{R.choice([6379, 6380])}. Connection refused."),
    # --- web request lines -------------------------------------------------------------------------------------
    "P30": ("Django: Internal Server Error: /api/orders/<*>/",
            lambda: f"Internal Server Error: /api/orders/{path_id()}/"),
    "P31": ("Django: Internal Server Error: /api/users/<*>/avatar",
            lambda: f"Internal Server Error: /api/users/{path_id()}/avatar"),
    "P32": ("werkzeug: POST /checkout 500",
            lambda: f'{ip()} - - [{R.randint(1, 28):02d}/Nov/2026 {R.randint(0, 23):02d}:{R.randint(0, 59):02d}:'
                    f'{R.randint(0, 59):02d}] "POST /checkout/{num()} HTTP/1.1" 500 -'),
    "P33": ("werkzeug: GET /health 503",
            lambda: f'{ip()} - - [{R.randint(1, 28):02d}/Nov/2026 {R.randint(0, 23):02d}:{R.randint(0, 59):02d}:'
                    f'{R.randint(0, 59):02d}] "GET /health HTTP/1.1" 503 -'),
    "P34": ("slow request",
            lambda: f"slow request: GET /api/search?q={R.choice(['shoes', 'red+dress', 'a', 'tv'])} took "
                    f"{secs()}s (threshold 1.00s)"),
    # --- SQLAlchemy / psycopg ----------------------------------------------------------------------------------
    "P40": ("unique violation on users_email_key",
            lambda: f'(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint '
                    f'"users_email_key"\nDETAIL:  Key (email)=({email()}) already exists.'),
    "P41": ("unique violation on orders_pkey",
            lambda: f'(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint '
                    f'"orders_pkey"\nDETAIL:  Key (id)=({num()}) already exists.'),
    "P42": ("postgres connection refused",
            lambda: f'(psycopg2.OperationalError) connection to server at "{R.choice(["db.prod.internal", "10.0.2.9"])}" '
                    f'({R.choice(["10.0.2.9", "10.0.2.10"])}), port 5432 failed: Connection refused\n\tIs the server '
                    f'running on that host and accepting TCP/IP connections?'),
    "P43": ("foreign key violation on order_items",
            lambda: f'(sqlalchemy.exc.IntegrityError) (psycopg2.errors.ForeignKeyViolation) insert or update on '
                    f'table "order_items" violates foreign key constraint "order_items_order_id_fkey"\n'
                    f'[SQL: INSERT INTO order_items (order_id, sku, qty) VALUES (%(order_id)s, %(sku)s, %(qty)s)]\n'
                    f"[parameters: {{'order_id': {num()}, 'sku': 'SKU-{num(100, 9999)}', 'qty': {num(1, 9)}}}]"),
    "P44": ("undefined column",
            lambda: f'(psycopg2.errors.UndefinedColumn) column "email_verified" does not exist\n'
                    f"LINE 1: SELECT users.id, users.email_verified FROM users WHERE users.id = {num()}"),
    "P45": ("QueuePool exhausted",
            lambda: f"(sqlalchemy.exc.TimeoutError) QueuePool limit of size 5 overflow 10 reached, connection "
                    f"timed out, timeout {R.choice(['30.00', '10.00'])} (Background on this error at: "
                    f"https://sqlalche.me/e/20/3o7r)"),
    "P46": ("deadlock detected",
            lambda: f"(psycopg2.errors.DeadlockDetected) deadlock detected\nDETAIL:  Process {num()} waits for "
                    f"ShareLock on transaction {num(100000, 999999)}; blocked by process {num()}."),
    # --- Celery -----------------------------------------------------------------------------------------------
    "P50": ("send_email task failed",
            lambda: f"Task myapp.tasks.send_email[{uid()}] raised unexpected: "
                    f"SMTPServerDisconnected('Connection unexpectedly closed')"),
    "P51": ("charge_card task failed",
            lambda: f"Task myapp.tasks.charge_card[{uid()}] raised unexpected: "
                    f"CardError('Your card was declined.')"),
    "P52": ("send_email task retried",
            lambda: f"Task myapp.tasks.send_email[{uid()}] retry: Retry in {R.choice([10, 60, 180])}s: "
                    f"SMTPServerDisconnected('Connection unexpectedly closed')"),
    "P53": ("worker lost",
            lambda: f"Task handler raised error: WorkerLostError('Worker exited prematurely: signal 9 (SIGKILL) "
                    f"Job: {num(1, 5000)}.')"),
    "P54": ("hard time limit",
            lambda: f"Hard time limit ({R.choice([300, 600])}s) exceeded for "
                    f"myapp.tasks.build_report[{uid()}]"),
    # --- files, durations, e-mail, key=value -------------------------------------------------------------------
    "P60": ("report write failed, disk full",
            lambda: f"could not write report to /var/reports/2026-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}/"
                    f"{R.choice(['sales', 'stock', 'q3_summary'])}.pdf: [Errno 28] No space left on device"),
    "P61": ("import loaded rows",
            lambda: f"loaded {num()} rows from /data/imports/batch_{num(1, 900)}.csv in {secs()}s"),
    "P62": ("payment provider slow",
            lambda: f"payment provider call took {num(800, 9000)}ms, over the {R.choice([500, 750])}ms budget"),
    "P63": ("cache warmup finished",
            lambda: f"cache warm-up finished in {secs()} seconds ({num(10, 5000)} keys)"),
    "P70": ("welcome e-mail rejected",
            lambda: f"failed to send welcome email to {email()}: (550, b'5.1.1 <{email()}>: Recipient address "
                    f"rejected: User unknown')"),
    "P71": ("password reset requested", lambda: f"password reset requested for {email()} from {ip()}"),
    "P80": ("payment declined: card_declined",
            lambda: f"payment failed order_id={num()} amount={R.randint(1, 900)}.{R.randint(0, 99):02d} "
                    f"currency={R.choice(['EUR', 'USD'])} reason=card_declined"),
    "P81": ("payment declined: insufficient_funds",
            lambda: f"payment failed order_id={num()} amount={R.randint(1, 900)}.{R.randint(0, 99):02d} "
                    f"currency={R.choice(['EUR', 'USD'])} reason=insufficient_funds"),
    "P82": ("rate limited client",
            lambda: f"rate limited client_id={uid()} retry_after={R.randint(1, 120)}"),
    "P83": ("job finished failed",
            lambda: f"job finished status=failed attempts={R.randint(1, 5)} duration_ms={num()}"),
    # --- f-string messages with a name in them -------------------------------------------------------------
    "P90": ("order not found", lambda: f"Order {path_id()} not found"),
    "P91": ("user not found", lambda: f"User {user()} not found"),
    "P92": ("login failed for user", lambda: f"login failed for user {user()} from {ip()}: bad password"),
    "P93": ("worker heartbeat missed",
            lambda: f"worker celery@{R.choice(['worker-1', 'worker-2', 'ip-10-0-1-7'])} missed heartbeat "
                    f"for {R.randint(10, 300)}s"),
}


def main() -> None:
    rows = []
    for event, (label, make) in EVENTS.items():
        for _ in range(R.randint(4, 9)):
            rows.append((make(), event, label))
    R.shuffle(rows)
    with OUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["LineId", "Content", "EventId", "EventTemplate"])
        for line_id, (content, event, label) in enumerate(rows, 1):
            writer.writerow([line_id, content, event, label])
    print(f"{len(rows)} lines, {len(EVENTS)} events -> {OUT}")


if __name__ == "__main__":
    main()
