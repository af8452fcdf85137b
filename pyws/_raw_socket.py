"""The upgrade on the HTTP server's own socket, for servers whose handler is
not pyws's: Werkzeug's development server and gunicorn's sync, gthread and
gevent workers expose the connection's socket in the environ, and gevent's
plain ``pywsgi.WSGIServer`` (without ``pyws.WebSocketHandler``) lets it be
reached through ``wsgi.input``; pyws writes the ``101`` there and runs the
WebSocket in the request's thread or greenlet."""
from __future__ import annotations

import socket
from typing import Any, Mapping, Optional, Sequence, Type

from . import _gevent
from ._handshake import (
    Environ,
    HandshakePolicy,
    Refusal,
    environ_headers,
    negotiate,
    new_websocket,
    switching_protocols,
)
from .options import DEFAULTS
from .websocket import WebSocket, drain_buffered

__all__ = ["accept_raw", "raw_socket"]

def raw_socket(environ: Environ) -> Optional[socket.socket]:
    """The connection's socket, where the server exposes it: Werkzeug's
    development server (``werkzeug.socket``), gunicorn's sync, gthread and
    gevent workers (``gunicorn.socket``), gevent's pywsgi (the socket under
    ``wsgi.input``'s reader)."""
    sock = environ.get("werkzeug.socket")
    if sock is None:
        sock = environ.get("gunicorn.socket")
    if sock is None:
        sock = _pywsgi_socket(environ)
    if isinstance(sock, socket.socket) or _gevent.is_gevent_socket(sock):
        return sock  # type: ignore[no-any-return]
    return None


def _pywsgi_socket(environ: Environ) -> Any:
    """gevent's pywsgi keeps no socket in the environ, but its ``wsgi.input``
    reads through ``rfile``, a BufferedReader over the connection's
    ``SocketIO``, whose ``_sock`` is the socket: ``wsgi.input`` is that
    reader itself for an upgrade request, else a ``pywsgi.Input`` around it.  Only that
    exact chain is trusted: a reader over anything else (a test client's
    BytesIO, a proxy's stream) gives None, and the route answers 500."""
    rfile = _pywsgi_rfile(environ)
    raw = getattr(rfile, "raw", None)
    if not isinstance(raw, socket.SocketIO):
        return None
    return getattr(raw, "_sock", None)


def _pywsgi_rfile(environ: Environ) -> Any:
    if not str(environ.get("SERVER_SOFTWARE", "")).startswith("gevent"):
        return None
    stream = environ.get("wsgi.input")
    if isinstance(getattr(stream, "raw", None), socket.SocketIO):
        return stream
    return getattr(stream, "rfile", None)


def _buffered_input(environ: Environ, sock: socket.socket) -> bytes:
    """Bytes the server read past the request head (frames a client sent
    right behind its handshake), taken out of its input buffer."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if hasattr(stream, "peek") and hasattr(stream, "read1"):
        return drain_buffered(stream, sock)  # Werkzeug: the socket's BufferedReader
    rfile = _pywsgi_rfile(environ)
    if rfile is not None and hasattr(rfile, "peek") and hasattr(rfile, "read1"):
        # gevent's pywsgi: its reader may hold frames sent behind the head.
        return drain_buffered(rfile, sock)
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


