"""loguru: errors, their tracebacks and ``bind()``/``contextualize()`` fields reach the chat.

Run ``make example NAME=loguru_app`` from the clone's root (or ``python loguru_app.py`` in ``examples/``
with the venv active); set ``CHATLOG_URL`` to send to a real bot.
loguru removes its sinks at exit, which delivers what is pending; ``await logger.complete()``
waits for delivery in async code.
"""

import os

import _local
from loguru import logger

import chatlog.loguru

_local.use_fake_bot_unless_configured()

logger.add(chatlog.loguru.sink(os.environ["CHATLOG_URL"], service="checkout"), level="ERROR")


def charge(order_id: int, amount: float) -> None:
    if amount > 100:
        raise ValueError(f"card declined: {amount:.2f} is over the limit")
    logger.info("charged order {}", order_id)


for order_id, amount in [(1, 20.0), (2, 250.0), (3, 990.0)]:
    with logger.contextualize(order=order_id):
        try:
            charge(order_id, amount)
        except ValueError:
            logger.bind(customer="acme").exception("charge failed for order {}", order_id)
