"""FastAPI on uvicorn: unhandled exceptions (uvicorn logs them on ``uvicorn.error``) and errors that an
exception handler logs reach the chat.

Run ``make example NAME=fastapi_app`` from the clone's root (or ``python fastapi_app.py`` in ``examples/``
with the venv active), then open http://127.0.0.1:8000/orders/42 and
http://127.0.0.1:8000/orders/7/pay (set ``CHATLOG_URL`` for a real bot; ``PORT`` to listen elsewhere).
"""

import asyncio
import contextlib
import copy
import logging
import os
from collections.abc import AsyncIterator

import _local
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from uvicorn.config import LOGGING_CONFIG

_local.use_fake_bot_unless_configured()

# uvicorn applies its own dictConfig at start: add the chat handler to that config, not before it.
LOG_CONFIG = copy.deepcopy(LOGGING_CONFIG)
LOG_CONFIG["handlers"]["chat"] = {
    "class": "chatlog.ChatHandler",
    "level": "ERROR",
    "url": os.environ["CHATLOG_URL"],
    "service": "orders-api",
}
LOG_CONFIG["loggers"]["uvicorn.error"]["handlers"] = ["chat"]
LOG_CONFIG["loggers"]["orders"] = {"handlers": ["default", "chat"], "level": "INFO", "propagate": False}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # On SIGTERM uvicorn stops, then re-raises the signal, which ends the process without running
    # atexit: deliver pending alerts now.
    await asyncio.to_thread(logging.shutdown)


log = logging.getLogger("orders")
app = FastAPI(lifespan=lifespan)


class PaymentDeclined(Exception):
    def __init__(self, order_id: int) -> None:
        super().__init__(f"payment declined for order {order_id}")
        self.order_id = order_id


@app.exception_handler(PaymentDeclined)
async def payment_declined(request: Request, exc: PaymentDeclined) -> JSONResponse:
    log.error("payment declined for order %s", exc.order_id, extra={"path": request.url.path})
    return JSONResponse({"detail": str(exc)}, status_code=402)


@app.get("/orders/{order_id}/pay")
async def pay(order_id: int) -> dict[str, str]:
    raise PaymentDeclined(order_id)


@app.get("/orders/{order_id}")
async def show_order(order_id: int) -> dict[str, int]:
    return {"order": order_id, "per_box": 12 // (order_id % 2)}  # even ids: unhandled ZeroDivisionError


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_config=LOG_CONFIG)
