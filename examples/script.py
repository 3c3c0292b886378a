"""A cron job: its errors reach the chat although the script exits right after logging them.

Run ``make example NAME=script`` from the clone's root (or ``python script.py`` in ``examples/``
with the venv active); set ``CHATLOG_URL`` to send to a real bot.
``logging.shutdown()`` at interpreter exit delivers what is pending, within ``close_timeout``.
"""

import logging
import os

import _local

import chatlog

_local.use_fake_bot_unless_configured()

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines show bot URLs, tokens included
logging.getLogger().addHandler(
    chatlog.ChatHandler(os.environ["CHATLOG_URL"], level=logging.ERROR, service="nightly-export")
)
log = logging.getLogger("export")


def export(customer_id: int) -> None:
    if customer_id % 2:
        raise ConnectionError("warehouse API timed out")


for customer_id in range(1, 6):
    try:
        export(customer_id)
    except ConnectionError:
        log.exception("export failed for customer %s", customer_id)
log.info("export finished")
