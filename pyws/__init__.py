"""pyws: WebSocket for Flask and gevent, on a C protocol engine (wslay).

``import pyws`` does not import gevent: ``WebSocketHandler`` and
``WebSocketServer`` are loaded on first access, as gevent is optional.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import connect
from .compression import PerMessageDeflate
from .exceptions import (ConnectionClosed, FrameTooLargeException,
                         HandshakeError, ProtocolError, WebSocketError)
from .hub import Hub
from .websocket import WebSocket

if TYPE_CHECKING:
    from .handler import WebSocketHandler
    from .server import WebSocketServer

__version__ = "0.1.0"

__all__ = [
    "WebSocket",
    "Hub",
    "PerMessageDeflate",
    "WebSocketHandler",
    "WebSocketServer",
    "connect",
    "WebSocketError",
    "HandshakeError",
    "ProtocolError",
    "FrameTooLargeException",
    "ConnectionClosed",
]


def __getattr__(name: str) -> Any:
    # PEP 562: the gevent-based classes are imported on first use only.
    if name == "WebSocketHandler":
        from .handler import WebSocketHandler
        return WebSocketHandler
    if name == "WebSocketServer":
        from .server import WebSocketServer
        return WebSocketServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
