"""A gevent WSGI server whose handler upgrades WebSocket requests."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from gevent.pywsgi import WSGIServer  # type: ignore[import-untyped, unused-ignore]

from . import _core
from .handler import WebSocketHandler

__all__ = ["WebSocketServer"]


class WebSocketServer(WSGIServer):  # type: ignore[misc, unused-ignore]
    """``gevent.pywsgi.WSGIServer`` with :class:`WebSocketHandler` preset.

    It holds the WebSocket options the handler reads:

    - ``max_message_size``: largest message accepted, in bytes (0: no
      limit); a larger one fails the connection with 1009.
    - ``subprotocols``: supported subprotocols, in order of preference.
    - ``close_timeout``: seconds to wait for the client's close frame.

    Other arguments are those of ``WSGIServer``.
    """

    handler_class = WebSocketHandler

    def __init__(self, listener: Any, application: Any = None, *args: Any,
                 max_message_size: int = _core.DEFAULT_MAX_MESSAGE_SIZE,
                 subprotocols: Optional[Sequence[str]] = None,
                 close_timeout: Optional[float] = 5.0,
                 **kwargs: Any) -> None:
        if max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0 (0: no limit), "
                             f"not {max_message_size}")
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols is a sequence of names, not a str")
        super().__init__(listener, application, *args, **kwargs)
        self.max_message_size = max_message_size
        self.subprotocols = list(subprotocols) if subprotocols else None
        self.close_timeout = close_timeout
