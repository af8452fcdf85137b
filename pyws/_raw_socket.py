"""The upgrade on the HTTP server's own socket, for servers that are not
gevent's: Werkzeug's development server and gunicorn's sync, gthread and
gevent workers expose the connection's socket in the environ; pyws writes
the ``101`` there and runs the WebSocket in the request's thread."""
from __future__ import annotations

import socket
from typing import Any, Mapping, Optional, Sequence, Type

from ._handshake import (Environ, HandshakePolicy, Refusal, environ_headers, negotiate,
                         new_websocket, switching_protocols)
from .options import DEFAULTS
from .websocket import WebSocket, drain_buffered

__all__ = ["raw_socket", "accept_raw"]

def raw_socket(environ: Environ) -> Optional[socket.socket]:
    """The connection's socket, where the server exposes it: Werkzeug's
    development server (``werkzeug.socket``) and gunicorn's sync, gthread
    and gevent workers (``gunicorn.socket``)."""
    sock = environ.get("werkzeug.socket")
    if sock is None:
        sock = environ.get("gunicorn.socket")
    return sock if isinstance(sock, socket.socket) else None


def _buffered_input(environ: Environ, sock: socket.socket) -> bytes:
    """Bytes the server read past the request head (frames a client sent
    right behind its handshake), taken out of its input buffer."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if hasattr(stream, "peek") and hasattr(stream, "read1"):
        return drain_buffered(stream, sock)  # Werkzeug: the socket's BufferedReader
    # gunicorn: Body -> reader -> unreader, whose buffer holds the read-ahead.
    unreader = getattr(getattr(stream, "reader", None), "unreader", None)
    take = getattr(unreader, "take_buffered", None)
    if callable(take):
        data = take()
        return bytes(data) if isinstance(data, (bytes, bytearray)) else b""
    buf: Any = getattr(unreader, "buf", None)
    getvalue = getattr(buf, "getvalue", None)
    if callable(getvalue):
        data = getvalue()
        if isinstance(data, bytes) and data:
            buf.seek(0)
            buf.truncate()
            return data
    return b""


def accept_raw(environ: Environ, policies: Sequence[HandshakePolicy],
               overrides: Mapping[str, Any],
               websocket_class: Type[WebSocket] = WebSocket) -> WebSocket:
    """Upgrade on the server's raw socket: validate, write the ``101``
    ourselves, return the WebSocket, with the default connection options
    but those in ``overrides`` (a ``Sock``'s, checked already).  Raises ``Refusal`` (500 for a valid
    request when the server does not expose its socket) and OSError if the
    client is gone."""
    headers, subprotocol, deflate = negotiate(environ, environ_headers(environ), policies)
    sock = raw_socket(environ)
    if sock is None:
        raise Refusal(500, "WebSocket not supported by this server: it gives the "
                           "application no access to the connection; run the app "
                           "under pyws.WebSocketServer, gunicorn (gthread worker or "
                           "pyws.gunicorn.GeventWebSocketWorker) or Werkzeug's "
                           "development server\n")
    pending = _buffered_input(environ, sock)
    sock.sendall(switching_protocols(headers))
    # The server closes its socket itself, after its own bookkeeping.
    options = DEFAULTS.replace(**overrides) if overrides else DEFAULTS
    return new_websocket(sock, environ, subprotocol, options, pending=pending,
                         close_socket=False, deflate=deflate, cls=websocket_class)


