"""The one exception tree of pyws.

``WebSocketError`` derives from ``OSError`` as gevent-websocket's derives from
``socket.error``, so code that catches socket errors around ``receive()`` and
``send()`` keeps working.  Each class passes ``OSError`` a single message (two
arguments would be read as ``errno, strerror``).
"""
from __future__ import annotations

from typing import Sequence, Tuple

__all__ = [
    "WebSocketError",
    "HandshakeError",
    "ProtocolError",
    "FrameTooLargeException",
    "ConnectionClosed",
]


class WebSocketError(OSError):
    """Base class of every pyws error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class HandshakeError(WebSocketError):
    """The opening handshake failed.

    On a server, ``status`` and ``headers`` are the HTTP answer the request
    deserves (400, 405, 426, ...); on a client, ``status`` is the status the
    server answered with (0 if the answer was not HTTP), ``status_line`` its
    status line and ``body`` the start of its body (where a server that
    refuses says why; both are in the message too).
    """

    def __init__(self, message: str, status: int = 400,
                 headers: Sequence[Tuple[str, str]] = (), *,
                 status_line: str = "", body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)
        self.status_line = status_line
        self.body = body


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455; the connection was failed with ``code``."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class FrameTooLargeException(ProtocolError):
    """A message exceeded ``max_message_size`` (close code 1009)."""

    def __init__(self, message: str, code: int = 1009) -> None:
        super().__init__(message, code)


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` tell how."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        text = f"connection closed ({code})"
        if reason:
            text += f": {reason}"
        super().__init__(text)
        self.code = code
        self.reason = reason
