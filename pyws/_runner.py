"""How a WebSocket session ends: one rule, one runner, on every route.

Every way pyws serves an upgrade (the gevent handler and thus
``WebSocketServer`` and the gunicorn worker; the upgrade on the raw socket
under Werkzeug's server and gunicorn's thread workers; ``Sock`` routes on
both; ``Resource``) ends a session here, so a program sees the same close
code whatever the server:

- the application raised after the upgrade -> **1011**; that includes a
  Flask view, as Flask catches the exception and answers a 500, which the
  runner sees through ``start_response``;
- the application answered a 4xx (a refusal: ``abort(403)``, or a 4xx
  response) -> **1008**, and the status line as the reason; any other 5xx
  -> 1011, with the status line too;
- it returned normally -> **1000**;
- the server is stopping (GreenletExit, KeyboardInterrupt...) -> **1001**.

A socket closed already (by the application, by the peer, by a protocol
error) is left as it is.  ConnectionClosed and ProtocolError raised out of
the application are the ends of the connection, logged in one line.

``Upgrade``, in ``environ[UPGRADE_KEY]``, is the typed state of one upgrade
request shared by the route that can switch protocols (``accept``) and the
code that asks for it (a ``Sock`` route); no string flags in the environ.
"""
from __future__ import annotations

import enum
import logging
import socket
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

from .exceptions import ConnectionClosed, ProtocolError
from .websocket import WebSocket, close_quietly

__all__ = ["UPGRADE_KEY", "Route", "Upgrade", "Accept", "SessionRunner",
           "close_code_for", "end_session", "upgrade_of", "shut_down"]

logger = logging.getLogger("pyws.handler")

Environ = Dict[str, Any]
StartResponse = Callable[..., Any]
#: ``accept(policies, limits, websocket_class)``: perform the handshake,
#: return the WebSocket (an instance of ``websocket_class``).
Accept = Callable[[Sequence[Any], Any, Type[WebSocket]], WebSocket]

#: Where a request's ``Upgrade`` lives in the WSGI environ.
UPGRADE_KEY = "pyws.upgrade_state"

#: The longest close reason: 123 bytes of UTF-8 (RFC 6455, 5.5.1).
_MAX_REASON = 123


class Route(enum.Enum):
    """Who writes the ``101`` and owns the connection afterwards."""

    #: The gevent handler (pywsgi): it sends the 101 and closes the socket.
    HANDLER = "handler"
    #: The server's raw socket (Werkzeug, gunicorn's thread workers): pyws
    #: writes the 101; the socket is shut down once the session is over,
    #: and the server closes it.
    RAW = "raw"


class Upgrade:
    """One upgrade request: how it can switch protocols, and its WebSocket
    once it did."""

    __slots__ = ("route", "_accept", "websocket")

    def __init__(self, route: Route, accept: Accept) -> None:
        self.route = route
        self._accept = accept
        #: The WebSocket, once the handshake succeeded.
        self.websocket: Optional[WebSocket] = None

    def accept(self, policies: Sequence[Any], limits: Any,
               websocket_class: Type[WebSocket] = WebSocket) -> WebSocket:
        """Perform the handshake (raises ``Refusal``, or OSError when the
        client is gone) and publish the WebSocket in the environ."""
        if self.websocket is not None:
            raise RuntimeError("this request was upgraded already")
        ws = self._accept(policies, limits, websocket_class)
        self.accepted(ws)
        return ws

    def accepted(self, ws: WebSocket) -> None:
        """Record ``ws`` as this request's WebSocket."""
        self.websocket = ws
        environ = ws.environ
        if environ is not None:
            environ["wsgi.websocket"] = ws
            environ["wsgi.websocket_version"] = "13"


def upgrade_of(environ: Environ) -> Optional[Upgrade]:
    """The request's ``Upgrade``, or None when no route can upgrade it."""
    state = environ.get(UPGRADE_KEY)
    return state if isinstance(state, Upgrade) else None


def close_code_for(raised: Optional[BaseException],
                   status: Optional[str]) -> Tuple[int, str]:
    """The close code and reason of a session that ended so (the rule in
    this module's docstring): ``raised``, what the application raised;
    ``status``, the last status line it gave ``start_response``.

    It does not ask whether the application used the socket (``ws._used``):
    send() and the Python receive path set that flag but the C fast receive
    path does not, so a rule on it would give a code that depends on the
    path a message took (how a raising Flask view got 1000 or 1011)."""
    if raised is not None:
        return (1011 if isinstance(raised, Exception) else 1001), ""
    if not status:
        return 1000, ""
    try:
        number = int(status.split(None, 1)[0])
    except (ValueError, IndexError):
        return 1000, ""
    if 400 <= number < 500:
        code = 1008
    elif 500 <= number < 600:
        code = 1011
    else:
        return 1000, ""
    return code, status.encode("utf-8")[:_MAX_REASON].decode("utf-8", "ignore")


def end_session(ws: WebSocket, raised: Optional[BaseException] = None,
                status: Optional[str] = None) -> None:
    """Close ``ws`` (unless closed already) with the code the rule gives."""
    code, reason = close_code_for(raised, status)
    close_quietly(ws, code, reason, logger)


def log_connection_end(ws: WebSocket, exc: BaseException) -> bool:
    """Log ConnectionClosed (debug) and ProtocolError (info) in one line;
    False for any other exception."""
    if isinstance(exc, ConnectionClosed):
        logger.debug("WebSocket %s closed: %s", ws.path, exc)
        return True
    if isinstance(exc, ProtocolError):
        logger.info("WebSocket %s failed by the peer: %s (%d)", ws.path, exc, exc.code)
        return True
    return False


def shut_down(sock: socket.socket) -> None:
    """End the connection for good: once the WebSocket is over, whatever the
    HTTP server still tries to write fails (EPIPE), which every server takes
    as "the client went away", quietly."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _discard(data: bytes) -> None:
    """The write callable after the upgrade: HTTP bodies are meaningless
    once the protocol switched."""


class SessionRunner:
    """Runs a WSGI application on a request that is, or may become, a
    WebSocket, and ends the session by the rule.

    It is the ``start_response`` the application gets: before the upgrade it
    forwards to the server's (``forward``; an HTTP answer, a refusal, goes
    out as usual), after it it only keeps the status line.
    """

    __slots__ = ("upgrade", "forward", "status")

    def __init__(self, upgrade: Upgrade, forward: Optional[StartResponse] = None) -> None:
        self.upgrade = upgrade
        self.forward = forward
        self.status: Optional[str] = None

    def __call__(self, status: str, headers: List[Tuple[str, str]],
                 exc_info: Any = None) -> Callable[[bytes], Any]:
        if self.upgrade.websocket is None and self.forward is not None:
            write: Callable[[bytes], Any] = self.forward(status, headers, exc_info)
            return write
        self.status = status
        return _discard

    def run(self, application: Callable[..., Any],
            environ: Environ) -> Union[Iterable[bytes], None]:
        """Call ``application``.  Its result when it answered over HTTP
        (no upgrade happened: the caller sends it); None when the request
        became a WebSocket, which is closed and let go of by then.  What the
        application raised is re-raised, after the close, except the ends of
        the connection (ConnectionClosed, ProtocolError)."""
        try:
            result: Iterable[bytes] = application(environ, self)
            if self.upgrade.websocket is None:
                return result
            try:
                for _chunk in result:
                    pass
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:
            ws = self.upgrade.websocket
            if ws is None:
                raise
            self._finish(ws, exc)
            if log_connection_end(ws, exc):
                return None
            raise
        ws = self.upgrade.websocket
        assert ws is not None
        self._finish(ws, None)
        return None

    def _finish(self, ws: WebSocket, raised: Optional[BaseException]) -> None:
        if raised is not None and (isinstance(raised, (ConnectionClosed, ProtocolError))
                                   and ws.closed):
            raised = None  # the connection ended; nothing left to say
        end_session(ws, raised, self.status)
        if self.upgrade.route is Route.RAW:
            shut_down(ws.socket)
        # The environ holds the socket and the socket its environ: break the
        # cycle so the connection's memory goes now, not at the next
        # garbage collection.
        environ = ws.environ
        if environ is not None:
            environ["wsgi.websocket"] = None
        ws.environ = None
