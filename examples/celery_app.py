"""Celery: task failures reach the chat, one group per failing task with its count.

``make example NAME=celery_app`` from the clone's root (or ``python celery_app.py`` in ``examples/``
with the venv active) runs a worker in this process on Celery's in-memory
broker and sends it a few failing tasks (set ``CHATLOG_URL`` to send to a real bot). With a real
broker: ``celery -A celery_app worker``.
"""

import logging
import os

import _local
from celery import Celery, signals

import chatlog

_local.use_fake_bot_unless_configured()

app = Celery(
    "celery_app",
    broker=os.environ.get("CELERY_BROKER_URL", "memory://"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "cache+memory://"),
)

# Celery replaces the root logger's handlers when the worker starts: add the chat handler after that.
# Created here, before the worker forks its pool, so each pool process inherits it (chatlog restarts
# its thread in the child).
chat = chatlog.ChatHandler(os.environ["CHATLOG_URL"], level=logging.ERROR, service="billing-worker")


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def add_chat_handler(logger: logging.Logger, **kwargs: object) -> None:
    logger.addHandler(chat)


@app.task
def charge(order_id: int) -> None:
    raise ValueError(f"card declined for order {order_id}")


@app.task
def ship(order_id: int) -> None:
    raise TimeoutError(f"carrier API timed out for order {order_id}")


if __name__ == "__main__":
    from celery.contrib.testing.worker import start_worker

    with start_worker(app, perform_ping_check=False):
        results = [charge.delay(order) for order in (1, 2, 3)] + [ship.delay(4)]
        for result in results:
            result.get(timeout=10, propagate=False)
