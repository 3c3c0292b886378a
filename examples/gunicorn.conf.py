"""gunicorn: the master configures logging, then forks its workers; each worker's chat handler works.

Run from ``examples/``: ``../.venv/bin/gunicorn -c gunicorn.conf.py`` (``gunicorn -c gunicorn.conf.py``
with the venv active), then open http://127.0.0.1:8000/orders/42
(set ``CHATLOG_URL`` to send to a real bot). chatlog restarts its thread in every forked worker;
a worker that exits (graceful stop, ``max_requests``) delivers what it still holds.
"""

import os

import _local

_local.use_fake_bot_unless_configured()

wsgi_app = "gunicorn_app:app"
bind = "127.0.0.1:8000"
workers = 2

# gunicorn merges this into its own logging defaults ("handlers" and "loggers" replace theirs).
logconfig_dict = {
    "root": {"level": "INFO", "handlers": ["console", "chat"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console", "chat"], "propagate": False},
        "httpx": {"level": "WARNING"},  # its INFO lines show bot URLs, tokens included
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic"},
        "chat": {
            "class": "chatlog.ChatHandler",
            "level": "ERROR",
            "url": os.environ["CHATLOG_URL"],
            "service": "orders",
        },
    },
}
