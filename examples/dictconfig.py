"""``logging.config.dictConfig`` from YAML (``logging.yaml``); stdlib ``extra={...}`` fields are shown.

Run ``make example NAME=dictconfig`` from the clone's root (or ``python dictconfig.py`` in ``examples/``
with the venv active); it needs PyYAML. Set ``CHATLOG_URL`` for a real bot.
"""

import logging
import logging.config
import os
from pathlib import Path

import _local
import yaml

_local.use_fake_bot_unless_configured()

config_text = os.path.expandvars(Path(__file__).with_name("logging.yaml").read_text())
logging.config.dictConfig(yaml.safe_load(config_text))

log = logging.getLogger("billing.invoices")
for invoice in ("INV-1001", "INV-1002", "INV-1003"):
    log.error("invoice %s could not be rendered", invoice, extra={"customer": "acme", "template": "v2"})
log.warning("invoice queue is slow")  # below the chat handler's level: console only
