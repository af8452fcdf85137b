"""pyws: WebSocket for Flask and gevent, on a C protocol engine (wslay).

``import pyws`` does not import gevent: ``WebSocketHandler`` and
``WebSocketServer`` are loaded on first access, as gevent is optional.

gevent-websocket's top-level names are here too, so that
``from geventwebsocket import WebSocketServer, WebSocketApplication,
Resource, WebSocketError`` becomes ``from pyws import ...`` (and
``BaseProtocol``, gevent-websocket's ``protocols.base``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import connect
from .compression import PerMessageDeflate
from .exceptions import (
    ConnectionClosed,
    FrameTooLargeException,
    HandshakeError,
    ProtocolError,
    WebSocketError,
)
from .hub import Hub
from .websocket import WebSocket

if TYPE_CHECKING:
    from .handler import WebSocketHandler
    from .resource import BaseProtocol, Resource, WebSocketApplication
    from .server import WebSocketServer

from ._version import __version__

__all__ = [
    "WebSocket",
    "Hub",
    "PerMessageDeflate",
    "WebSocketHandler",
    "WebSocketServer",
    "Resource",
    "WebSocketApplication",
    "BaseProtocol",
    "connect",
    "get_version",
    "WebSocketError",
    "HandshakeError",
    "ProtocolError",
    "FrameTooLargeException",
    "ConnectionClosed",
]


#: Names imported on first access (PEP 562), by module: the gevent-based
#: classes, and the application layer with them.
_LAZY = {
    "WebSocketHandler": "handler",
    "WebSocketServer": "server",
    "Resource": "resource",
    "WebSocketApplication": "resource",
    "BaseProtocol": "resource",
}


def get_version() -> str:
    """The version of pyws (gevent-websocket's ``get_version()``)."""
    return __version__


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(f".{module_name}", __name__)
    except ModuleNotFoundError as exc:
        from ._extras import missing

        raise missing(exc, f"pyws.{name}") from None
    value = getattr(module, name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    # The public API and the public submodules (pyws.flask, pyws.options...
    # once imported), not the helpers this module imports for itself.
    import types

    names = set(__all__) | {"__version__"}
    names |= {name for name, value in globals().items()
              if isinstance(value, types.ModuleType) and not name.startswith("_")}
    names |= {name for name in globals() if name.startswith("__") and name.endswith("__")}
    return sorted(names)
