"""A gevent WSGI server whose handler upgrades WebSocket requests."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from gevent.pywsgi import WSGIServer  # type: ignore[import-untyped, unused-ignore]

from . import _core
from .handler import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_REQUEST_SIZE, WebSocketHandler
from .websocket import DEFAULT_CLOSE_TIMEOUT, DEFAULT_PING_TIMEOUT, check_non_negative

__all__ = ["WebSocketServer"]


class WebSocketServer(WSGIServer):  # type: ignore[misc, unused-ignore]
    """``gevent.pywsgi.WSGIServer`` with :class:`WebSocketHandler` preset.

    It holds the WebSocket options the handler reads:

    - ``max_message_size``: largest message accepted, in bytes (0: no
      limit); a larger one fails the connection with 1009.
    - ``subprotocols``: supported subprotocols, in order of preference.
    - ``handshake_timeout``: seconds a client has to send its request head
      (408 and the connection dropped after that; None: no limit).
    - ``max_request_size``: largest request head (request line and
      headers) in bytes; a larger one gets 431 (None: pywsgi's own limits).
    - ``close_timeout``: seconds to wait for the client's close frame.
    - ``ping_interval``: send a keepalive ping that often (None: never);
      ``ping_timeout``: drop the connection (1011) when its pong is that late.
    - ``idle_timeout``: close with 1001 when nothing arrived for that long.

    Other arguments are those of ``WSGIServer``.
    """

    handler_class = WebSocketHandler

    def __init__(self, listener: Any, application: Any = None, *args: Any,
                 max_message_size: int = _core.DEFAULT_MAX_MESSAGE_SIZE,
                 subprotocols: Optional[Sequence[str]] = None,
                 handshake_timeout: Optional[float] = DEFAULT_HANDSHAKE_TIMEOUT,
                 max_request_size: Optional[int] = DEFAULT_MAX_REQUEST_SIZE,
                 close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
                 ping_interval: Optional[float] = None,
                 ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
                 idle_timeout: Optional[float] = None,
                 **kwargs: Any) -> None:
        if max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0 (0: no limit), "
                             f"not {max_message_size}")
        check_non_negative(handshake_timeout=handshake_timeout,
                           max_request_size=max_request_size, close_timeout=close_timeout,
                           ping_interval=ping_interval, ping_timeout=ping_timeout,
                           idle_timeout=idle_timeout)
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols is a sequence of names, not a str")
        super().__init__(listener, application, *args, **kwargs)
        self.max_message_size = max_message_size
        self.subprotocols = list(subprotocols) if subprotocols else None
        self.handshake_timeout = handshake_timeout
        self.max_request_size = max_request_size
        self.close_timeout = close_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.idle_timeout = idle_timeout
