"""The WebSocket a ``pyws.flask.Sock`` route receives: flask-sock's flavour.

flask-sock hands its views a ``simple_websocket.Server``; programs written
for it call ``receive(timeout=None)``, ``send(data)``,
``close(reason=None, message=None)``, read ``connected``, and catch
``flask_sock.ConnectionClosed`` (whose ``reason`` is the close code and
``message`` the text).  ``SockWebSocket`` keeps that contract over the one
session of ``pyws.websocket.WebSocket``: it only renames and re-raises, so
that every pyws attribute, ``pyws.Hub`` and the close-code rule still apply.
"""
from __future__ import annotations

import socket
import time
from types import TracebackType
from typing import Optional, Type, Union

from .exceptions import ConnectionClosed as _PywsConnectionClosed
from .websocket import Message, WebSocket

__all__ = ["ConnectionClosed", "SockWebSocket"]

_NO_STATUS = 1005


class ConnectionClosed(_PywsConnectionClosed):
    """The connection is closed (``flask_sock.ConnectionClosed``).

    simple-websocket's fields: ``reason``, the close code (an int; 1005 when
    the peer gave none), and ``message``, the text that came with it.  As a
    ``pyws.ConnectionClosed`` it also has ``code`` (the same number); its
    ``reason`` differs from the base class's (the text there), because a
    flask-sock program reads the code under that name.
    """

    def __init__(self, reason: int = _NO_STATUS, message: Optional[str] = None) -> None:
        if isinstance(reason, bool) or not isinstance(reason, int):
            raise TypeError(f"reason is a close code (int), not {reason!r}")
        super().__init__(int(reason), message or "")
        # After the base __init__, which sets reason to the text.
        self.reason = int(reason)  # type: ignore[assignment]
        self._text = message

    @property
    def message(self) -> Optional[str]:  # type: ignore[override]
        """The close reason's text (None or "" when the peer sent none)."""
        return self._text


def _flavoured(exc: _PywsConnectionClosed) -> ConnectionClosed:
    if isinstance(exc, ConnectionClosed):
        return exc
    return ConnectionClosed(exc.code, exc.reason)


class SockWebSocket(WebSocket):
    """A ``pyws.WebSocket`` with simple-websocket's Server API on top.

    ``receive(timeout)`` returns None when the timeout passes and raises
    ``ConnectionClosed`` once the connection is over and every message that
    arrived before the end was returned (on every call after that too, so a
    loop that never checks for None ends).  A protocol failure by the peer
    (1002, 1007, 1009 for a message over ``max_message_size``) ends the
    connection the same way, its code in ``reason``.  Iterating, ``ping()``
    and the other ``pyws.WebSocket`` methods work as documented there.
    """

    # No new state: the upgraded-already path may re-class a WebSocket.
    __slots__ = ()

    @property
    def connected(self) -> bool:
        """True until a close frame was sent or received, or the socket died."""
        return not self.closed

    @property
    def close_message(self) -> Optional[str]:
        """simple-websocket's ``close_message``: the peer's close text, None
        while open.  (Its ``close_reason`` is the code: read ``close_code``;
        pyws's ``close_reason`` is the text.)"""
        return None if self.close_code is None else self.close_reason

    def receive(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message (str or bytes); None if none came within
        ``timeout`` seconds (0: do not wait; None: wait as long as it takes).
        Raises ``ConnectionClosed`` once the connection is over."""
        messages = self._messages
        if messages:
            return messages.popleft()
        if timeout is None:
            deadline = None
        elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
        else:
            deadline = time.monotonic() + max(timeout, 0.0)
        try:
            message = self._receive(deadline)
        except socket.timeout:
            return None
        if message is None:
            self._end_told = True
            raise self._closed_error()
        return message

    def send(self, data: Union[str, bytes, bytearray, memoryview],
             binary: Optional[bool] = None) -> None:
        """Send ``data``: bytes-like as a binary message, str as text.
        Raises ``ConnectionClosed`` once the connection is closed."""
        try:
            super().send(data, binary)
        except _PywsConnectionClosed as exc:
            raise _flavoured(exc) from None

    def close(self, reason: Optional[int] = None,
              message: Union[str, bytes, None] = None) -> None:
        """Close with code ``reason`` (1000 when None) and the text
        ``message``, waiting up to ``close_timeout`` for the peer's answer.
        Raises ``ConnectionClosed`` if the connection is closed already, as
        simple-websocket does."""
        if self.closed:
            raise self._closed_error()
        super().close(1000 if reason is None else reason, message or "")

    def ping(self, data: Union[str, bytes] = b"") -> None:
        try:
            super().ping(data)
        except _PywsConnectionClosed as exc:
            raise _flavoured(exc) from None

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if not self.closed:  # leaving a with block never raises for the close
            super().close()

    def _closed_error(self) -> ConnectionClosed:
        # Every ConnectionClosed this class raises carries flask-sock's fields.
        code = self.close_code
        return ConnectionClosed(code or 1006, self.close_reason)
