"""Flask: ``app.logger`` errors and unhandled exceptions (Flask logs them on ``app.logger``) reach the chat.

Run ``make example NAME=flask_app`` from the clone's root (or ``python flask_app.py`` in ``examples/``
with the venv active), then open http://127.0.0.1:5000/orders/42
(set ``CHATLOG_URL`` to send to a real bot; ``PORT`` to listen elsewhere).
"""

import logging
import os

import _local
from flask import Flask

import chatlog

_local.use_fake_bot_unless_configured()

app = Flask(__name__)
app.logger.addHandler(
    chatlog.ChatHandler(os.environ["CHATLOG_URL"], level=logging.ERROR, service="shop-web")
)


@app.get("/orders/<int:order_id>")
def show_order(order_id: int) -> str:
    if order_id > 10:
        app.logger.error("order %s has no customer", order_id)
        raise LookupError(f"order {order_id} not found")  # Flask logs it: "Exception on /orders/42 [GET]"
    return f"order {order_id}"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
