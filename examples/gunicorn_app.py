"""The WSGI app that ``gunicorn.conf.py`` serves: each request to /orders/<id> logs an error."""

import logging
import os
from collections.abc import Callable, Iterable

log = logging.getLogger("orders")


def app(environ: dict[str, str], start_response: Callable[..., object]) -> Iterable[bytes]:
    order_id = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
    log.error("payment provider rejected order %s", order_id)
    start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
    return [f"worker {os.getpid()}: payment provider rejected order {order_id}\n".encode()]
