"""chatlog: log records to chat alerts people read — grouped, counted, signed, rate-limited.

Attach `ChatHandler` to a logger (or name ``"chatlog.ChatHandler"`` in ``dictConfig``)::

    logging.getLogger().addHandler(ChatHandler("dingtalk://TOKEN?secret=SEC...", level=logging.ERROR))
"""

from chatlog.dispatcher import ChatStats
from chatlog.handler import ChatHandler

__all__ = ["ChatHandler", "ChatStats", "__version__"]
__version__ = "0.1.0"
